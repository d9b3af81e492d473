"""A pod's sandbox: the namespaces its containers share, and its /etc files.

Kubernetes runtimes keep a "pause" process alive to hold a pod's namespaces. Skiff
does what `ip netns add` does instead: a throwaway process unshares new network,
IPC and UTS namespaces, sets the pod's hostname, brings up loopback, and
bind-mounts /proc/self/ns/{net,ipc,uts} onto files in <root>/sandboxes/<pod-uid>/.
A bind-mounted namespace lives as long as the mount, with no process in it.
Containers setns() into these files (container_init.py); the network code
configures the pod's interfaces through `Sandbox.netns_path`.

hostNetwork pods share the node's network *and* UTS namespace (their hostname is
the node's, as with kubelet); hostIPC pods the node's IPC namespace; hostPID pods
make their containers skip the new PID namespace.

`make_namespaces()` runs in a fork-server worker (forkserver.py). The file
helpers below run in the agent (through asyncio.to_thread, see runtime.py).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import socket
import struct
from pathlib import Path

from agent.runtime import linux
from agent.runtime.specs import Sandbox, SandboxSpec

KINDS = ("net", "ipc", "uts")
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1

HOSTS_HEADER = """# Kubernetes-managed hosts file (Skiff).
127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
fe00::0\tip6-mcastprefix
fe00::1\tip6-allnodes
fe00::2\tip6-allrouters
"""


# --- in the fork server's worker process ---------------------------------------------

def make_namespaces(*, directory: str, kinds: list[str], hostname: str) -> None:
    """Move this process into new namespaces of `kinds` and pin each to a file in `directory`."""
    flags = 0
    for kind in kinds:
        flags |= linux.NAMESPACE_FLAGS[kind]
    linux.unshare(flags)
    if "uts" in kinds:
        linux.sethostname(hostname)
    if "net" in kinds:
        _loopback_up()
    for kind in kinds:
        target = os.path.join(directory, kind)
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o444))
        linux.mount(f"/proc/self/ns/{kind}", target, None, linux.MS_BIND)


def _loopback_up() -> None:
    """`ip link set lo up` with two ioctls (a new network namespace starts with lo down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(s, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))


# --- in the agent ---------------------------------------------------------------------

def kinds_for(spec: SandboxSpec) -> list[str]:
    kinds = []
    if not spec.host_network:
        kinds += ["net", "uts"]
    if not spec.host_ipc:
        kinds.append("ipc")
    return sorted(kinds, key=KINDS.index)


def hosts_text(entries: list[tuple[str, str]]) -> str:
    return HOSTS_HEADER + "".join(f"{ip}\t{names}\n" for ip, names in entries)


def resolv_text(host_resolv: str) -> str:
    """The host's resolv.conf without loopback nameservers (unreachable from a pod's netns)."""
    lines = []
    for line in host_resolv.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver" and (words[1].startswith("127.") or words[1] == "::1"):
            continue
        lines.append(line)
    return "\n".join(lines) + "\n"


def write_files(spec: SandboxSpec, directory: Path) -> None:
    """hosts, hostname and resolv.conf for the pod's containers to bind-mount (and the
    remains of a half-made earlier attempt unmounted)."""
    directory.mkdir(parents=True, exist_ok=True)
    unmount(directory)
    if spec.host_network:
        hosts = Path("/etc/hosts").read_text()
        hostname = socket.gethostname()
    else:
        hosts = hosts_text(spec.hosts_entries)
        hostname = spec.hostname
    dns = spec.dns if spec.dns is not None else resolv_text(_read_or_empty(Path("/etc/resolv.conf")))
    (directory / "hosts").write_text(hosts)
    (directory / "hostname").write_text(hostname + "\n")
    (directory / "resolv.conf").write_text(dns)


def rewrite_hosts(directory: Path, entries: list[tuple[str, str]]) -> None:
    """Replace the pod's hosts entries in place: containers bind-mount this very inode,
    so it is truncated and rewritten, not replaced by rename."""
    with open(directory / "hosts", "r+") as f:
        f.truncate(0)
        f.write(hosts_text(entries))


def save(sandbox: Sandbox, spec: SandboxSpec) -> None:
    data = {"pod_uid": spec.pod_uid, "hostname": sandbox.hostname, "host_network": spec.host_network,
            "host_ipc": spec.host_ipc, "host_pid": spec.host_pid}
    (sandbox.directory / "sandbox.json").write_text(json.dumps(data) + "\n")


def load(directory: Path) -> Sandbox | None:
    try:
        data = json.loads((directory / "sandbox.json").read_text())
    except FileNotFoundError:
        return None
    return describe(directory, hostname=data["hostname"], host_network=data["host_network"],
                    host_ipc=data["host_ipc"], host_pid=data["host_pid"], pod_uid=data["pod_uid"])


def describe(directory: Path, *, pod_uid: str, hostname: str, host_network: bool,
             host_ipc: bool, host_pid: bool) -> Sandbox:
    return Sandbox(pod_uid=pod_uid, hostname=hostname, directory=directory,
                   netns_path=None if host_network else directory / "net",
                   ipcns_path=None if host_ipc else directory / "ipc",
                   utsns_path=None if host_network else directory / "uts",
                   host_pid=host_pid)


def unmount(directory: Path) -> None:
    """Unmount the namespace files, which frees the namespaces (once no process is in them).

    Unmounts until nothing is left, in case a crashed agent mounted twice."""
    for kind in KINDS:
        path = str(directory / kind)
        for _ in range(16):
            try:
                linux.umount2(path, linux.MNT_DETACH)
            except OSError as err:
                if err.errno in (errno.EINVAL, errno.ENOENT):      # not (or no longer) a mount point
                    break
                raise


def remove(directory: Path) -> None:
    """Unmount the namespace files and delete the directory."""
    unmount(directory)
    shutil.rmtree(directory, ignore_errors=True)


def _read_or_empty(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""
