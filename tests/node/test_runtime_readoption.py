"""SIGKILL of the agent: containers keep running, a new agent re-adopts them.

A separate Python process plays the agent: it starts a Runtime and two containers,
prints what it started, and is then SIGKILLed together with its fork server. The
containers (and their supervisors) must not notice. One container exits while no
agent runs; a new Runtime on the same root must list the other as running with
the same PID, and read both exit codes correctly.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from agent.runtime import Runtime, linux

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]

AGENT = """
import asyncio, json, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from agent.cgroups import open_manager
from agent.runtime import ContainerSpec, Mount, Runtime, SandboxSpec

async def main():
    runtime = Runtime(Path({root!r}), cgroups=open_manager(parent={parent!r}))
    await runtime.start()
    await runtime.create_sandbox(SandboxSpec(pod_uid="pod-a", hostname="survivor"))
    pids = {{}}
    for name, code in (("down", 7), ("live", 9)):
        script = f"while [ ! -e /shared/stop-{{name}} ]; do sleep 0.05; done; exit {{code}}"
        status = await runtime.run_container(ContainerSpec(
            id=f"pod-a-{{name}}", pod_uid="pod-a", name=name, layers=[Path({rootfs!r})],
            args=["sh", "-c", script], mounts=[Mount(source=Path({shared!r}), destination="/shared")]))
        pids[status.id] = status.pid
    print(json.dumps({{"forkserver": runtime.forkserver_pid, "pids": pids}}), flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def _alive(pid: int) -> bool:
    stat = linux.proc_stat(pid)
    return stat is not None and stat[0] not in "ZX"


async def test_containers_survive_agent_sigkill_and_are_readopted(tmp_path: Path, busybox_rootfs: Path,
                                                                  runtime_cgroups, wait_until,
                                                                  runtime_cleanup) -> None:
    root, shared = tmp_path / "rt", tmp_path / "shared"
    shared.mkdir()
    code = AGENT.format(repo=str(REPO), root=str(root), parent=runtime_cgroups.parent,
                        rootfs=str(busybox_rootfs), shared=str(shared))
    agent = await asyncio.create_subprocess_exec(sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE)
    try:
        line = await asyncio.wait_for(agent.stdout.readline(), 60)
        assert line, "the agent process died before starting its containers"
        started = json.loads(line)
        pids = started["pids"]

        # kill -9 the agent and its fork server
        agent.kill()
        await agent.wait()
        try:
            os.kill(started["forkserver"], signal.SIGKILL)
        except ProcessLookupError:
            pass                                  # PR_SET_PDEATHSIG was quicker
        await wait_until(lambda: not _alive(started["forkserver"]), what="the fork server to die")
        assert all(_alive(pid) for pid in pids.values()), "a container died with its agent"

        # one container exits while there is no agent
        (shared / "stop-down").touch()
        await wait_until(lambda: not _alive(pids["pod-a-down"]), what="container 'down' to exit")

        # a new agent finds both, without restarting anything
        runtime = Runtime(root, cgroups=runtime_cgroups)
        await runtime.start()
        try:
            down = await runtime.wait("pod-a-down", timeout=10)    # its supervisor records, then exits
            listed = {s.id: s for s in await runtime.list()}
            assert set(listed) == {"pod-a-down", "pod-a-live"}
            assert (down.state, down.exit_code, down.reason) == ("exited", 7, "Error")
            live = listed["pod-a-live"]
            assert (live.state, live.pid) == ("running", pids["pod-a-live"])

            (shared / "stop-live").touch()
            live = await runtime.wait("pod-a-live", timeout=10)
            assert (live.state, live.exit_code, live.reason) == ("exited", 9, "Error")
        finally:
            await runtime.close()
    finally:
        if agent.returncode is None:
            agent.kill()
            await agent.wait()
        (shared / "stop-down").touch()
        (shared / "stop-live").touch()
        await runtime_cleanup(root, runtime_cgroups)


async def test_exit_is_unknown_when_the_supervisor_died_too(pods, runtime, wait_until) -> None:
    sandbox = await pods.sandbox()
    spec = pods.spec(sandbox, ["sleep", "60"])
    started = await runtime.run_container(spec)
    record = json.loads((runtime.containers_dir / spec.id / "state.json").read_text())
    os.kill(record["supervisor_pid"], signal.SIGKILL)
    await wait_until(lambda: not _alive(record["supervisor_pid"]), what="the supervisor to die")
    assert (await runtime.status(spec.id)).state == "running"      # the container itself runs on
    os.kill(started.pid, signal.SIGKILL)
    await wait_until(lambda: not _alive(started.pid), what="the container to die")
    status = await runtime.status(spec.id)
    assert (status.state, status.exit_code, status.reason) == ("exited", None, "Unknown")
