"""Containers: one process tree of a pod, its image, command, environment and resources.

A `Container` says what to run (image, command, args), what it gets
(environment, ports, volume mounts, resource requests and limits) and how to
watch it (probes in api/probes.py). `check_container` is its validation; the
pod (api/pod.py) adds the checks that span containers, such as unique names.

Defaults follow Kubernetes: imagePullPolicy comes from the image tag (`:latest`
or no tag -> Always, else IfNotPresent), port protocol is TCP, and a resource
with a limit but no request gets the limit as its request.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from api.base import ApiModel
from api.imagereference import InvalidReference, default_pull_policy, normalize_reference
from api.downward import ENV_FIELD_PATHS, ObjectFieldSelector, ResourceFieldSelector, check_field_ref, \
    check_resource_field_ref
from api.errors import FieldError, duplicate, invalid, not_found, required
from api.fieldtypes import ResourceList, check_port_name, check_port_number, quantity_value
from api.limits import MAX_BYTES, MAX_CPU_MILLIS
from api.names import check_dns1123_label
from api.probes import Lifecycle, Probe, check_lifecycle, check_probe

STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")


class ContainerPort(ApiModel):
    """A network port of a container."""

    container_port: int = Field(description="Port number on the pod's IP address (1-65535).")
    host_port: Optional[int] = Field(None, description="Port on the node to forward to containerPort; "
                                                       "0 or unset for none.")
    host_ip: Optional[str] = Field(None, alias="hostIP", description="Node IP to bind the host port to.")
    protocol: Literal["TCP", "UDP", "SCTP"] = Field("TCP", description="Protocol: TCP, UDP or SCTP.")
    name: Optional[str] = Field(None, description="IANA_SVC_NAME that services and probes can refer to.")


class ConfigMapKeySelector(ApiModel):
    """Selects a key of a ConfigMap."""

    name: str = Field(description="Name of the ConfigMap.")
    key: str = Field(description="The key to select.")
    optional: Optional[bool] = Field(None, description="Whether the ConfigMap or key may be missing.")


# The types below mirror Kubernetes' own, one per kind: their field declarations look like other
# kinds' (the `duplicates` tool pairs them by shape), but each is a separate API type; no logic to share.
class SecretKeySelector(ApiModel):
    """Selects a key of a Secret."""

    name: str = Field(description="Name of the Secret.")
    key: str = Field(description="The key to select.")
    optional: Optional[bool] = Field(None, description="Whether the Secret or key may be missing.")


class EnvVarSource(ApiModel):
    """Where an environment variable's value comes from. Exactly one source."""

    config_map_key_ref: Optional[ConfigMapKeySelector] = Field(None, description="A key of a ConfigMap.")
    secret_key_ref: Optional[SecretKeySelector] = Field(None, description="A key of a Secret.")
    field_ref: Optional[ObjectFieldSelector] = Field(None, description="A field of the pod, e.g. status.podIP.")
    resource_field_ref: Optional[ResourceFieldSelector] = Field(None, description="A request or limit of a "
                                                                                  "container.")


class EnvVar(ApiModel):
    """An environment variable."""

    name: str = Field(description="Variable name.")
    value: Optional[str] = Field(None, description="Value; $(VAR) references to earlier variables expand.")
    value_from: Optional[EnvVarSource] = Field(None, description="Source of the value; not with value.")


class ConfigMapEnvSource(ApiModel):
    """All keys of a ConfigMap as environment variables."""

    name: str = Field(description="Name of the ConfigMap.")
    optional: Optional[bool] = Field(None, description="Whether the ConfigMap may be missing.")


class SecretEnvSource(ApiModel):
    """All keys of a Secret as environment variables."""

    name: str = Field(description="Name of the Secret.")
    optional: Optional[bool] = Field(None, description="Whether the Secret may be missing.")


class EnvFromSource(ApiModel):
    """A set of environment variables. Exactly one of configMapRef and secretRef."""

    prefix: Optional[str] = Field(None, description="Prefix to put before each key.")
    config_map_ref: Optional[ConfigMapEnvSource] = Field(None, description="The ConfigMap to take keys from.")
    secret_ref: Optional[SecretEnvSource] = Field(None, description="The Secret to take keys from.")


