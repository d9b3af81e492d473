"""What a container's root cannot do: devices outside the allow-list, syscalls outside the
seccomp profile (namespaces, mounts) - and what privileged and Unconfined containers still can.

Runs real containers on this machine's cgroup driver (v1 here: devices.allow/deny),
and the same attacks once more on the cgroup v2 driver with the eBPF device program,
in the cgroup2 hierarchy a hybrid machine mounts at /sys/fs/cgroup/unified.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from agent.cgroups import detect, layout, open_manager

pytestmark = pytest.mark.root

MKNOD_BLOCK = "mknod /tmp/blk b 7 0 && dd if=/tmp/blk of=/dev/null bs=512 count=1 && echo opened-block"
UNSHARE = "unshare -Ur id -u && echo unshared"


async def test_default_container_is_filtered_and_has_the_device_allow_list(pods) -> None:
    sandbox = await pods.sandbox()
    ran = await pods.run(sandbox, ["sh", "-c", "grep Seccomp: /proc/self/status; grep devices /proc/self/cgroup; "
                                               + MKNOD_BLOCK])
    assert "Seccomp:\t2" in ran.stdout
    if pods.runtime.cgroups.version == 1:     # in a devices group of its own, not the root's
        assert f"devices:/{pods.runtime.cgroups.parent}/pod-{sandbox.pod_uid}/" in ran.stdout, ran.stdout
    assert "opened-block" not in ran.stdout
    assert "mknod: /tmp/blk: Operation not permitted" in ran.stderr
    assert ran.status.exit_code != 0


async def test_allowed_devices_still_work(pods) -> None:
    sandbox = await pods.sandbox()
    script = ("head -c 4 /dev/urandom | wc -c; head -c 4 /dev/zero | wc -c; echo x > /dev/null && echo null-ok; "
              "echo x > /dev/full || echo full-refused; mknod /tmp/n c 1 3 && echo x > /tmp/n && echo mknod-null-ok; "
              "mknod /tmp/loopctl c 10 237 || echo loop-control-refused")
    ran = await pods.run(sandbox, ["sh", "-c", script])
    assert ran.stdout.split() == ["4", "4", "null-ok", "full-refused", "mknod-null-ok", "loop-control-refused"], \
        ran.stdout + ran.stderr


async def test_tty_container_can_use_its_terminal(pods) -> None:
    sandbox = await pods.sandbox()
    ran = await pods.run(sandbox, ["sh", "-c", "tty && echo hi > /dev/tty"], tty=True)
    assert ran.status.exit_code == 0, ran.stdout
    assert "/dev/pts/0" in ran.stdout


async def test_privileged_container_gets_block_devices_and_no_filter(pods) -> None:
    sandbox = await pods.sandbox()
    ran = await pods.run(sandbox, ["sh", "-c", "grep Seccomp: /proc/self/status; " + MKNOD_BLOCK],
                         privileged=True)
    assert "Seccomp:\t0" in ran.stdout
    assert "opened-block" in ran.stdout, ran.stderr


async def test_unshare_user_namespace_is_refused_by_default(pods) -> None:
    sandbox = await pods.sandbox()
    ran = await pods.run(sandbox, ["sh", "-c", UNSHARE + "; unshare -Urm true || echo urm-refused"])
    assert "unshared" not in ran.stdout
    assert "unshare: unshare(0x10000000): Operation not permitted" in ran.stderr
    assert "urm-refused" in ran.stdout


async def test_unconfined_container_may_unshare(pods) -> None:
    sandbox = await pods.sandbox()
    ran = await pods.run(sandbox, ["sh", "-c", "grep Seccomp: /proc/self/status; " + UNSHARE], seccomp=None)
    assert "Seccomp:\t0" in ran.stdout
    assert "unshared" in ran.stdout, ran.stderr


async def test_non_root_user_is_filtered_too(pods) -> None:
    sandbox = await pods.sandbox()
    ran = await pods.run(sandbox, ["sh", "-c", "id -u; grep -E 'Seccomp:|NoNewPrivs' /proc/self/status; " + UNSHARE],
                         uid=1000, gid=1000)
    assert ran.stdout.startswith("1000\n") and "Seccomp:\t2" in ran.stdout
    assert "unshared" not in ran.stdout


async def test_exec_runs_under_the_containers_filter(pods, runtime) -> None:
    sandbox = await pods.sandbox()
    spec = pods.spec(sandbox, ["sleep", "30"])
    await runtime.run_container(spec)
    try:
        process = await runtime.exec(spec.id, ["sh", "-c", "grep Seccomp: /proc/self/status; " + UNSHARE])
        out = await process.stdout.read()
        code = await process.wait()
        assert "Seccomp:\t2" in out.decode() and "unshared" not in out.decode()
        assert code != 0
    finally:
        await runtime.stop_container(spec.id, grace_seconds=0)
        await runtime.remove_container(spec.id, remove_log=True)


async def test_localhost_profile_is_applied(pods) -> None:
    """A profile document (what `Localhost` reads from the agent's seccomp dir): default
    allow, mkdir refused with EACCES."""
    sandbox = await pods.sandbox()
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}
    ran = await pods.run(sandbox, ["sh", "-c", "mkdir /tmp/d || echo refused; " + UNSHARE],
                         seccomp=json.loads(json.dumps(profile)))
    assert "refused" in ran.stdout and "Permission denied" in ran.stderr
    assert "unshared" in ran.stdout        # this profile allows everything else


# -- the same on the cgroup v2 driver ------------------------------------------------------

@pytest.fixture
async def v2_pods(tmp_path: Path, make_pods, runtime_cleanup):
    """A Runtime whose cgroups are in the cgroup2 hierarchy: a pure v2 root, or on a hybrid
    machine /sys/fs/cgroup/unified (no controllers there, but BPF device programs work)."""
    from agent.runtime import Runtime
    if detect() == 2:
        root = "/sys/fs/cgroup"
    elif layout() == "hybrid":
        root = "/sys/fs/cgroup/unified"
    else:
        pytest.skip("no cgroup2 hierarchy on this machine")
    cgroups = open_manager(parent=f"skiff-test-{secrets.token_hex(4)}", root=root)
    assert cgroups.version == 2
    rt = Runtime(tmp_path / "rt2", cgroups=cgroups)
    await rt.start()
    try:
        yield make_pods(rt)
    finally:
        await rt.close()
        try:
            await runtime_cleanup(tmp_path / "rt2", cgroups)
        finally:
            cgroups.remove("")
            assert not cgroups.exists(""), "test cgroups left behind"


async def test_v2_device_program_refuses_block_devices(v2_pods) -> None:
    sandbox = await v2_pods.sandbox()
    ran = await v2_pods.run(sandbox, ["sh", "-c", "cat /proc/self/cgroup | grep '^0::'; echo x > /dev/null && "
                                                  "echo null-ok; " + MKNOD_BLOCK])
    assert "skiff-test-" in ran.stdout       # the container is in its own v2 group
    assert "null-ok" in ran.stdout
    assert "opened-block" not in ran.stdout
    assert "mknod: /tmp/blk: Operation not permitted" in ran.stderr


async def test_v2_privileged_container_gets_block_devices(v2_pods) -> None:
    sandbox = await v2_pods.sandbox()
    ran = await v2_pods.run(sandbox, ["sh", "-c", MKNOD_BLOCK], privileged=True)
    assert "opened-block" in ran.stdout, ran.stderr
