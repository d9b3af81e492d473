"""Pod (v1): one or more containers that share a network namespace and volumes, run on one node.

The PodSpec gathers the pieces defined in neighbouring modules: containers
(api/container.py, probes in api/probes.py), volumes (api/volumes.py),
scheduling constraints (api/affinity.py); the status is in api/podstatus.py.
Workload kinds embed a PodSpec in a `PodTemplateSpec` (api/podtemplate.py).

`check_pod_spec` validates a spec at any path (`spec`, `spec.template.spec`).
`pod_requests` and `qos_class` compute what the scheduler reserves and which
QoS class the agent uses, with Kubernetes' rules.
"""

from __future__ import annotations

import ipaddress
import math
from typing import Literal, Optional

from pydantic import Field, model_validator

from api.affinity import Affinity, Toleration, TopologySpreadConstraint, check_affinity, check_tolerations, \
    check_topology_spread
from api.base import ApiModel
from api.container import Container, SeccompProfile, check_container, check_seccomp_profile
from api.fieldtypes import quantity_value
from api.errors import FieldError, duplicate, invalid, required
from api.names import check_dns1123_label, check_dns1123_subdomain
from api.podstatus import PodStatus
from api.registry import ResourceInfo, register
from api.resource import Resource
from api.selectors import check_label_key, check_label_value
from api.volumes import Volume, check_volumes


class PodSecurityContext(ApiModel):
    """Security settings for all containers of the pod."""

    run_as_user: Optional[int] = Field(None, ge=0, description="UID to run container processes as.")
    run_as_group: Optional[int] = Field(None, ge=0, description="GID to run container processes as.")
    run_as_non_root: Optional[bool] = Field(None, description="Refuse to start a container that would run as "
                                                              "UID 0.")
    supplemental_groups: Optional[list[int]] = Field(None, description="Extra GIDs for every container process.")
    fs_group: Optional[int] = Field(None, ge=0, description="GID that owns the pod's volumes; added to every "
                                                            "process.")
    seccomp_profile: Optional[SeccompProfile] = Field(None, description="Seccomp filter of every container "
                                                                        "that sets none itself.")


class LocalObjectReference(ApiModel):
    """A reference to an object in the same namespace."""

    name: str = Field(description="Name of the object.")


class HostAlias(ApiModel):
    """An entry for the pod's /etc/hosts."""

    ip: str = Field(description="IP address of the entry.")
    hostnames: Optional[list[str]] = Field(None, description="Host names for the IP.")


class PodDNSConfigOption(ApiModel):
    """One resolver option of the pod's resolv.conf."""

    name: str = Field(description="Option name, e.g. ndots.")
    value: Optional[str] = Field(None, description="Option value, if it takes one.")


class PodDNSConfig(ApiModel):
    """DNS settings merged into the pod's resolv.conf on top of what dnsPolicy gives."""

    nameservers: Optional[list[str]] = Field(None, description="IP addresses of DNS servers, appended (at most "
                                                               "3 in all).")
    searches: Optional[list[str]] = Field(None, description="Search domains, appended (at most 32).")
    options: Optional[list[PodDNSConfigOption]] = Field(None, description="Resolver options; one with the name "
                                                                          "of an existing option replaces it.")


