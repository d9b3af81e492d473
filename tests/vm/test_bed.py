"""The VM test bed itself: a guest is a real machine with its own kernel on pure cgroup v2,
on the LAN bridge with its own address, that the test can command, cut off and power off."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from vm.machines import GuestError, Machine, kernel_release

CONNECT = ("import socket, sys\n"
           "try:\n    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()\n"
           "except OSError as e:\n    sys.exit(f'connect failed: {e}')\n")


def test_guest_is_its_own_machine_on_pure_cgroup_v2(machine: Machine) -> None:
    assert machine.boot_seconds is not None and machine.boot_seconds < 180
    print(f"\n{machine.name}: boot to ready in {machine.boot_seconds:.1f}s")
    assert machine.run("uname -r", check=True).stdout.strip() == kernel_release()
    mounts = [line.split() for line in machine.run("cat /proc/mounts", check=True).stdout.splitlines()]
    cgroup_mounts = [(m[1], m[2]) for m in mounts if m[2].startswith("cgroup")]
    assert cgroup_mounts == [("/sys/fs/cgroup", "cgroup2")]        # pure v2, no v1 hierarchy anywhere
    controllers = machine.run("cat /sys/fs/cgroup/cgroup.controllers", check=True).stdout.split()
    assert {"cpu", "memory", "pids"} <= set(controllers)
    assert machine.run("cat /proc/1/comm", check=True).stdout.strip() != "systemd"
    addresses = machine.run("ip -4 -o addr show dev eth0", check=True).stdout
    assert f"inet {machine.address}/24" in addresses
    # the repo's venv and code, read over 9p
    out = machine.python("-c", "import agent.cgroups as c; print(c.detect())", check=True, timeout=120).stdout
    assert out.strip() == "2"


def test_command_deadline_kills_the_command(machine: Machine) -> None:
    result = machine.run("sleep 600 & sleep 601; echo never", timeout=2)
    assert result.timed_out and "never" not in result.stdout
    with pytest.raises(GuestError, match="timed out"):
        result.check()
    # the whole session went, the background sleep too
    assert machine.run("ps -o args | grep -c '^sleep 60[01]'").stdout.strip() == "0"


def test_partition_cuts_the_lan_but_not_the_commands(machine: Machine) -> None:
    host = machine.bed.lan.host_address
    server = socket.create_server((host, 0))
    port = server.getsockname()[1]
    accepted = threading.Event()

    def accept() -> None:
        server.settimeout(120)
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.close()
            accepted.set()

    threading.Thread(target=accept, daemon=True).start()
    try:
        machine.python("-c", CONNECT, host, str(port), check=True, timeout=120)
        assert accepted.wait(10)

        machine.partition()
        cut = machine.python("-c", CONNECT, host, str(port), timeout=120)
        assert cut.rc != 0 and "connect failed" in cut.stderr

        machine.heal()
        machine.python("-c", CONNECT, host, str(port), check=True, timeout=120)
    finally:
        server.close()


def test_power_off_pulls_the_plug_and_boot_brings_it_back(machine: Machine) -> None:
    machine.run("echo before > /var/lib/marker", check=True)
    pid = machine.qemu.pid
    machine.power_off()
    assert not machine.running
    with pytest.raises(GuestError, match="not booted"):
        machine.run("true")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)

    seconds = machine.boot()
    print(f"\n{machine.name}: boot again in {seconds:.1f}s")
    # a fresh machine on the same address: what was written lived in its RAM
    assert machine.run("cat /var/lib/marker").rc != 0
    assert f"inet {machine.address}/24" in machine.run("ip -4 -o addr show dev eth0", check=True).stdout
