"""What a container sees, checked from inside: its own PID 1, hostname, processes,
mounts and root filesystem; what it shares with its pod; what hostNetwork shares."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from agent.runtime import Mount

pytestmark = pytest.mark.root


async def test_pid1_is_the_command(pods) -> None:
    sandbox = await pods.sandbox()
    script = "echo $$; cat /proc/1/cmdline; echo"
    ran = await pods.run(sandbox, ["sh", "-c", script])
    assert ran.stdout.splitlines() == ["1", f"sh\0-c\0{script}\0"]


async def test_hostname_is_the_pods(pods) -> None:
    sandbox = await pods.sandbox(hostname="web-0")
    ran = await pods.run(sandbox, ["sh", "-c", "hostname; cat /etc/hostname"])
    assert ran.stdout == "web-0\nweb-0\n"
    assert socket.gethostname() != "web-0"


async def test_host_processes_are_invisible(pods) -> None:
    sandbox = await pods.sandbox()
    ran = await pods.run(sandbox, ["sh", "-c", "ls /proc | grep '^[0-9]*$'; ps -o pid,comm"])
    pids = [int(x) for x in ran.stdout.split("PID")[0].split()]
    assert max(pids) < 10 and 1 in pids            # only the container's few processes
    assert os.getpid() not in pids or os.getpid() < 10
    commands = [line.split()[1] for line in ran.stdout.split("PID")[1].splitlines()[1:]]
    assert set(commands) <= {"sh", "ps"}


async def test_host_mounts_are_invisible(pods, tmp_path: Path) -> None:
    sandbox = await pods.sandbox()
    ran = await pods.run(sandbox, ["cat", "/proc/mounts"])
    points = [line.split()[1] for line in ran.stdout.splitlines()]
    assert points[0] == "/" and ran.stdout.splitlines()[0].startswith("overlay / overlay")
    assert not [p for p in points if p.startswith(("/tmp/pytest", "/sys/fs/cgroup", "/work", "/mnt"))]
    expected = {"/", "/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/etc/hosts",
                "/etc/hostname", "/etc/resolv.conf"}
    assert expected <= set(points)


async def test_rootfs_writes_vanish_while_a_volume_keeps_them(pods, tmp_path: Path) -> None:
    empty_dir = tmp_path / "empty-dir"
    empty_dir.mkdir()
    volume = [Mount(source=empty_dir, destination="/data")]
    sandbox = await pods.sandbox()
    first = await pods.run(sandbox, ["sh", "-c", "echo x > /x && echo y > /data/y"], name="app", mounts=volume)
    assert first.status.exit_code == 0
    assert (empty_dir / "y").read_text() == "y\n"
    second = await pods.run(sandbox, ["sh", "-c", "test ! -e /x && cat /data/y"], name="app", mounts=volume)
    assert (second.status.exit_code, second.stdout) == (0, "y\n")


async def test_readonly_volume(pods, tmp_path: Path) -> None:
    source = tmp_path / "config"
    source.mkdir()
    (source / "a.conf").write_text("a=1\n")
    sandbox = await pods.sandbox()
    ran = await pods.run(sandbox, ["sh", "-c", "cat /etc/app/a.conf; touch /etc/app/b 2>&1; exit 0"],
                         mounts=[Mount(source=source, destination="/etc/app", readonly=True)])
    assert ran.stdout.startswith("a=1\n") and "Read-only file system" in ran.stdout
    assert not (source / "b").exists()


async def test_containers_of_a_pod_share_network_ipc_uts(pods, runtime) -> None:
    sandbox = await pods.sandbox(hostname="shared")
    first = await runtime.run_container(pods.spec(sandbox, ["sleep", "30"]))
    script = "for ns in net ipc uts pid mnt; do readlink /proc/self/ns/$ns; done"
    second = (await pods.run(sandbox, ["sh", "-c", script])).stdout.split()
    first_ns = [os.readlink(f"/proc/{first.pid}/ns/{ns}") for ns in ("net", "ipc", "uts", "pid", "mnt")]
    assert second[:3] == first_ns[:3]                                  # net, ipc, uts: the pod's
    assert second[3] != first_ns[3] and second[4] != first_ns[4]      # pid, mnt: each container's own
    host = [os.readlink(f"/proc/self/ns/{k}") for k in ("net", "ipc", "uts", "pid", "mnt")]
    assert not set(second) & set(host)
    await runtime.stop_container(first.id, grace_seconds=0)


async def test_pod_network_namespace_has_loopback_up(pods) -> None:
    sandbox = await pods.sandbox()
    ran = await pods.run(sandbox, ["sh", "-c", "ip -o link; ping -c1 -W2 127.0.0.1 >/dev/null && echo ping-ok"])
    assert "ping-ok" in ran.stdout
    assert [line.split(":")[1].strip() for line in ran.stdout.splitlines() if ": " in line] == ["lo"]


async def test_host_network_pod_shares_the_nodes_network_and_hostname(pods, runtime) -> None:
    sandbox = await pods.sandbox(host_network=True)
    assert sandbox.netns_path is None
    ran = await pods.run(sandbox, ["sh", "-c", "readlink /proc/self/ns/net; hostname"])
    net, hostname = ran.stdout.split()
    assert net == os.readlink("/proc/self/ns/net")
    assert hostname == socket.gethostname()


async def test_sandbox_is_idempotent_and_removed_cleanly(runtime) -> None:
    from agent.runtime import SandboxSpec
    spec = SandboxSpec(pod_uid="pod-idem", hostname="idem", hosts_entries=[("198.18.0.5", "idem")])
    first = await runtime.create_sandbox(spec)
    again = await runtime.create_sandbox(spec)
    assert first == again
    assert first.netns_path is not None
    mountinfo = Path("/proc/self/mountinfo").read_text()
    assert str(first.netns_path) in mountinfo and str(first.utsns_path) in mountinfo
    assert "198.18.0.5\tidem" in first.hosts_path.read_text()
    await runtime.update_hosts("pod-idem", [("198.18.0.6", "idem")])
    assert "198.18.0.6\tidem" in first.hosts_path.read_text()
    await runtime.remove_sandbox("pod-idem")
    assert str(first.directory) not in Path("/proc/self/mountinfo").read_text()
    assert not first.directory.exists()
    assert await runtime.get_sandbox("pod-idem") is None


async def test_host_pid_pod_sees_the_nodes_processes(pods) -> None:
    sandbox = await pods.sandbox(host_pid=True)
    script = "echo $$; cat /proc/1/comm; readlink /proc/self/ns/pid"
    ran = await pods.run(sandbox, ["sh", "-c", script])
    pid, init_comm, pid_ns = ran.stdout.split()
    assert int(pid) > 1
    assert init_comm == Path("/proc/1/comm").read_text().strip()
    assert pid_ns == os.readlink("/proc/self/ns/pid")
