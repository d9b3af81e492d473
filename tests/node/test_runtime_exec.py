"""`Runtime.exec`: a process that joins a running container - namespaces, cgroup, user."""

from __future__ import annotations

import asyncio
import os

import pytest

from agent.runtime import StartError

pytestmark = pytest.mark.root


@pytest.fixture
async def running(pods, runtime):
    sandbox = await pods.sandbox(hostname="exec-pod")
    spec = pods.spec(sandbox, ["sleep", "60"], uid=1000, gid=1000, cwd="/tmp", env={"GREETING": "hi"})
    started = await runtime.run_container(spec)
    yield spec, started
    await runtime.stop_container(spec.id, grace_seconds=0)


async def test_exec_runs_inside_the_container(runtime, running) -> None:
    spec, started = running
    proc = await runtime.exec(spec.id, ["sh", "-c", "hostname; cat /proc/1/cmdline; echo; id -u; pwd; echo $GREETING"])
    out = await asyncio.wait_for(proc.stdout.read(), 10)
    assert await proc.wait() == 0
    assert out.decode().splitlines() == ["exec-pod", "sleep\x0060\x00", "1000", "/tmp", "hi"]


async def test_exec_joins_the_container_cgroup_and_namespaces(runtime, running, runtime_cgroups) -> None:
    spec, started = running
    proc = await runtime.exec(spec.id, ["sleep", "30"])
    container_ns = {ns: os.readlink(f"/proc/{started.pid}/ns/{ns}") for ns in ("net", "pid", "mnt", "uts", "ipc")}
    exec_ns = {ns: os.readlink(f"/proc/{proc.pid}/ns/{ns}") for ns in container_ns}
    assert exec_ns == container_ns
    assert proc.pid in runtime_cgroups.procs(f"pod-{spec.pod_uid}/{spec.name}")
    proc.send_signal()
    assert await proc.wait() == 137


async def test_exec_stdin_and_exit_code(runtime, running) -> None:
    spec, _ = running
    proc = await runtime.exec(spec.id, ["sh", "-c", "read line; echo got:$line; echo oops >&2; exit 5"])
    proc.stdin.write(b"hello\n")
    await proc.stdin.drain()
    proc.stdin.close()
    out, err = await asyncio.gather(proc.stdout.read(), proc.stderr.read())
    assert (out, err) == (b"got:hello\n", b"oops\n")
    assert await proc.wait() == 5


async def test_exec_with_tty(runtime, running) -> None:
    spec, _ = running
    proc = await runtime.exec(spec.id, ["sh", "-c", "test -t 0 && test -t 1 && echo tty-ok"], tty=True)
    out = await asyncio.wait_for(proc.stdout.read(), 10)
    assert b"tty-ok" in out
    assert await proc.wait() == 0


async def test_exec_of_a_missing_command_fails_clearly(runtime, running) -> None:
    spec, _ = running
    with pytest.raises(StartError, match='exec "nosuch": executable file not found in \\$PATH'):
        await runtime.exec(spec.id, ["nosuch"])


async def test_exec_into_a_stopped_container_is_refused(runtime, pods) -> None:
    sandbox = await pods.sandbox()
    spec = pods.spec(sandbox, ["true"])
    await runtime.run_container(spec)
    await runtime.wait(spec.id, timeout=10)
    with pytest.raises(RuntimeError, match="is not running"):
        await runtime.exec(spec.id, ["true"])