class ResourceRequirements(ApiModel):
    """Compute resources: requests are reserved when scheduling, limits are enforced."""

    limits: Optional[ResourceList] = Field(None, description="Most of each resource the container may use.")
    requests: Optional[ResourceList] = Field(None, description="Amount of each resource the scheduler reserves; "
                                                               "defaults to the limit.")

    @model_validator(mode="after")
    def _default_requests(self) -> "ResourceRequirements":
        if self.limits:
            missing = {k: v for k, v in self.limits.items() if k not in (self.requests or {})}
            if missing:
                self.requests = {**(self.requests or {}), **missing}
        return self


class VolumeMount(ApiModel):
    """Mounts a pod volume into the container."""

    name: str = Field(description="Name of a volume of the pod.")
    mount_path: str = Field(description="Path in the container to mount at.")
    read_only: Optional[bool] = Field(None, description="Mount read-only.")
    sub_path: Optional[str] = Field(None, description="Path inside the volume to mount instead of its root.")


class Capabilities(ApiModel):
    """Linux capabilities to add to or drop from the default set."""

    add: Optional[list[str]] = Field(None, description="Capabilities to add, e.g. NET_ADMIN.")
    drop: Optional[list[str]] = Field(None, description="Capabilities to drop, or ALL.")


class SeccompProfile(ApiModel):
    """The seccomp filter of a container: the runtime's default, none, or a profile file on the node."""

    type: Literal["RuntimeDefault", "Unconfined", "Localhost"] = Field(
        description="RuntimeDefault (Docker's default profile; also when unset), Unconfined (no filter) or "
                    "Localhost (localhostProfile, a file in the agent's seccomp directory).")
    localhost_profile: Optional[str] = Field(None, description="Profile file, relative to the agent's seccomp "
                                                               "directory; only with type Localhost.")


def check_seccomp_profile(profile: SeccompProfile | None, path: str) -> list[FieldError]:
    if profile is None:
        return []
    where = f"{path}.seccompProfile.localhostProfile"
    if profile.type == "Localhost":
        name = profile.localhost_profile or ""
        if not name:
            return [required(where, "must be set when seccomp type is Localhost")]
        if name.startswith("/") or ".." in name.split("/"):
            return [invalid(where, name, "must be a relative path without '..'")]
    elif profile.localhost_profile is not None:
        return [invalid(where, profile.localhost_profile, "can only be set when seccomp type is Localhost")]
    return []


class SecurityContext(ApiModel):
    """Security settings of one container; they override the pod's securityContext."""

    run_as_user: Optional[int] = Field(None, ge=0, description="UID to run the process as.")
    run_as_group: Optional[int] = Field(None, ge=0, description="GID to run the process as.")
    run_as_non_root: Optional[bool] = Field(None, description="Refuse to start if the process would run as UID 0.")
    read_only_root_filesystem: Optional[bool] = Field(None, description="Mount the root filesystem read-only.")
    privileged: Optional[bool] = Field(None, description="Run with all capabilities and devices of the host.")
    allow_privilege_escalation: Optional[bool] = Field(None, description="Whether the process may gain more "
                                                                         "privileges (no_new_privs when false).")
    capabilities: Optional[Capabilities] = Field(None, description="Capabilities to add and drop.")
    seccomp_profile: Optional[SeccompProfile] = Field(None, description="Seccomp filter; overrides the pod's.")


class Container(ApiModel):
    """A container of a pod."""

    name: str = Field(description="Container name, a DNS-1123 label unique in the pod.")
    image: str = Field(description="Image reference, e.g. busybox:1.36 or registry:5000/app@sha256:...")
    image_pull_policy: Optional[Literal["Always", "IfNotPresent", "Never"]] = Field(
        None, description="When to pull the image: Always, IfNotPresent or Never; defaults from the tag.")
    command: Optional[list[str]] = Field(None, description="Entrypoint; replaces the image's ENTRYPOINT.")
    args: Optional[list[str]] = Field(None, description="Arguments; replace the image's CMD.")
    working_dir: Optional[str] = Field(None, description="Working directory; defaults to the image's.")
    ports: Optional[list[ContainerPort]] = Field(None, description="Ports the container listens on.")
    env: Optional[list[EnvVar]] = Field(None, description="Environment variables to set.")
    env_from: Optional[list[EnvFromSource]] = Field(None, description="Sets of variables from ConfigMaps "
                                                                      "or Secrets.")
    resources: Optional[ResourceRequirements] = Field(None, description="Compute resource requests and limits.")
    volume_mounts: Optional[list[VolumeMount]] = Field(None, description="Pod volumes to mount.")
    liveness_probe: Optional[Probe] = Field(None, description="Restart the container when this fails.")
    readiness_probe: Optional[Probe] = Field(None, description="Take the pod out of service when this fails.")
    startup_probe: Optional[Probe] = Field(None, description="Hold other probes until this succeeds.")
    lifecycle: Optional[Lifecycle] = Field(None, description="Actions run after start and before stop.")
    security_context: Optional[SecurityContext] = Field(None, description="Container security settings.")
    termination_message_path: str = Field("/dev/termination-log", description="File whose content becomes "
                                                                              "the termination message.")
    termination_message_policy: Literal["File", "FallbackToLogsOnError"] = Field(
        "File", description="File, or FallbackToLogsOnError to use the log tail when the file is empty.")
    stdin: Optional[bool] = Field(None, description="Allocate a stdin buffer for attach.")
    stdin_once: Optional[bool] = Field(None, description="Close stdin after the first attach ends.")
    tty: Optional[bool] = Field(None, description="Allocate a TTY; needs stdin.")

    @model_validator(mode="after")
    def _default_pull_policy(self) -> "Container":
        if self.image_pull_policy is None and self.image:
            self.image_pull_policy = default_pull_policy(self.image)  # type: ignore[assignment]
        return self