class PodSpec(ApiModel):
    """The desired state of a pod."""

    volumes: Optional[list[Volume]] = Field(None, description="Volumes the containers can mount.")
    init_containers: Optional[list[Container]] = Field(None, description="Containers run one by one, each to "
                                                                         "completion, before the others start.")
    containers: list[Container] = Field(description="The pod's containers; at least one.")
    restart_policy: Literal["Always", "OnFailure", "Never"] = Field(
        "Always", description="Restart exited containers: Always, OnFailure or Never.")
    termination_grace_period_seconds: int = Field(30, ge=0, description="Seconds between SIGTERM and SIGKILL "
                                                                        "when the pod is deleted.")
    active_deadline_seconds: Optional[int] = Field(None, ge=1, description="Seconds the pod may run before it "
                                                                           "is failed.")
    dns_policy: Literal["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"] = Field(
        "ClusterFirst", description="DNS setup: ClusterFirst, ClusterFirstWithHostNet, Default or None.")
    dns_config: Optional[PodDNSConfig] = Field(None, description="DNS settings added to what dnsPolicy gives.")
    node_selector: Optional[dict[str, str]] = Field(None, description="Labels a node must have to run the pod.")
    service_account_name: str = Field("default", description="ServiceAccount the pod runs as.")
    automount_service_account_token: Optional[bool] = Field(None, description="Mount the service account's "
                                                                              "token.")
    node_name: Optional[str] = Field(None, description="Node the pod is bound to; set by the scheduler.")
    host_network: Optional[bool] = Field(None, description="Use the node's network namespace.")
    host_pid: Optional[bool] = Field(None, alias="hostPID", description="Use the node's PID namespace.")
    host_ipc: Optional[bool] = Field(None, alias="hostIPC", description="Use the node's IPC namespace.")
    share_process_namespace: Optional[bool] = Field(None, description="One PID namespace for all containers.")
    security_context: Optional[PodSecurityContext] = Field(None, description="Pod-level security settings.")
    image_pull_secrets: Optional[list[LocalObjectReference]] = Field(None, description="Secrets with registry "
                                                                                       "credentials.")
    hostname: Optional[str] = Field(None, description="Host name of the pod; defaults to the pod name.")
    subdomain: Optional[str] = Field(None, description="Makes the FQDN <hostname>.<subdomain>.<ns>.svc.")
    affinity: Optional[Affinity] = Field(None, description="Node and pod affinity rules.")
    scheduler_name: str = Field("default-scheduler", description="Scheduler that places the pod.")
    tolerations: Optional[list[Toleration]] = Field(None, description="Node taints the pod tolerates.")
    host_aliases: Optional[list[HostAlias]] = Field(None, description="Extra /etc/hosts entries.")
    priority_class_name: Optional[str] = Field(None, description="Name of the pod's PriorityClass.")
    priority: Optional[int] = Field(None, description="Scheduling priority; higher goes first.")
    topology_spread_constraints: Optional[list[TopologySpreadConstraint]] = Field(
        None, description="How to spread matching pods across topology domains.")
    enable_service_links: Optional[bool] = Field(None, description="Inject service environment variables.")

    @model_validator(mode="after")
    def _host_network_ports(self) -> "PodSpec":
        # With the node's network, a container port is a host port (Kubernetes' defaulting).
        if self.host_network:
            for c in [*(self.init_containers or []), *self.containers]:
                for port in c.ports or []:
                    if not port.host_port:
                        port.host_port = port.container_port
        return self

    def all_containers(self) -> list[Container]:
        return [*(self.init_containers or []), *self.containers]


def check_pod_spec(spec: PodSpec, path: str) -> list[FieldError]:
    """Validate a PodSpec at `path` (`spec` for a pod, `spec.template.spec` in a workload)."""
    errors, volume_names = check_volumes(spec.volumes, f"{path}.volumes")
    if not spec.containers:
        errors.append(required(f"{path}.containers", "must have at least one container"))
    if spec.security_context is not None:
        errors += check_seccomp_profile(spec.security_context.seccomp_profile, f"{path}.securityContext")
    names: set[str] = set()
    host_ports: set[tuple[int, str, str]] = set()
    for field, containers, init in (("initContainers", spec.init_containers or [], True),
                                    ("containers", spec.containers, False)):
        for i, c in enumerate(containers):
            p = f"{path}.{field}[{i}]"
            errors += check_container(c, p, volume_names=volume_names, init=init)
            if c.name in names:
                errors.append(duplicate(f"{p}.name", c.name))
            names.add(c.name)
            for j, port in enumerate(c.ports or []):
                if not port.host_port or init:
                    continue
                if spec.host_network and port.host_port != port.container_port:
                    errors.append(invalid(f"{p}.ports[{j}].hostPort", port.host_port,
                                          "must match `containerPort` when `hostNetwork` is true"))
                bound = (port.host_port, port.protocol, port.host_ip or "")
                if bound in host_ports:
                    errors.append(duplicate(f"{p}.ports[{j}].hostPort", f"{port.host_port}/{port.protocol}"))
                host_ports.add(bound)
    for key, value in (spec.node_selector or {}).items():
        if msg := check_label_key(key) or check_label_value(value):
            errors.append(FieldError(f"{path}.nodeSelector", msg))
    errors += check_dns(spec, path)
    for field, name in (("hostname", spec.hostname), ("subdomain", spec.subdomain)):
        if name and (msg := check_dns1123_label(name)):
            errors.append(invalid(f"{path}.{field}", name, msg))
    for field, name in (("serviceAccountName", spec.service_account_name), ("nodeName", spec.node_name),
                        ("priorityClassName", spec.priority_class_name)):
        if name and (msg := check_dns1123_subdomain(name)):
            errors.append(invalid(f"{path}.{field}", name, msg))
    for i, secret in enumerate(spec.image_pull_secrets or []):
        if not secret.name:
            errors.append(required(f"{path}.imagePullSecrets[{i}].name"))
    if spec.affinity is not None:
        errors += check_affinity(spec.affinity, f"{path}.affinity")
    errors += check_tolerations(spec.tolerations or [], f"{path}.tolerations")
    errors += check_topology_spread(spec.topology_spread_constraints or [], f"{path}.topologySpreadConstraints")
    return errors


MAX_DNS_NAMESERVERS = 3
MAX_DNS_SEARCHES = 32
MAX_DNS_SEARCH_CHARS = 2048


