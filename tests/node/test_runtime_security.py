"""Who the container's process is: user and groups, capabilities, no_new_privs,
read-only root, masked /proc."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.runtime import Mount, capabilities

pytestmark = pytest.mark.root


def _cap_line(status_text: str, field: str) -> int:
    for line in status_text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1], 16)
    raise AssertionError(f"{field} not in /proc/self/status")


async def test_run_as_user_and_groups(pods) -> None:
    sandbox = await pods.sandbox()
    ran = await pods.run(sandbox, ["sh", "-c", "id -u; id -g; id -G; grep -E 'Cap(Eff|Prm)' /proc/self/status"],
                         uid=1000, gid=1001, groups=[2000, 2001])
    lines = ran.stdout.splitlines()
    assert lines[:3] == ["1000", "1001", "1001 2000 2001"]
    assert _cap_line(ran.stdout, "CapEff") == 0 and _cap_line(ran.stdout, "CapPrm") == 0


async def test_root_gets_the_default_capabilities_only(pods) -> None:
    sandbox = await pods.sandbox()
    ran = await pods.run(sandbox, ["cat", "/proc/self/status"])
    default = capabilities.mask([capabilities.NUMBERS[n] for n in capabilities.DEFAULT])
    for field in ("CapEff", "CapPrm", "CapBnd"):
        assert _cap_line(ran.stdout, field) == default, field
    assert _cap_line(ran.stdout, "CapInh") == 0
    assert "NoNewPrivs:\t1" in ran.stdout


async def test_dropped_capability_is_gone(pods) -> None:
    sandbox = await pods.sandbox()
    script = "touch /f && chown 1000 /f && echo chowned"
    allowed = await pods.run(sandbox, ["sh", "-c", script])
    assert allowed.status.exit_code == 0 and "chowned" in allowed.stdout
    dropped = await pods.run(sandbox, ["sh", "-c", script], cap_drop=["CHOWN"])
    assert dropped.status.exit_code != 0
    assert "Operation not permitted" in dropped.stderr


async def test_added_capability_and_drop_all(pods) -> None:
    sandbox = await pods.sandbox()
    ran = await pods.run(sandbox, ["cat", "/proc/self/status"], cap_drop=["ALL"], cap_add=["NET_ADMIN"])
    assert _cap_line(ran.stdout, "CapBnd") == 1 << capabilities.NUMBERS["NET_ADMIN"]


async def test_privileged_gets_every_capability_and_writable_sys(pods) -> None:
    sandbox = await pods.sandbox()
    ran = await pods.run(sandbox, ["sh", "-c", "cat /proc/self/status; grep ' /sys ' /proc/mounts"], privileged=True)
    own = _cap_line(Path("/proc/self/status").read_text(), "CapBnd")    # all the agent has
    assert _cap_line(ran.stdout, "CapBnd") == own
    assert "sysfs /sys sysfs rw" in ran.stdout


async def test_readonly_root_filesystem(pods, tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    sandbox = await pods.sandbox()
    script = ("touch /x 2>&1; touch /tmp/x 2>&1; echo ok > /scratch/x && echo volume-ok; "
              "echo ok > /dev/shm/x && echo shm-ok; exit 0")
    ran = await pods.run(sandbox, ["sh", "-c", script], readonly_rootfs=True,
                         mounts=[Mount(source=scratch, destination="/scratch")])
    assert ran.stdout.count("Read-only file system") == 2
    assert "volume-ok" in ran.stdout and "shm-ok" in ran.stdout


async def test_proc_is_masked_and_kernel_knobs_read_only(pods) -> None:
    sandbox = await pods.sandbox()
    ran = await pods.run(sandbox, ["sh", "-c", "echo 1 > /proc/sys/kernel/panic; cat /proc/timer_list | wc -c"])
    assert "can't create /proc/sys/kernel/panic: Read-only file system" in ran.stderr
    assert ran.stdout.split() == ["0"]           # /dev/null over /proc/timer_list


async def test_rlimits_are_applied(pods) -> None:
    sandbox = await pods.sandbox()
    ran = await pods.run(sandbox, ["sh", "-c", "ulimit -n"], rlimits={"RLIMIT_NOFILE": (321, 654)})
    assert ran.stdout.strip() == "321"
