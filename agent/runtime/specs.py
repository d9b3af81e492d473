"""The runtime's vocabulary: what the agent asks for and what it gets back.

`SandboxSpec` describes a pod's shared namespaces (network, IPC, UTS) and the
files every container of the pod sees as /etc/hosts, /etc/hostname and
/etc/resolv.conf; `Sandbox` is the made sandbox. `ContainerSpec` describes one
container process; `ContainerStatus` is what `Runtime.status()` observes.
`validate_*` check a spec before anything is created, naming the bad field.

The agent's pod worker translates Kubernetes objects into these (securityContext
-> uid/gid/capabilities, volumes -> mounts, resources -> agent.cgroups.Resources);
runtime.py turns them into a LaunchPlan (plan.py) for the fork server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.cgroups.devices import DEFAULT_ALLOWED, DeviceRule
from agent.cgroups.resources import Resources

MiB = 1024 * 1024

# A container id becomes a directory name and part of a cgroup path.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# RFC 1123 label, as Kubernetes requires for container names and hostnames.
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$")

RLIMIT_NAMES = ("RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE",
                "RLIMIT_LOCKS", "RLIMIT_MEMLOCK", "RLIMIT_MSGQUEUE", "RLIMIT_NICE",
                "RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_RSS", "RLIMIT_RTPRIO",
                "RLIMIT_RTTIME", "RLIMIT_SIGPENDING", "RLIMIT_STACK")


class StartError(RuntimeError):
    """A container could not be started; the message is the real reason
    (e.g. `exec "/bin/nosuch": No such file or directory`), fit for a waiting reason."""


class ContainerNotFound(KeyError):
    """No container with this id is known to the runtime."""

    def __str__(self) -> str:  # KeyError would print the repr
        return str(self.args[0]) if self.args else "container not found"


@dataclass
class Mount:
    """A bind mount into the container (a volume): host `source` at `destination`."""

    source: Path
    destination: str
    readonly: bool = False
    propagation: str = "private"


@dataclass
class SandboxSpec:
    pod_uid: str
    hostname: str
    host_network: bool = False
    host_ipc: bool = False
    host_pid: bool = False
    hosts_entries: list[tuple[str, str]] = field(default_factory=list)   # (ip, "name alias...")
    dns: str | None = None            # resolv.conf text; None copies the host's minus 127.x servers
    resources: Resources | None = None   # the pod's own cgroup (pids for the whole pod, memory...)


@dataclass
class Sandbox:
    pod_uid: str
    hostname: str
    directory: Path                   # <root>/sandboxes/<pod-uid>
    netns_path: Path | None           # bind-mounted net namespace; None for hostNetwork
    ipcns_path: Path | None
    utsns_path: Path | None
    host_pid: bool = False

    # Path properties, one per directory: alike in shape (the `duplicates` tool pairs them), nothing to share.
    @property
    def hosts_path(self) -> Path:
        return self.directory / "hosts"

    @property
    def hostname_path(self) -> Path:
        return self.directory / "hostname"

    @property
    def resolv_path(self) -> Path:
        return self.directory / "resolv.conf"


@dataclass
class ContainerSpec:
    id: str
    pod_uid: str
    name: str
    layers: list[Path]                # image layers, lowest first (agent.images Image.layers)
    args: list[str]                   # argv; args[0] is looked up in $PATH when it has no "/"
    env: dict[str, str] = field(default_factory=dict)   # ordered, as in the pod spec
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    groups: list[int] = field(default_factory=list)
    tty: bool = False
    stdin: bool = False
    mounts: list[Mount] = field(default_factory=list)
    readonly_rootfs: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    no_new_privs: bool = True
    resources: Resources | None = None
    log_path: Path | None = None      # None: <root>/logs/<id>.log
    log_max_bytes: int = 10 * MiB     # rotate when the log would grow past this
    log_max_files: int = 1            # rotated files kept: container.log.1 ...
    rlimits: dict[str, tuple[int, int]] = field(default_factory=dict)   # "RLIMIT_NOFILE": (soft, hard)
    # Seccomp: "runtime/default" (seccomp_default.py), a Docker/OCI profile document, or None
    # for unconfined. Privileged containers are always unconfined.
    seccomp: str | dict[str, Any] | None = "runtime/default"
    # Devices the container may mknod and open (agent/cgroups/devices.py); None: all of them.
    # Privileged containers always get all.
    devices: tuple[DeviceRule, ...] | None = DEFAULT_ALLOWED


@dataclass
class ContainerStatus:
    id: str
    pod_uid: str
    name: str
    state: str                        # "created" | "running" | "exited" (see state.py)
    pid: int | None = None            # host PID of the container's process 1
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None      # 128+n when killed by signal n (137 for SIGKILL)
    signal: int | None = None
    oom_killed: bool = False
    reason: str = ""                  # Completed | Error | OOMKilled | StartError | Unknown
    message: str = ""
    log_path: Path | None = None


def validate_container(spec: ContainerSpec) -> None:
    """Raise ValueError naming the field for anything the runtime could not carry out."""
    if not isinstance(spec.id, str) or not _ID.match(spec.id):
        raise ValueError(f"container id {spec.id!r}: must be 1-128 characters of letters, digits, '_', '.', '-'")
    _check_pod_uid(spec.pod_uid)
    if not isinstance(spec.name, str) or not _LABEL.match(spec.name) or len(spec.name) > 63:
        raise ValueError(f"container name {spec.name!r}: must be a lowercase RFC 1123 label")
    if not spec.layers:
        raise ValueError(f"container {spec.name}: layers: at least one image layer is needed")
    for i, layer in enumerate(spec.layers):
        text = str(layer)
        if not Path(layer).is_absolute() or any(c in text for c in ",:\n"):
            raise ValueError(f"container {spec.name}: layers[{i}] {text!r}: "
                             "must be an absolute path without ',' or ':'")
    if not spec.args or not all(isinstance(a, str) and a for a in spec.args) or any("\0" in a for a in spec.args):
        raise ValueError(f"container {spec.name}: args: need a non-empty command (args[0] must not be empty)")
    for key, value in spec.env.items():
        if not key or "=" in key or "\0" in key or "\0" in str(value):
            raise ValueError(f"container {spec.name}: env {key!r}: names must be non-empty without '=' or NUL")
    if not spec.cwd.startswith("/"):
        raise ValueError(f"container {spec.name}: cwd {spec.cwd!r}: must be an absolute path")
    for what, ident in (("uid", spec.uid), ("gid", spec.gid), *(("groups", g) for g in spec.groups)):
        if isinstance(ident, bool) or not isinstance(ident, int) or not 0 <= ident < 2**32 - 1:
            raise ValueError(f"container {spec.name}: {what} {ident!r}: must be an integer 0..4294967294")
    for i, m in enumerate(spec.mounts):
        where = f"container {spec.name}: mounts[{i}]"
        if not Path(m.source).is_absolute():
            raise ValueError(f"{where}: source {str(m.source)!r}: must be an absolute host path")
        if not m.destination.startswith("/") or m.destination == "/":
            raise ValueError(f"{where}: destination {m.destination!r}: must be an absolute path other than /")
        if m.propagation != "private":
            raise ValueError(f"{where}: propagation {m.propagation!r}: only 'private' is supported")
    for name, limits in spec.rlimits.items():
        if name not in RLIMIT_NAMES:
            raise ValueError(f"container {spec.name}: rlimits: unknown resource {name!r}")
        soft, hard = limits           # -1 means unlimited (RLIM_INFINITY)
        if soft < -1 or hard < -1 or (hard != -1 and (soft == -1 or soft > hard)):
            raise ValueError(f"container {spec.name}: rlimits {name}: soft {soft} must be within hard {hard}")
    if spec.seccomp is not None and spec.seccomp != "runtime/default" and not isinstance(spec.seccomp, dict):
        raise ValueError(f"container {spec.name}: seccomp {spec.seccomp!r}: expected 'runtime/default', "
                         "a profile document or None")
    if spec.devices is not None and not all(isinstance(d, DeviceRule) for d in spec.devices):
        raise ValueError(f"container {spec.name}: devices: expected DeviceRule items or None")
    if spec.log_max_bytes < 4096 or spec.log_max_files < 0:
        raise ValueError(f"container {spec.name}: log_max_bytes must be >= 4096 and log_max_files >= 0")


def validate_sandbox(spec: SandboxSpec) -> None:
    _check_pod_uid(spec.pod_uid)
    if not spec.host_network and (not _HOSTNAME.match(spec.hostname) or len(spec.hostname) > 64):
        raise ValueError(f"sandbox {spec.pod_uid}: hostname {spec.hostname!r}: "
                         "must be a DNS name of at most 64 characters")
    for i, (ip, names) in enumerate(spec.hosts_entries):
        if not ip or not names or any(c in ip + names for c in "\n#"):
            raise ValueError(f"sandbox {spec.pod_uid}: hosts_entries[{i}] {(ip, names)!r}: need an address and names")


def _check_pod_uid(uid: str) -> None:
    if not isinstance(uid, str) or not _ID.match(uid):
        raise ValueError(f"pod uid {uid!r}: must be 1-128 characters of letters, digits, '_', '.', '-'")