def check_dns(spec: PodSpec, path: str) -> list[FieldError]:
    """dnsPolicy None needs nameservers of its own; dnsConfig within the resolver's limits (Kubernetes')."""
    config, at = spec.dns_config, f"{path}.dnsConfig"
    if spec.dns_policy == "None" and config is None:
        return [required(at, "must provide `dnsConfig` when `dnsPolicy` is None")]
    if config is None:
        return []
    errors = []
    nameservers, searches = config.nameservers or [], config.searches or []
    if spec.dns_policy == "None" and not nameservers:
        errors.append(required(f"{at}.nameservers", "must provide at least one DNS nameserver when `dnsPolicy` "
                                                    "is None"))
    if len(nameservers) > MAX_DNS_NAMESERVERS:
        errors.append(invalid(f"{at}.nameservers", nameservers,
                              f"must not have more than {MAX_DNS_NAMESERVERS} nameservers"))
    for i, server in enumerate(nameservers):
        try:
            ipaddress.ip_address(server)
        except ValueError:
            errors.append(invalid(f"{at}.nameservers[{i}]", server, "must be a valid IP address"))
    if len(searches) > MAX_DNS_SEARCHES:
        errors.append(invalid(f"{at}.searches", searches, f"must not have more than {MAX_DNS_SEARCHES} search paths"))
    if len(" ".join(searches)) > MAX_DNS_SEARCH_CHARS:
        errors.append(invalid(f"{at}.searches", searches,
                              f"must not have more than {MAX_DNS_SEARCH_CHARS} characters (including spaces) "
                              f"in the search list"))
    for i, search in enumerate(searches):
        name = search[:-1] if search.endswith(".") else search
        if msg := check_dns1123_subdomain(name):
            errors.append(invalid(f"{at}.searches[{i}]", search, msg))
    for i, option in enumerate(config.options or []):
        if not option.name:
            errors.append(required(f"{at}.options[{i}].name"))
    return errors


# The types below mirror Kubernetes' own, one per kind: their field declarations look like other
# kinds' (the `duplicates` tool pairs them by shape), but each is a separate API type; no logic to share.
class Pod(Resource):
    """A group of containers scheduled together onto one node."""

    api_version: Literal["v1"] = "v1"  # type: ignore[assignment]
    kind: Literal["Pod"] = "Pod"
    spec: PodSpec = Field(description="Desired state of the pod.")
    status: Optional[PodStatus] = Field(None, description="Observed state of the pod, written by the "
                                                          "scheduler and the agent.")

    def validate_semantics(self) -> list[FieldError]:
        return check_pod_spec(self.spec, "spec")


# ---- resources: what the scheduler reserves, which QoS class applies ----

def _amount(resource: str, value: str) -> int:
    """cpu in millicores, everything else in whole units (bytes), rounded up."""
    q = quantity_value(value)
    return math.ceil(q * 1000) if resource == "cpu" else math.ceil(q)


def pod_requests(pod: Pod | PodSpec) -> dict[str, int]:
    """The resources a pod reserves: {"cpu": millicores, "memory": bytes, ...other: units}.

    Kubernetes' rule: the sum over containers, but at least the largest request of
    any one init container (init containers run one at a time, before the others).
    """
    spec = pod.spec if isinstance(pod, Pod) else pod
    total = {"cpu": 0, "memory": 0}
    for c in spec.containers:
        for name, value in ((c.resources.requests or {}) if c.resources else {}).items():
            total[name] = total.get(name, 0) + _amount(name, value)
    for c in spec.init_containers or []:
        for name, value in ((c.resources.requests or {}) if c.resources else {}).items():
            total[name] = max(total.get(name, 0), _amount(name, value))
    return total


def qos_class(pod: Pod | PodSpec) -> str:
    """Guaranteed, Burstable or BestEffort, as Kubernetes computes it (cpu and memory only).

    BestEffort: no container requests or limits cpu or memory. Guaranteed: every
    container has cpu and memory limits, and requests equal to them. Else Burstable.
    """
    spec = pod.spec if isinstance(pod, Pod) else pod
    requests: dict[str, int] = {}
    limits: dict[str, int] = {}
    guaranteed = True
    for c in spec.all_containers():
        res = c.resources
        for name, value in ((res.requests or {}) if res else {}).items():
            if name in ("cpu", "memory") and (amount := _amount(name, value)):
                requests[name] = requests.get(name, 0) + amount
        container_limits = set()
        for name, value in ((res.limits or {}) if res else {}).items():
            if name in ("cpu", "memory") and (amount := _amount(name, value)):
                container_limits.add(name)
                limits[name] = limits.get(name, 0) + amount
        if container_limits != {"cpu", "memory"}:
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and requests == limits:
        return "Guaranteed"
    return "Burstable"


register(ResourceInfo(kind="Pod", plural="pods", model=Pod, short_names=("po",)))
