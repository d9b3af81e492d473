"""Container lifecycle with real processes: exit codes, start errors, stop with grace, CRI logs.

Each test runs busybox containers through `Runtime` (fixtures in conftest.py) and
checks what the runtime reports against what the process did.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path

import pytest

from agent.runtime import State, StartError

pytestmark = pytest.mark.root

CRI_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) (F|P) .*$")


@pytest.mark.parametrize("script, code, reason", [
    ("exit 0", 0, "Completed"),
    ("exit 3", 3, "Error"),
    ("exit 255", 255, "Error"),
])
async def test_exit_code_and_reason(pods, script: str, code: int, reason: str) -> None:
    sandbox = await pods.sandbox()
    ran = await pods.run(sandbox, ["sh", "-c", script])
    assert ran.status.state == State.EXITED.value
    assert (ran.status.exit_code, ran.status.reason, ran.status.oom_killed) == (code, reason, False)
    assert ran.status.finished_at >= ran.status.started_at


async def test_status_while_running_then_exited(pods, runtime) -> None:
    sandbox = await pods.sandbox()
    spec = pods.spec(sandbox, ["sleep", "30"])
    started = await runtime.run_container(spec)
    status = await runtime.status(spec.id)
    assert status.state == "running" and status.pid == started.pid
    assert [s.id for s in await runtime.list()] == [spec.id]
    with pytest.raises(RuntimeError, match="is running; stop it"):
        await runtime.remove_container(spec.id)
    with pytest.raises(TimeoutError):
        await runtime.wait(spec.id, timeout=0.05)
    stopped = await runtime.stop_container(spec.id, grace_seconds=0)
    assert stopped.state == "exited" and stopped.signal == 9 and stopped.exit_code == 137
    await runtime.remove_container(spec.id)
    assert await runtime.list() == []


@pytest.mark.parametrize("args, message", [
    (["/bin/nosuch"], 'exec "/bin/nosuch": No such file or directory'),
    (["nosuch"], 'exec "nosuch": executable file not found in $PATH'),
    (["/etc/hostname"], 'exec "/etc/hostname": Permission denied'),
])
async def test_start_error_names_the_reason(pods, runtime, args: list[str], message: str) -> None:
    sandbox = await pods.sandbox()
    spec = pods.spec(sandbox, args)
    with pytest.raises(StartError) as caught:
        await runtime.run_container(spec)
    assert str(caught.value) == message
    status = await runtime.status(spec.id)
    assert (status.state, status.reason, status.message) == ("exited", "StartError", message)
    assert status.exit_code == 127
    await runtime.remove_container(spec.id)


async def test_setup_error_names_the_reason(pods, runtime, tmp_path: Path) -> None:
    sandbox = await pods.sandbox()
    spec = pods.spec(sandbox, ["true"], cwd="/bin/busybox/sub")     # cwd under a file
    with pytest.raises(StartError, match="Not a directory|File exists"):
        await runtime.run_container(spec)
    assert (await runtime.status(spec.id)).exit_code == 128


async def test_bad_spec_is_refused_before_anything_happens(pods, runtime) -> None:
    sandbox = await pods.sandbox()
    with pytest.raises(ValueError, match=r"cwd 'relative': must be an absolute path"):
        await runtime.run_container(pods.spec(sandbox, ["true"], cwd="relative"))
    with pytest.raises(ValueError, match=r"capabilities.add: unknown capability 'FLY'"):
        await runtime.run_container(pods.spec(sandbox, ["true"], cap_add=["FLY"]))
    with pytest.raises(ValueError, match="has no sandbox"):
        spec = pods.spec(sandbox, ["true"])
        spec.pod_uid = "no-such-pod"
        await runtime.run_container(spec)
    assert await runtime.list() == []


async def test_duplicate_id_is_refused(pods, runtime) -> None:
    sandbox = await pods.sandbox()
    spec = pods.spec(sandbox, ["true"])
    await runtime.run_container(spec)
    with pytest.raises(StartError, match="already exists"):
        await runtime.run_container(spec)
    assert (await runtime.wait(spec.id, timeout=10)).exit_code == 0


async def test_stop_kills_after_the_grace_period(pods, runtime) -> None:
    sandbox = await pods.sandbox()
    spec = pods.spec(sandbox, ["sh", "-c", "trap '' TERM; echo ready; while true; do sleep 1; done"])
    await runtime.run_container(spec)
    log = (await runtime.status(spec.id)).log_path
    await _wait_for_output(log, "ready")
    began = time.monotonic()
    status = await runtime.stop_container(spec.id, grace_seconds=0.5)
    assert time.monotonic() - began >= 0.5
    assert (status.exit_code, status.signal, status.reason) == (137, 9, "Error")


async def test_stop_lets_a_term_handler_finish(pods, runtime) -> None:
    sandbox = await pods.sandbox()
    spec = pods.spec(sandbox, ["sh", "-c", "trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 0.1; done"])
    await runtime.run_container(spec)
    log = (await runtime.status(spec.id)).log_path
    await _wait_for_output(log, "ready")
    began = time.monotonic()
    status = await runtime.stop_container(spec.id, grace_seconds=20)
    assert time.monotonic() - began < 10
    assert (status.exit_code, status.reason) == (0, "Completed")
    assert "bye" in Path(log).read_text()


async def test_logs_are_written_in_cri_format(pods, runtime) -> None:
    sandbox = await pods.sandbox()
    script = "echo out1; echo err1 >&2; echo out2; printf 'no newline'"
    spec = pods.spec(sandbox, ["sh", "-c", script])
    await runtime.run_container(spec)
    status = await runtime.wait(spec.id, timeout=10)
    lines = Path(status.log_path).read_text().splitlines()
    assert all(CRI_LINE.match(line) for line in lines), lines
    records = [line.split(" ", 1)[1] for line in lines]
    assert [r for r in records if r.startswith("stdout")] == ["stdout F out1", "stdout F out2", "stdout F no newline"]
    assert [r for r in records if r.startswith("stderr")] == ["stderr F err1"]
    await runtime.remove_container(spec.id)
    assert Path(status.log_path).exists()          # the log outlives the container unless asked


async def test_long_lines_are_split_and_logs_rotate(pods, runtime) -> None:
    sandbox = await pods.sandbox()
    # one 40000-character line, then 300 short lines (~19 KB of records)
    script = "head -c 40000 /dev/zero | tr '\\0' x; echo; i=0; while [ $i -lt 300 ]; do echo line$i; i=$((i+1)); done"
    spec = pods.spec(sandbox, ["sh", "-c", script], log_max_bytes=8192, log_max_files=1)
    await runtime.run_container(spec)
    status = await runtime.wait(spec.id, timeout=20)
    log = Path(status.log_path)
    rotated = log.with_name(log.name + ".1")
    assert rotated.exists() and not log.with_name(log.name + ".2").exists()
    assert log.stat().st_size <= 8192
    assert log.read_text().splitlines()[-1].endswith("stdout F line299")
    await runtime.remove_container(spec.id, remove_log=True)
    assert not log.exists() and not rotated.exists()


async def test_tty_container_logs_terminal_output(pods, runtime) -> None:
    sandbox = await pods.sandbox()
    ran = await pods.run(sandbox, ["sh", "-c", "test -t 1 && echo is-a-tty; tty"], tty=True)
    assert ran.status.exit_code == 0
    assert "is-a-tty" in ran.stdout


async def _wait_for_output(log: Path, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not (log.exists() and text in log.read_text()):
        assert time.monotonic() < deadline, f"timed out waiting for {text!r} in {log}"
        await asyncio.sleep(0.02)


async def test_concurrent_starts(pods, runtime) -> None:
    sandbox = await pods.sandbox()
    specs = [pods.spec(sandbox, ["sh", "-c", f"echo {i}; exit {i}"]) for i in range(6)]
    await asyncio.gather(*(runtime.run_container(s) for s in specs))
    statuses = await asyncio.gather(*(runtime.wait(s.id, timeout=20) for s in specs))
    assert [s.exit_code for s in statuses] == list(range(6))
    assert [pods.output(s.log_path)[0] for s in statuses] == [f"{i}\n" for i in range(6)]


async def test_state_dir_apart_from_root(tmp_path: Path, busybox_rootfs: Path, runtime_cgroups,
                                         runtime_cleanup) -> None:
    """State on a tmpfs (as /run/skiff would be), writable layers and logs on disk."""
    import tempfile
    from agent.runtime import ContainerSpec, Runtime, SandboxSpec

    with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="skiff-state-") as state_dir:
        runtime = Runtime(tmp_path / "rt", cgroups=runtime_cgroups, state_dir=Path(state_dir))
        await runtime.start()
        try:
            await runtime.create_sandbox(SandboxSpec(pod_uid="pod-s", hostname="s"))
            spec = ContainerSpec(id="pod-s-c", pod_uid="pod-s", name="c", layers=[busybox_rootfs],
                                 args=["sh", "-c", "echo hi > /x; cat /x"])
            await runtime.run_container(spec)
            status = await runtime.wait(spec.id, timeout=10)
            assert status.exit_code == 0 and status.log_path.read_text().endswith(" stdout F hi\n")
            assert sorted(os.listdir(Path(state_dir) / "containers" / spec.id)) == ["plan.json", "state.json"]
            assert (tmp_path / "rt" / "containers" / spec.id / "upper" / "x").read_text() == "hi\n"
            assert (Path(state_dir) / "sandboxes" / "pod-s" / "net").exists()
            await runtime.remove_container(spec.id)
            assert not (tmp_path / "rt" / "containers" / spec.id).exists()
            await runtime.remove_sandbox("pod-s")
        finally:
            await runtime.close()
            await runtime_cleanup(Path(state_dir), runtime_cgroups)


async def test_large_environment(pods) -> None:
    """A plan bigger than a socket buffer still reaches the supervisor whole."""
    sandbox = await pods.sandbox()
    env = {f"VAR{i}": str(i) * 500 for i in range(500)}
    ran = await pods.run(sandbox, ["sh", "-c", "echo ${#VAR499} $PATH"], env=env)
    assert ran.stdout.split()[0] == str(len("499" * 500))
    assert ran.stdout.split()[1] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


async def test_a_dead_spare_worker_is_replaced(pods, runtime, runtime_processes, wait_until) -> None:
    import signal
    sandbox = await pods.sandbox()
    def helpers() -> set[int]:
        return set(runtime_processes(runtime.state_dir)) - {runtime.forkserver_pid}
    # the spare, forked ahead (and the sandbox's worker gone)
    await wait_until(lambda: len(helpers()) == 1, what="exactly one spare worker")
    spare = helpers().pop()
    os.kill(spare, signal.SIGKILL)
    await wait_until(lambda: spare not in runtime_processes(runtime.state_dir), what="the spare to die")
    ran = await pods.run(sandbox, ["true"])
    assert ran.status.exit_code == 0