def _check_resource_list(resources: dict[str, str] | None, path: str) -> list[FieldError]:
    errors = []
    for name, value in (resources or {}).items():
        if name not in STANDARD_RESOURCES and "/" not in name and not name.startswith("hugepages-"):
            errors.append(invalid(f"{path}[{name}]", name, "must be a standard resource type "
                                                          "(cpu, memory, ephemeral-storage) or fully qualified"))
        elif quantity_value(value) < 0:
            errors.append(invalid(f"{path}[{name}]", value, "must be greater than or equal to 0"))
        elif name == "cpu" and quantity_value(value) * 1000 > MAX_CPU_MILLIS:
            errors.append(invalid(f"{path}[{name}]", value, f"must be less than or equal to "
                                                            f"{MAX_CPU_MILLIS // 1000} (cores a cgroup can be given)"))
        elif name != "cpu" and quantity_value(value) > MAX_BYTES:
            errors.append(invalid(f"{path}[{name}]", value, "must be less than or equal to 8Ei (2^63-1 bytes, "
                                                            "the largest quantity a cgroup limit can hold)"))
    return errors


def check_resources(res: ResourceRequirements, path: str) -> list[FieldError]:
    errors = _check_resource_list(res.limits, f"{path}.limits")
    errors += _check_resource_list(res.requests, f"{path}.requests")
    limits = res.limits or {}
    for name, value in (res.requests or {}).items():
        if name in limits and quantity_value(value) > quantity_value(limits[name]):
            errors.append(invalid(f"{path}.requests[{name}]", value,
                                  f"must be less than or equal to {name} limit of {limits[name]}"))
    return errors


def _check_env(env: list[EnvVar], path: str) -> list[FieldError]:
    errors = []
    for i, var in enumerate(env):
        p = f"{path}[{i}]"
        if not var.name:
            errors.append(required(f"{p}.name"))
        elif "=" in var.name or not var.name.isprintable():
            errors.append(invalid(f"{p}.name", var.name, "must consist of printable characters other than '='"))
        source = var.value_from
        if source is None:
            continue
        if var.value:
            errors.append(invalid(f"{p}.valueFrom", "", "may not be specified when `value` is not empty"))
        refs = [(n, r) for n, r in (("configMapKeyRef", source.config_map_key_ref),
                                    ("secretKeyRef", source.secret_key_ref), ("fieldRef", source.field_ref),
                                    ("resourceFieldRef", source.resource_field_ref)) if r is not None]
        if len(refs) != 1:
            errors.append(invalid(f"{p}.valueFrom", "", "must specify exactly one of: `fieldRef`, "
                                  "`resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"))
        elif source.field_ref is not None:
            errors += check_field_ref(source.field_ref, f"{p}.valueFrom.fieldRef", allowed=ENV_FIELD_PATHS)
        elif source.resource_field_ref is not None:
            errors += check_resource_field_ref(source.resource_field_ref, f"{p}.valueFrom.resourceFieldRef",
                                               need_container=False)
        else:
            ref = source.config_map_key_ref or source.secret_key_ref
            for attr in ("name", "key"):
                if not getattr(ref, attr):
                    errors.append(required(f"{p}.valueFrom.{refs[0][0]}.{attr}"))
    return errors


