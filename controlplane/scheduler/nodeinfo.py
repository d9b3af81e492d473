"""PodInfo and NodeInfo: what the scheduler knows about a pod and a node, computed once.

Pods and nodes arrive from informers as dicts (their JSON form, camelCase). Parsing
20,000 pods into pydantic models would cost more than scheduling them, so this
module reads the few fields scheduling needs straight from the dicts, once per
object version, into small slotted classes: a pod's requests, host ports, node
selector terms, (anti-)affinity terms, spread constraints, tolerations, owner and
images; a node's allocatable resources, labels, taints, images, and the sums over
the pods on it. Plugins (plugins/*) read these; the cache (cache.py) keeps them.

The objects were validated by the API server, so parsing here does not re-check.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from typing import Any, Mapping

from api.requests import allocatable_dict, amount
from api.selectors import Requirement, Selector, selector_from_spec

HOSTNAME_LABEL = "kubernetes.io/hostname"
ZONE_LABEL = "topology.kubernetes.io/zone"
# LeastAllocated counts a container without requests as this much (Kubernetes' non-zero defaults),
# so that many "free" pods still spread out.
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024

Key = tuple[str, str]  # (namespace, name)


def normalized_image(name: str) -> str:
    """`busybox` -> `docker.io/library/busybox:latest`, so pod and node image names compare."""
    ref = name
    last = ref.rsplit("/", 1)[-1]
    if "@" not in ref and ":" not in last:
        ref += ":latest"
    first, _, rest = ref.partition("/")
    if not rest or ("." not in first and ":" not in first and first != "localhost"):
        ref = f"docker.io/{ref}"  # no registry host given
    parts = ref.split("/")
    if parts[0] == "docker.io" and len(parts) == 2:
        ref = f"docker.io/library/{parts[1]}"
    return ref


class NodeTerm:
    """One nodeSelectorTerm: requirements on labels and on fields (metadata.name), all must hold.
    An empty term matches no node (Kubernetes' rule)."""

    __slots__ = ("expressions", "fields")

    def __init__(self, term: Mapping[str, Any]):
        self.expressions = tuple(Requirement(e["key"], e["operator"], tuple(e.get("values") or ()))
                                 for e in term.get("matchExpressions") or ())
        self.fields = tuple(Requirement(e["key"], e["operator"], tuple(e.get("values") or ()))
                            for e in term.get("matchFields") or ())

    def matches(self, labels: Mapping[str, str], node_name: str) -> bool:
        if not self.expressions and not self.fields:
            return False
        if not all(r.matches(labels) for r in self.expressions):
            return False
        return not self.fields or all(r.matches({"metadata.name": node_name}) for r in self.fields)


class AffinityTerm:
    """A pod (anti-)affinity term: pods matching `selector` in `namespaces`, counted per value of
    `topology_key` on their nodes. A missing labelSelector matches no pod (Kubernetes' rule)."""

    __slots__ = ("selector", "namespaces", "namespace_selector", "topology_key", "weight")

    def __init__(self, term: Mapping[str, Any], own_namespace: str, weight: int = 0):
        spec = term.get("labelSelector")
        self.selector: Selector | None = None if spec is None else selector_from_spec(spec)
        ns_spec = term.get("namespaceSelector")
        self.namespace_selector: Selector | None = None if ns_spec is None else selector_from_spec(ns_spec)
        names = term.get("namespaces") or []
        if not names and ns_spec is None:
            names = [own_namespace]
        self.namespaces = frozenset(names)
        self.topology_key: str = term.get("topologyKey") or ""
        self.weight = weight

    def matches(self, pod: "PodInfo", namespace_labels: Mapping[str, Mapping[str, str]]) -> bool:
        if self.selector is None:
            return False
        if pod.namespace not in self.namespaces:
            if self.namespace_selector is None:
                return False
            if not self.namespace_selector.matches(namespace_labels.get(pod.namespace) or {}):
                return False
        return self.selector.matches(pod.labels)


class SpreadConstraint:
    """One topologySpreadConstraint."""

    __slots__ = ("max_skew", "topology_key", "hard", "selector", "min_domains")

    def __init__(self, c: Mapping[str, Any]):
        self.max_skew: int = int(c.get("maxSkew") or 1)
        self.topology_key: str = c.get("topologyKey") or ""
        self.hard = c.get("whenUnsatisfiable", "DoNotSchedule") == "DoNotSchedule"
        spec = c.get("labelSelector")
        self.selector: Selector | None = None if spec is None else selector_from_spec(spec)
        self.min_domains: int = int(c.get("minDomains") or 1)

    def counts(self, pod: "PodInfo") -> bool:
        return self.selector is not None and self.selector.matches(pod.labels)


def _affinity_terms(section: Mapping[str, Any] | None, namespace: str) -> tuple[list[AffinityTerm],
                                                                                 list[AffinityTerm]]:
    if not section:
        return [], []
    required = [AffinityTerm(t, namespace)
                for t in section.get("requiredDuringSchedulingIgnoredDuringExecution") or ()]
    preferred = [AffinityTerm(w.get("podAffinityTerm") or {}, namespace, int(w.get("weight") or 0))
                 for w in section.get("preferredDuringSchedulingIgnoredDuringExecution") or ()]
    return required, preferred


class PodInfo:
    """The scheduling-relevant facts of one pod version."""

    __slots__ = ("pod", "key", "namespace", "name", "uid", "labels", "requests", "nonzero_cpu", "nonzero_memory",
                 "host_ports", "node_selector", "required_node_terms", "preferred_node_terms", "tolerations",
                 "affinity", "anti_affinity", "preferred_affinity", "preferred_anti_affinity", "spread",
                 "owner_uid", "images", "priority", "node_name", "terminating", "scheduler_name")

    def __init__(self, pod: Mapping[str, Any]):
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        self.pod = pod
        self.namespace: str = meta.get("namespace") or "default"
        self.name: str = meta.get("name") or ""
        self.key: Key = (self.namespace, self.name)
        self.uid: str = meta.get("uid") or ""
        self.labels: dict[str, str] = meta.get("labels") or {}
        self.terminating = bool(meta.get("deletionTimestamp"))
        self.requests, self.nonzero_cpu, self.nonzero_memory = pod_requests(spec)
        self.host_ports: list[tuple[str, str, int]] = [
            (p.get("hostIP") or "0.0.0.0", p.get("protocol") or "TCP", int(p["hostPort"]))
            for c in spec.get("containers") or () for p in c.get("ports") or () if p.get("hostPort")]
        self.node_selector: dict[str, str] = spec.get("nodeSelector") or {}
        affinity = spec.get("affinity") or {}
        node_affinity = affinity.get("nodeAffinity") or {}
        required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
        self.required_node_terms: list[NodeTerm] | None = (
            None if required is None else [NodeTerm(t) for t in required.get("nodeSelectorTerms") or ()])
        self.preferred_node_terms: list[tuple[int, NodeTerm]] = [
            (int(p.get("weight") or 0), NodeTerm(p.get("preference") or {}))
            for p in node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or ()]
        self.tolerations: list[dict[str, Any]] = spec.get("tolerations") or []
        self.affinity, self.preferred_affinity = _affinity_terms(affinity.get("podAffinity"), self.namespace)
        self.anti_affinity, self.preferred_anti_affinity = _affinity_terms(affinity.get("podAntiAffinity"),
                                                                           self.namespace)
        self.spread = [SpreadConstraint(c) for c in spec.get("topologySpreadConstraints") or ()]
        self.owner_uid: str = next((r.get("uid") or "" for r in meta.get("ownerReferences") or ()
                                    if r.get("controller")), "")
        self.images = [normalized_image(c["image"]) for c in
                       [*(spec.get("initContainers") or ()), *(spec.get("containers") or ())] if c.get("image")]
        self.priority: int = int(spec.get("priority") or 0)
        self.node_name: str = spec.get("nodeName") or ""
        self.scheduler_name: str = spec.get("schedulerName") or "default-scheduler"

    @property
    def has_affinity(self) -> bool:
        """Any pod (anti-)affinity term: such pods matter to other pods' InterPodAffinity."""
        return bool(self.affinity or self.anti_affinity or self.preferred_affinity or self.preferred_anti_affinity)

    def __repr__(self) -> str:
        return f"PodInfo({self.namespace}/{self.name})"


@lru_cache(maxsize=4096)
def _amount(resource: str, value: str | int | float) -> int:
    """api/requests.amount, cached: the same few quantities recur in thousands of pods."""
    return amount(resource, value)


def _container_requests(container: Mapping[str, Any]) -> dict[str, int]:
    res = container.get("resources") or {}
    merged = {**(res.get("limits") or {}), **(res.get("requests") or {})}  # a limit alone is the request
    return {name: _amount(name, value) for name, value in merged.items()}


def pod_requests(spec: Mapping[str, Any]) -> tuple[dict[str, int], int, int]:
    """What the pod reserves, as api/requests.pod_requests_dict computes it (containers summed, at
    least the largest init container, plus one of the node's `pods`), and its cpu and memory with
    Kubernetes' defaults for containers that request none (used for scoring only)."""
    total: dict[str, int] = {"cpu": 0, "memory": 0}
    nonzero_cpu = nonzero_memory = 0
    for c in spec.get("containers") or ():
        requests = _container_requests(c)
        for name, value in requests.items():
            total[name] = total.get(name, 0) + value
        nonzero_cpu += requests.get("cpu") or DEFAULT_MILLI_CPU_REQUEST
        nonzero_memory += requests.get("memory") or DEFAULT_MEMORY_REQUEST
    for c in spec.get("initContainers") or ():
        for name, value in _container_requests(c).items():
            total[name] = max(total.get(name, 0), value)
    total["pods"] = 1
    return total, nonzero_cpu, nonzero_memory


def _port_conflict(used: Counter, ip: str, protocol: str, port: int) -> bool:
    """Kubernetes' HostPortInfo rule: 0.0.0.0 conflicts with every address on the same port."""
    if ip == "0.0.0.0":
        return any(p == port and proto == protocol for (_, proto, p) in used)
    return (ip, protocol, port) in used or ("0.0.0.0", protocol, port) in used


class NodeInfo:
    """A node and the pods on it (bound or assumed), with their sums kept up to date.

    `node` is None while pods name a node the scheduler has not seen (yet, or any
    more); such a NodeInfo only keeps their accounting and is never a candidate.
    A node without the `kubernetes.io/hostname` label is given one equal to its name,
    as every Skiff agent sets it, so hostname topology works on bare Node objects.
    """

    __slots__ = ("name", "node", "labels", "allocatable", "unschedulable", "taints", "hard_taints",
                 "prefer_taints", "images", "zone", "pods", "requested", "nonzero_cpu", "nonzero_memory",
                 "used_ports", "owner_counts", "generation")

    def __init__(self, name: str, node: Mapping[str, Any] | None = None):
        self.name = name
        self.pods: dict[Key, PodInfo] = {}
        self.requested: dict[str, int] = {"cpu": 0, "memory": 0, "pods": 0}
        self.nonzero_cpu = self.nonzero_memory = 0
        self.used_ports: Counter = Counter()
        self.owner_counts: Counter = Counter()
        self.generation = 0
        self.set_node(node)

    def set_node(self, node: Mapping[str, Any] | None) -> None:
        self.node = node
        node = node or {}
        labels = (node.get("metadata") or {}).get("labels") or {}
        if HOSTNAME_LABEL not in labels:
            labels = {**labels, HOSTNAME_LABEL: self.name}
        self.labels: dict[str, str] = labels
        self.zone: str = labels.get(ZONE_LABEL, "")
        spec = node.get("spec") or {}
        # cpu (millicores), memory (bytes) and pods are always present (0 when the node reports none).
        self.allocatable: dict[str, int] = {"cpu": 0, "memory": 0, "pods": 0,
                                            **(allocatable_dict(node) if node else {})}
        self.unschedulable = bool(spec.get("unschedulable"))
        self.taints: list[dict[str, Any]] = spec.get("taints") or []
        self.hard_taints = [t for t in self.taints if t.get("effect") in ("NoSchedule", "NoExecute")]
        self.prefer_taints = [t for t in self.taints if t.get("effect") == "PreferNoSchedule"]
        self.images: dict[str, int] = {}
        for image in (node.get("status") or {}).get("images") or ():
            for name in image.get("names") or ():
                self.images[normalized_image(name)] = int(image.get("sizeBytes") or 0)
        self.generation += 1

    def add_pod(self, pod: PodInfo) -> None:
        self.pods[pod.key] = pod
        self._account(pod, 1)

    def remove_pod(self, key: Key) -> PodInfo | None:
        pod = self.pods.pop(key, None)
        if pod is not None:
            self._account(pod, -1)
        return pod

    def _account(self, pod: PodInfo, sign: int) -> None:
        requested = self.requested
        for name, value in pod.requests.items():
            requested[name] = requested.get(name, 0) + sign * value
        self.nonzero_cpu += sign * pod.nonzero_cpu
        self.nonzero_memory += sign * pod.nonzero_memory
        for port in pod.host_ports:
            self.used_ports[port] += sign
            if self.used_ports[port] <= 0:
                del self.used_ports[port]
        if pod.owner_uid:
            self.owner_counts[pod.owner_uid] += sign
            if self.owner_counts[pod.owner_uid] <= 0:
                del self.owner_counts[pod.owner_uid]
        self.generation += 1

    def port_conflict(self, ip: str, protocol: str, port: int) -> bool:
        return _port_conflict(self.used_ports, ip, protocol, port)

    def __repr__(self) -> str:
        return f"NodeInfo({self.name}, pods={len(self.pods)})"
