"""Pod Security admission: Kubernetes' Pod Security Standards, enforced per namespace.

A namespace's label `pod-security.kubernetes.io/enforce` names its level:

- `privileged`: anything goes;
- `baseline` (Skiff's default for a namespace without the label): no host namespaces
  (hostNetwork, hostPID, hostIPC), no privileged containers, no capabilities added beyond
  the default set, no hostPath volumes, no hostPorts, no Unconfined seccomp or AppArmor, no
  custom SELinux user/role/type, the default /proc mount, only the safe sysctls;
- `restricted`: baseline, and also only configMap/downwardAPI/emptyDir/secret/projected/
  persistentVolumeClaim/csi/ephemeral volumes, allowPrivilegeEscalation false, runAsNonRoot
  true, no runAsUser 0, seccomp RuntimeDefault or Localhost, capabilities drop ALL and add at
  most NET_BIND_SERVICE.

`kube-system` and `skiff-node-lease` default to `privileged`. The checks mirror
k8s.io/pod-security-admission/policy (the "latest" version) and read the pod as JSON, so a
field a newer model adds (seccompProfile) is checked as soon as it can be set. Only pods are
enforced, whoever creates them (a controller's pods are refused like a user's); pod
templates in workloads are not (Kubernetes only warns for those). A refusal names every
field that broke the level:

    pods "p" is forbidden: violates PodSecurity "baseline:latest":
    spec.containers[0].securityContext.privileged: privileged containers are not allowed
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping

from api.errors import FieldError

ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
LEVELS = ("privileged", "baseline", "restricted")
DEFAULT_LEVEL = "baseline"
PRIVILEGED_NAMESPACES = frozenset({"kube-system", "skiff-node-lease"})

BASELINE_CAPABILITIES = frozenset({"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                                   "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})
SAFE_SYSCTLS = frozenset({"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range",
                          "net.ipv4.ip_unprivileged_port_start", "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range",
                          "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time",
                          "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                          "net.ipv4.tcp_keepalive_probes"})
RESTRICTED_VOLUMES = frozenset({"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                                "projected", "secret"})
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"

Container = tuple[str, Mapping[str, Any]]   # (field path, container)


def namespace_level(namespace: Mapping[str, Any] | None, name: str) -> str:
    labels = ((namespace or {}).get("metadata") or {}).get("labels") or {}
    level = labels.get(ENFORCE_LABEL)
    if level in LEVELS:
        return level
    return "privileged" if name in PRIVILEGED_NAMESPACES else DEFAULT_LEVEL


def check_namespace_labels(namespace: Mapping[str, Any]) -> list[FieldError]:
    labels = (namespace.get("metadata") or {}).get("labels") or {}
    value = labels.get(ENFORCE_LABEL)
    if value is not None and value not in LEVELS:
        return [FieldError(f"metadata.labels[{ENFORCE_LABEL}]",
                           f'Unsupported value: "{value}": supported values: "privileged", "baseline", "restricted"')]
    return []


def _containers(spec: Mapping[str, Any]) -> Iterator[Container]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for i, c in enumerate(spec.get(field) or []):
            yield f"spec.{field}[{i}]", c


def _sc(c: Mapping[str, Any]) -> Mapping[str, Any]:
    return c.get("securityContext") or {}


# -- baseline ---------------------------------------------------------------------------

def _host_namespaces(pod: Mapping[str, Any], spec: Mapping[str, Any]) -> Iterator[FieldError]:
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            yield FieldError(f"spec.{field}", f"host namespaces are not allowed ({field}=true)")


def _privileged(pod: Mapping[str, Any], spec: Mapping[str, Any]) -> Iterator[FieldError]:
    for path, c in _containers(spec):
        if _sc(c).get("privileged"):
            yield FieldError(f"{path}.securityContext.privileged", "privileged containers are not allowed")


def _capabilities_baseline(pod: Mapping[str, Any], spec: Mapping[str, Any]) -> Iterator[FieldError]:
    for path, c in _containers(spec):
        added = (_sc(c).get("capabilities") or {}).get("add") or []
        for j, cap in enumerate(added):
            if cap not in BASELINE_CAPABILITIES:
                yield FieldError(f"{path}.securityContext.capabilities.add[{j}]",
                                 f'non-default capability "{cap}" is not allowed')


def _host_path(pod: Mapping[str, Any], spec: Mapping[str, Any]) -> Iterator[FieldError]:
    for i, v in enumerate(spec.get("volumes") or []):
        if v.get("hostPath") is not None:
            yield FieldError(f"spec.volumes[{i}].hostPath", f'hostPath volumes are not allowed (volume "{v.get("name")}")')


def _host_ports(pod: Mapping[str, Any], spec: Mapping[str, Any]) -> Iterator[FieldError]:
    for path, c in _containers(spec):
        for j, port in enumerate(c.get("ports") or []):
            if port.get("hostPort"):
                yield FieldError(f"{path}.ports[{j}].hostPort", f"hostPort {port['hostPort']} is not allowed")


def _seccomp_baseline(pod: Mapping[str, Any], spec: Mapping[str, Any]) -> Iterator[FieldError]:
    pod_sc = spec.get("securityContext") or {}
    if (pod_sc.get("seccompProfile") or {}).get("type") == "Unconfined":
        yield FieldError("spec.securityContext.seccompProfile.type", 'seccomp profile "Unconfined" is not allowed')
    for path, c in _containers(spec):
        if (_sc(c).get("seccompProfile") or {}).get("type") == "Unconfined":
            yield FieldError(f"{path}.securityContext.seccompProfile.type",
                             'seccomp profile "Unconfined" is not allowed')


def _apparmor(pod: Mapping[str, Any], spec: Mapping[str, Any]) -> Iterator[FieldError]:
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    for key, value in annotations.items():
        if key.startswith(APPARMOR_ANNOTATION) and value not in ("runtime/default",) \
                and not value.startswith("localhost/"):
            yield FieldError(f"metadata.annotations[{key}]", f'AppArmor profile "{value}" is not allowed')
    scs = [("spec.securityContext", spec.get("securityContext") or {})]
    scs += [(f"{path}.securityContext", _sc(c)) for path, c in _containers(spec)]
    for path, sc in scs:
        if (sc.get("appArmorProfile") or {}).get("type") == "Unconfined":
            yield FieldError(f"{path}.appArmorProfile.type", 'AppArmor profile "Unconfined" is not allowed')


def _selinux(pod: Mapping[str, Any], spec: Mapping[str, Any]) -> Iterator[FieldError]:
    scs = [("spec.securityContext", spec.get("securityContext") or {})]
    scs += [(f"{path}.securityContext", _sc(c)) for path, c in _containers(spec)]
    for path, sc in scs:
        options = sc.get("seLinuxOptions") or {}
        if options.get("type", "") not in SELINUX_TYPES:
            yield FieldError(f"{path}.seLinuxOptions.type", f'SELinux type "{options["type"]}" is not allowed')
        for field in ("user", "role"):
            if options.get(field):
                yield FieldError(f"{path}.seLinuxOptions.{field}", f"custom SELinux {field} is not allowed")


def _proc_mount(pod: Mapping[str, Any], spec: Mapping[str, Any]) -> Iterator[FieldError]:
    for path, c in _containers(spec):
        if _sc(c).get("procMount", "Default") != "Default":
            yield FieldError(f"{path}.securityContext.procMount", f'procMount "{_sc(c)["procMount"]}" is not allowed')


def _sysctls(pod: Mapping[str, Any], spec: Mapping[str, Any]) -> Iterator[FieldError]:
    for i, sysctl in enumerate((spec.get("securityContext") or {}).get("sysctls") or []):
        if sysctl.get("name") not in SAFE_SYSCTLS:
            yield FieldError(f"spec.securityContext.sysctls[{i}].name", f'unsafe sysctl "{sysctl.get("name")}" is '
                                                                        f'not allowed')


# -- restricted ---------------------------------------------------------------------------

def _volume_types(pod: Mapping[str, Any], spec: Mapping[str, Any]) -> Iterator[FieldError]:
    for i, v in enumerate(spec.get("volumes") or []):
        for source in v:
            if source != "name" and source not in RESTRICTED_VOLUMES and source != "hostPath":  # hostPath: baseline's
                yield FieldError(f"spec.volumes[{i}].{source}", f'volume type "{source}" is not allowed')


def _privilege_escalation(pod: Mapping[str, Any], spec: Mapping[str, Any]) -> Iterator[FieldError]:
    for path, c in _containers(spec):
        if _sc(c).get("allowPrivilegeEscalation") is not False:
            yield FieldError(f"{path}.securityContext.allowPrivilegeEscalation", "must be set to false")


def _run_as_non_root(pod: Mapping[str, Any], spec: Mapping[str, Any]) -> Iterator[FieldError]:
    pod_sc = spec.get("securityContext") or {}
    if pod_sc.get("runAsNonRoot") is False:
        yield FieldError("spec.securityContext.runAsNonRoot", "must not be set to false")
    for path, c in _containers(spec):
        value = _sc(c).get("runAsNonRoot")
        if value is False or (value is None and pod_sc.get("runAsNonRoot") is not True):
            yield FieldError(f"{path}.securityContext.runAsNonRoot",
                             "must be set to true (here or in spec.securityContext)")


def _run_as_user(pod: Mapping[str, Any], spec: Mapping[str, Any]) -> Iterator[FieldError]:
    if (spec.get("securityContext") or {}).get("runAsUser") == 0:
        yield FieldError("spec.securityContext.runAsUser", "must not be 0")
    for path, c in _containers(spec):
        if _sc(c).get("runAsUser") == 0:
            yield FieldError(f"{path}.securityContext.runAsUser", "must not be 0")


def _seccomp_restricted(pod: Mapping[str, Any], spec: Mapping[str, Any]) -> Iterator[FieldError]:
    pod_type = ((spec.get("securityContext") or {}).get("seccompProfile") or {}).get("type")
    for path, c in _containers(spec):
        kind = (_sc(c).get("seccompProfile") or {}).get("type") or pod_type
        if kind not in ("RuntimeDefault", "Localhost"):
            yield FieldError(f"{path}.securityContext.seccompProfile.type",
                             "must be RuntimeDefault or Localhost (here or in spec.securityContext)")


def _capabilities_restricted(pod: Mapping[str, Any], spec: Mapping[str, Any]) -> Iterator[FieldError]:
    for path, c in _containers(spec):
        caps = _sc(c).get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            yield FieldError(f"{path}.securityContext.capabilities.drop", 'must include "ALL"')
        for j, cap in enumerate(caps.get("add") or []):
            if cap != "NET_BIND_SERVICE" and cap in BASELINE_CAPABILITIES:   # others: baseline's message
                yield FieldError(f"{path}.securityContext.capabilities.add[{j}]",
                                 f'capability "{cap}" is not allowed (only NET_BIND_SERVICE)')


Check = Callable[[Mapping[str, Any], Mapping[str, Any]], Iterator[FieldError]]
BASELINE: tuple[Check, ...] = (_host_namespaces, _privileged, _capabilities_baseline, _host_path, _host_ports,
                               _seccomp_baseline, _apparmor, _selinux, _proc_mount, _sysctls)
RESTRICTED: tuple[Check, ...] = BASELINE + (_volume_types, _privilege_escalation, _run_as_non_root, _run_as_user,
                                            _seccomp_restricted, _capabilities_restricted)
CHECKS: dict[str, tuple[Check, ...]] = {"privileged": (), "baseline": BASELINE, "restricted": RESTRICTED}


_CONTAINER_FIELDS = ("initContainers", "containers", "ephemeralContainers")
_POD_SC_FIELDS = ("seccompProfile", "seLinuxOptions", "sysctls", "appArmorProfile")
_SC_FIELDS = ("privileged", "capabilities", "seccompProfile", "seLinuxOptions", "procMount", "appArmorProfile")


def _plainly_baseline(pod: Mapping[str, Any], spec: Mapping[str, Any]) -> bool:
    """True when the pod sets none of the fields baseline looks at (most pods): one pass, so the
    common case costs a few dictionary lookups per container instead of every check."""
    if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
        return False
    pod_sc = spec.get("securityContext")
    if pod_sc and any(pod_sc.get(f) for f in _POD_SC_FIELDS):
        return False
    if any("hostPath" in v for v in spec.get("volumes") or ()):
        return False
    for field in _CONTAINER_FIELDS:
        for c in spec.get(field) or ():
            sc = c.get("securityContext")
            if sc and any(sc.get(f) for f in _SC_FIELDS):
                return False
            if any(port.get("hostPort") for port in c.get("ports") or ()):
                return False
    annotations = (pod.get("metadata") or {}).get("annotations")
    return not (annotations and any(k.startswith(APPARMOR_ANNOTATION) for k in annotations))


def violations(pod: Mapping[str, Any], level: str) -> list[FieldError]:
    """Every field of the pod that its namespace's level forbids (empty: admitted)."""
    spec = pod.get("spec") or {}
    if level == "baseline" and _plainly_baseline(pod, spec):
        return []
    return [error for check in CHECKS[level] for error in check(pod, spec)]


def refusal(pod: Mapping[str, Any], level: str, errors: list[FieldError]) -> str:
    name = (pod.get("metadata") or {}).get("name") or ""
    return f'pods "{name}" is forbidden: violates PodSecurity "{level}:latest": ' + "; ".join(map(str, errors))