def _check_env_from(env_from: list[EnvFromSource], path: str) -> list[FieldError]:
    errors = []
    for i, source in enumerate(env_from):
        if (source.config_map_ref is None) == (source.secret_ref is None):
            errors.append(invalid(f"{path}[{i}]", "", "must specify exactly one of: `configMapRef` or `secretRef`"))
        elif not getattr(source.config_map_ref or source.secret_ref, "name", None):
            errors.append(required(f"{path}[{i}].{'configMapRef' if source.config_map_ref else 'secretRef'}.name"))
    return errors


def _check_ports(ports: list[ContainerPort], path: str) -> list[FieldError]:
    errors, names = [], set()
    for i, port in enumerate(ports):
        p = f"{path}[{i}]"
        errors += check_port_number(port.container_port, f"{p}.containerPort")
        if port.host_port:
            errors += check_port_number(port.host_port, f"{p}.hostPort")
        if port.name is not None:
            errors += check_port_name(port.name, f"{p}.name")
            if port.name in names:
                errors.append(duplicate(f"{p}.name", port.name))
            names.add(port.name)
    return errors


def check_container(c: Container, path: str, *, volume_names: set[str], init: bool = False) -> list[FieldError]:
    """Everything about one container that does not involve the other containers."""
    errors = []
    if msg := check_dns1123_label(c.name):
        errors.append(invalid(f"{path}.name", c.name, msg))
    if not c.image:
        errors.append(required(f"{path}.image"))
    elif c.image != c.image.strip():
        errors.append(invalid(f"{path}.image", c.image, "must not have leading or trailing whitespace"))
    else:
        try:       # kubelet's InvalidImageName, found here rather than retried on a node forever
            normalize_reference(c.image)
        except InvalidReference as exc:
            errors.append(invalid(f"{path}.image", c.image, str(exc).split(": ", 1)[-1]))
    errors += _check_ports(c.ports or [], f"{path}.ports")
    errors += _check_env(c.env or [], f"{path}.env")
    errors += _check_env_from(c.env_from or [], f"{path}.envFrom")
    if c.resources is not None:
        errors += check_resources(c.resources, f"{path}.resources")
    mount_paths = set()
    for i, mount in enumerate(c.volume_mounts or []):
        if mount.name not in volume_names:
            errors.append(not_found(f"{path}.volumeMounts[{i}].name", mount.name))
        if not mount.mount_path:
            errors.append(required(f"{path}.volumeMounts[{i}].mountPath"))
        elif mount.mount_path in mount_paths:
            errors.append(invalid(f"{path}.volumeMounts[{i}].mountPath", mount.mount_path, "must be unique"))
        elif not mount.mount_path.startswith("/"):
            errors.append(invalid(f"{path}.volumeMounts[{i}].mountPath", mount.mount_path, "must be an absolute path"))
        elif ".." in mount.mount_path.split("/"):
            errors.append(invalid(f"{path}.volumeMounts[{i}].mountPath", mount.mount_path, "must not contain '..'"))
        mount_paths.add(mount.mount_path)
        if mount.sub_path:
            # Kubernetes' validateLocalDescendingPath: inside the volume, never above it.
            if mount.sub_path.startswith("/"):
                errors.append(invalid(f"{path}.volumeMounts[{i}].subPath", mount.sub_path, "must be a relative path"))
            elif ".." in mount.sub_path.replace("\\", "/").split("/"):
                errors.append(invalid(f"{path}.volumeMounts[{i}].subPath", mount.sub_path, "must not contain '..'"))
    for attr, field_name, kind in (("liveness_probe", "livenessProbe", "liveness"),
                                   ("readiness_probe", "readinessProbe", "readiness"),
                                   ("startup_probe", "startupProbe", "startup")):
        probe = getattr(c, attr)
        if probe is None:
            continue
        if init:
            errors.append(FieldError(f"{path}.{field_name}", "Forbidden: may not be set for init containers"))
        else:
            errors += check_probe(probe, f"{path}.{field_name}", kind=kind)
    if c.lifecycle is not None:
        if init:
            errors.append(FieldError(f"{path}.lifecycle", "Forbidden: may not be set for init containers"))
        else:
            errors += check_lifecycle(c.lifecycle, f"{path}.lifecycle")
    sc = c.security_context
    if sc is not None:
        errors += check_seccomp_profile(sc.seccomp_profile, f"{path}.securityContext")
    if sc is not None and sc.privileged and sc.allow_privilege_escalation is False:
        errors.append(invalid(f"{path}.securityContext", "", "cannot set `allowPrivilegeEscalation` to false "
                                                             "and `privileged` to true"))
    return errors
