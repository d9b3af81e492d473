"""Translating a pod's container (Kubernetes JSON) into the runtime's ContainerSpec.

Command and environment come from agent/envs.py (Kubernetes' merge of the image
config with the pod spec); mounts from agent/volumes.py; the rest is here:
user and groups (runAsUser / runAsGroup / supplementalGroups, else the image's
USER), capabilities, privileged, read-only root, the seccomp profile, and cgroup
resources from the container's requests and limits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from api.quantity import cpu_millis, memory_bytes

from agent.cgroups import Resources
from agent.runtime.specs import ContainerSpec, Mount


class UserError(ValueError):
    """The image's USER cannot be resolved (shown as CreateContainerConfigError)."""


def seccomp_profile_of(pod: dict[str, Any], container: dict[str, Any]) -> tuple[str, str]:
    """(type, localhostProfile) of the container's seccompProfile, else the pod's; RuntimeDefault
    when neither sets one (Skiff is secure by default, like the kubelet's --seccomp-default)."""
    for sc in (container.get("securityContext") or {}, (pod.get("spec") or {}).get("securityContext") or {}):
        profile = sc.get("seccompProfile")
        if profile:
            kind = profile.get("type") or ""
            if kind not in ("RuntimeDefault", "Unconfined", "Localhost"):
                raise UserError(f"securityContext.seccompProfile.type {kind!r}: must be RuntimeDefault, "
                                "Unconfined or Localhost")
            if kind == "Localhost" and not profile.get("localhostProfile"):
                raise UserError("securityContext.seccompProfile.localhostProfile: required for type Localhost")
            return kind, profile.get("localhostProfile") or ""
    return "RuntimeDefault", ""


def resources_of(container: dict[str, Any], *, pids_limit: int | None) -> Resources:
    res = container.get("resources") or {}
    limits, requests = res.get("limits") or {}, res.get("requests") or {}
    return Resources(
        cpu_limit_millis=cpu_millis(limits["cpu"]) if "cpu" in limits else None,
        cpu_request_millis=cpu_millis(requests["cpu"]) if "cpu" in requests else None,
        memory_limit_bytes=memory_bytes(limits["memory"]) if "memory" in limits else None,
        pids_limit=pids_limit)


def pod_memory_limit(pod: dict[str, Any]) -> int | None:
    """The pod-level memory limit, as the kubelet computes it: the larger of the sum of the
    app containers' limits and the largest init container's limit - or None (no pod limit)
    when any container has no memory limit."""
    def limit(c: dict[str, Any]) -> int | None:
        value = ((c.get("resources") or {}).get("limits") or {}).get("memory")
        return memory_bytes(value) if value is not None else None
    spec = pod.get("spec") or {}
    apps = [limit(c) for c in spec.get("containers") or []]
    inits = [limit(c) for c in spec.get("initContainers") or []]
    if not apps or None in apps or None in inits:
        return None
    return max([sum(a for a in apps if a is not None), *(i for i in inits if i is not None)])


def pod_resources(pod: dict[str, Any], *, max_pids: int | None) -> Resources:
    """The pod cgroup's limits: the pod's pids limit (--pod-max-pids) and its memory limit."""
    return Resources(memory_limit_bytes=pod_memory_limit(pod), pids_limit=max_pids)


def _lookup(layers: list[Path], file: str, name: str) -> tuple[int, int] | None:
    """(id, primary group) of a user/group name from the image's /etc/passwd or /etc/group."""
    for layer in reversed(layers):  # topmost layer wins
        path = layer / "etc" / file
        if path.is_file():
            for line in path.read_text(errors="replace").splitlines():
                fields = line.split(":")
                if len(fields) >= 4 and fields[0] == name:
                    return int(fields[2]), int(fields[3]) if file == "passwd" else int(fields[2])
            return None
    return None


def user_of(pod: dict[str, Any], container: dict[str, Any], *, image_user: str,
            layers: list[Path]) -> tuple[int, int, list[int]]:
    """(uid, gid, supplementary groups): securityContext first, then the image's USER."""
    pod_sc = (pod.get("spec") or {}).get("securityContext") or {}
    sc = container.get("securityContext") or {}
    uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
    gid = sc.get("runAsGroup", pod_sc.get("runAsGroup"))
    image_uid, image_gid = 0, 0
    if image_user:
        user, _, group = image_user.partition(":")
        if user.isdigit():
            image_uid = int(user)
            image_gid = image_uid if not group else image_gid
        elif user:
            found = _lookup(layers, "passwd", user)
            if found is None:
                raise UserError(f'unable to find user {user}: no matching entries in passwd file')
            image_uid, image_gid = found
        if group:
            if group.isdigit():
                image_gid = int(group)
            else:
                found_group = _lookup(layers, "group", group)
                if found_group is None:
                    raise UserError(f'unable to find group {group}: no matching entries in group file')
                image_gid = found_group[0]
    if uid is None:
        uid = image_uid
    if gid is None:
        gid = image_gid if not (sc.get("runAsUser") or pod_sc.get("runAsUser")) or image_user else 0
    groups = [int(g) for g in pod_sc.get("supplementalGroups") or []]
    if pod_sc.get("fsGroup") is not None:
        groups.append(int(pod_sc["fsGroup"]))
    run_as_non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
    if run_as_non_root and uid == 0:
        raise UserError("container has runAsNonRoot and image will run as root")
    return int(uid), int(gid), groups


def build_spec(*, cid: str, pod: dict[str, Any], container: dict[str, Any], layers: list[Path],
               args: list[str], env: dict[str, str], working_dir: str, user: tuple[int, int, list[int]],
               mounts: list[Mount], log_path: Path, pids_limit: int | None,
               seccomp: str | dict | None = "runtime/default") -> ContainerSpec:
    """`seccomp`: "runtime/default", the Localhost profile document, or None (Unconfined)."""
    sc = container.get("securityContext") or {}
    caps = sc.get("capabilities") or {}
    uid, gid, groups = user
    return ContainerSpec(
        id=cid, pod_uid=pod["metadata"]["uid"], name=container["name"], layers=layers, args=args, env=env,
        cwd=container.get("workingDir") or working_dir or "/", uid=uid, gid=gid, groups=groups,
        tty=bool(container.get("tty")), stdin=bool(container.get("stdin")), mounts=mounts,
        readonly_rootfs=bool(sc.get("readOnlyRootFilesystem")),
        cap_add=[c.upper().removeprefix("CAP_") for c in caps.get("add") or []],
        cap_drop=[c.upper().removeprefix("CAP_") for c in caps.get("drop") or []],
        privileged=bool(sc.get("privileged")),
        # Kubernetes sets no_new_privs only when allowPrivilegeEscalation is false.
        no_new_privs=sc.get("allowPrivilegeEscalation") is False and not sc.get("privileged"),
        resources=resources_of(container, pids_limit=pids_limit), log_path=log_path, seccomp=seccomp)
