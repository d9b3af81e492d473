"""The LaunchPlan: everything a container start needs, resolved in the agent.

The agent validates a ContainerSpec, finds its sandbox and turns both into one
plain JSON dict - absolute paths, capability numbers, "KEY=value" env, the overlay
mount options - and sends it to the fork server. The supervisor (supervisor.py)
and the container process (container_init.py, rootfs.py) then only carry it out:
no decisions, no lookups, no imports after fork. The plan is also kept as
<container>/plan.json, where `list()`, `status()` and `exec()` read it back.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from agent.cgroups.devices import rules_to_json
from agent.runtime import capabilities
from agent.runtime.specs import ContainerSpec, Sandbox

# The kernel copies mount options into one page; keep a safety margin.
MAX_MOUNT_OPTIONS = 4000
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def pod_cgroup_path(pod_uid: str) -> str:
    """The pod's cgroup, relative to the node's parent group."""
    return f"pod-{pod_uid}"


def cgroup_path(pod_uid: str, name: str) -> str:
    """The container's cgroup, relative to the node's parent group."""
    return f"{pod_cgroup_path(pod_uid)}/{name}"


def overlay_options(*, layers: list[Path], upper: Path, work: Path) -> tuple[str, str]:
    """(directory to chdir to, overlay mount options) for image layers given lowest first.

    overlayfs wants lowerdir topmost first. Layer paths are made relative to their
    common parent, so a deep image still fits in the kernel's one-page option limit.
    """
    lowers = [str(p) for p in reversed(layers)]
    base = os.path.commonpath(lowers) if len(lowers) > 1 else os.path.dirname(lowers[0])
    relative = [os.path.relpath(p, base) for p in lowers]
    options = f"lowerdir={':'.join(relative)},upperdir={upper},workdir={work}"
    if len(options) > MAX_MOUNT_OPTIONS:
        raise ValueError(f"image has too many layers ({len(layers)}): overlay options exceed "
                         f"{MAX_MOUNT_OPTIONS} bytes")
    return base, options


def build(*, spec: ContainerSpec, sandbox: Sandbox, container_dir: Path, state_dir: Path, log_path: Path,
          last_cap: int, available_caps: set[int]) -> dict:
    """The LaunchPlan dict for `spec` running in `sandbox`."""
    rootfs, upper, work = container_dir / "rootfs", container_dir / "upper", container_dir / "work"
    overlay_cwd, options = overlay_options(layers=spec.layers, upper=upper, work=work)
    env = dict(spec.env)
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("HOME", "/")
    namespaces = {kind: str(path) for kind, path in
                  (("net", sandbox.netns_path), ("ipc", sandbox.ipcns_path), ("uts", sandbox.utsns_path))
                  if path is not None}
    return {
        "id": spec.id,
        "created_at": time.time(),
        "pod_uid": spec.pod_uid,
        "name": spec.name,
        "container_dir": str(container_dir),      # rootfs, upper, work
        "state_dir": str(state_dir),              # plan.json, state.json (may be the same directory)
        "state_path": str(state_dir / "state.json"),
        "rootfs": str(rootfs),
        "upper": str(upper),
        "work": str(work),
        "overlay_cwd": overlay_cwd,
        "overlay_options": options,
        "namespaces": namespaces,
        "new_pid_ns": not sandbox.host_pid,
        "etc_files": {"/etc/hosts": str(sandbox.hosts_path),
                      "/etc/hostname": str(sandbox.hostname_path),
                      "/etc/resolv.conf": str(sandbox.resolv_path)},
        "mounts": [{"source": str(m.source), "destination": m.destination, "readonly": m.readonly}
                   for m in spec.mounts],
        "readonly_rootfs": spec.readonly_rootfs,
        "privileged": spec.privileged,
        "args": list(spec.args),
        "env": env,
        "cwd": spec.cwd,
        "uid": spec.uid,
        "gid": spec.gid,
        "groups": list(spec.groups),
        "caps": capabilities.resolve(add=spec.cap_add, drop=spec.cap_drop,
                                     privileged=spec.privileged, available=available_caps),
        "last_cap": last_cap,
        "no_new_privs": spec.no_new_privs and not spec.privileged,
        "seccomp": None,                          # the compiled program, base64 (Runtime.run_container)
        "seccomp_early": spec.seccomp == "runtime/default",   # loaded before "go" (container_init.py)
        "devices": None if spec.privileged else rules_to_json(spec.devices),
        "rlimits": [[name, soft, hard] for name, (soft, hard) in spec.rlimits.items()],
        "tty": spec.tty,
        "stdin": spec.stdin,
        "cgroup": cgroup_path(spec.pod_uid, spec.name),
        "resources": dataclasses.asdict(spec.resources) if spec.resources else {},
        "log_path": str(log_path),
        "log_max_bytes": spec.log_max_bytes,
        "log_max_files": spec.log_max_files,
    }
