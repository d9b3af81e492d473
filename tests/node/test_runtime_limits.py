"""cgroup limits as a container meets them: the OOM killer at the memory limit,
the pids limit against a fork bomb."""

from __future__ import annotations

import pytest

from agent.cgroups import Resources

pytestmark = pytest.mark.root

MI = 1 << 20


async def test_memory_limit_gets_the_container_oom_killed(pods, runtime_cgroups) -> None:
    sandbox = await pods.sandbox()
    # tail keeps the "last lines" of /dev/zero, which has no line ends: it grows until killed
    ran = await pods.run(sandbox, ["tail", "/dev/zero"], resources=Resources(memory_limit_bytes=32 * MI),
                         timeout=60)
    assert (ran.status.exit_code, ran.status.signal, ran.status.reason, ran.status.oom_killed) == (
        137, 9, "OOMKilled", True)


async def test_killed_without_oom_is_not_oomkilled(pods, runtime) -> None:
    sandbox = await pods.sandbox()
    spec = pods.spec(sandbox, ["sleep", "30"], resources=Resources(memory_limit_bytes=32 * MI))
    await runtime.run_container(spec)
    status = await runtime.stop_container(spec.id, grace_seconds=0)
    assert (status.exit_code, status.reason, status.oom_killed) == (137, "Error", False)


async def test_pids_limit_contains_a_fork_bomb(pods, runtime, runtime_cgroups) -> None:
    sandbox = await pods.sandbox()
    spec = pods.spec(sandbox, ["sleep", "60"], resources=Resources(pids_limit=10))
    await runtime.run_container(spec)
    # A bounded bomb: 50 background forks from a shell exec'd into the container. The
    # shell dies at the first fork the pids limit refuses; its children stay, counted.
    script = "i=0; while [ $i -lt 50 ]; do sleep 60 >/dev/null 2>&1 & i=$((i+1)); done"
    bomb = await runtime.exec(spec.id, ["sh", "-c", script])
    assert await bomb.wait() != 0
    assert b"can't fork" in await bomb.stderr.read()
    procs = runtime_cgroups.procs(f"pod-{sandbox.pod_uid}/{spec.name}")
    assert 2 < len(procs) <= 10
    assert (await runtime.status(spec.id)).state == "running"     # the container itself is fine
    status = await runtime.stop_container(spec.id, grace_seconds=0)
    assert status.state == "exited"
    assert runtime_cgroups.procs(f"pod-{sandbox.pod_uid}/{spec.name}") == []


async def test_child_oom_kill_is_reported_as_oomkilled(pods, runtime_cgroups) -> None:
    """Issue 15: the OOM killer takes a child, the shell goes on and exits 0; containerd (and so
    Kubernetes) still says OOMKilled, because the container's cgroup saw an OOM kill."""
    sandbox = await pods.sandbox()
    ran = await pods.run(sandbox, ["sh", "-c", "tail /dev/zero; exit 0"],
                         resources=Resources(memory_limit_bytes=32 * MI), timeout=60)
    assert (ran.status.exit_code, ran.status.reason, ran.status.oom_killed) == (0, "OOMKilled", True)
