"""What a Service's endpoints should be, from its selector and its pods: pure functions.

Shared by the EndpointSlice controller (endpointslice.py) and the Endpoints
controller (endpoints.py), and read like Kubernetes' `endpointslice/utils.go`
and `endpoints_controller.go`:

- which pods count (`include_pod`): those with an IP, not finished, and — for
  EndpointSlices always, for Endpoints only with publishNotReadyAddresses — also
  those terminating;
- an endpoint's conditions (`pod_endpoint`): serving = the pod's Ready
  condition; terminating = the pod has a deletionTimestamp; ready = serving and
  not terminating (or publishNotReadyAddresses);
- target ports resolved per pod (`resolve_ports`): a number as is, a name
  through the pod's container ports of that name and protocol; a pod lacking a
  named port is left out of that port (and out of the endpoints when it has none
  of the Service's ports), and the problem is reported;
- endpoints grouped by their resolved ports (`desired_groups`), since one slice
  has one set of ports, and packed into slices of at most 100 (`plan_slices`),
  keeping each endpoint in the slice that has it, so that a change rewrites only
  the slices it touches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from api.endpointslice import MANAGED_BY_LABEL, SERVICE_NAME_LABEL

Obj = Mapping[str, Any]
MANAGED_BY = "endpointslice-controller.k8s.io"
HEADLESS_LABEL = "service.kubernetes.io/headless"
MAX_ENDPOINTS_PER_SLICE = 100
PortsKey = tuple[tuple[str, str, int, str], ...]   # (name, protocol, port, appProtocol) per port


def _meta(obj: Obj) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def selector_of(svc: Obj) -> dict[str, str] | None:
    """The Service's selector, or None when its endpoints are not the controllers' business
    (no selector: the user's own; ExternalName: none at all)."""
    spec = svc.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return None
    selector = spec.get("selector")
    return dict(selector) if selector else None


def selects(selector: Mapping[str, str], pod: Obj) -> bool:
    labels = _meta(pod).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def selector_pair(namespace: str, selector: Mapping[str, str]) -> str:
    """One label pair every selected pod has (the smallest key): the index key services are
    found by, so a pod event looks at the services sharing one of its labels, not at all."""
    key = min(selector)
    return f"{namespace}/{key}={selector[key]}"


def pod_pairs(pod: Obj) -> list[str]:
    namespace = _meta(pod).get("namespace") or ""
    return [f"{namespace}/{k}={v}" for k, v in (_meta(pod).get("labels") or {}).items()]


def pod_ip(pod: Obj) -> str:
    status = pod.get("status") or {}
    if status.get("podIP"):
        return str(status["podIP"])
    ips = status.get("podIPs") or []
    return str(ips[0].get("ip") or "") if ips else ""


def is_pod_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def is_terminating(pod: Obj) -> bool:
    return bool(_meta(pod).get("deletionTimestamp"))


def include_pod(pod: Obj, *, include_terminating: bool) -> bool:
    """Kubernetes' ShouldPodBeInEndpoints."""
    if not pod_ip(pod):
        return False
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    return include_terminating or not is_terminating(pod)


def relevant(pod: Obj) -> tuple:
    """What of a pod its endpoints depend on: an update that changes none of it is ignored."""
    meta, spec = _meta(pod), pod.get("spec") or {}
    return (pod_ip(pod), is_pod_ready(pod), bool(meta.get("deletionTimestamp")),
            (pod.get("status") or {}).get("phase"), spec.get("nodeName"), spec.get("hostname"),
            spec.get("subdomain"), tuple(sorted((meta.get("labels") or {}).items())))


@dataclass(frozen=True)
class MissingPort:
    pod: str          # pod name
    index: int        # index of the Service port
    name: str         # the targetPort name the pod lacks
    protocol: str

    def message(self) -> str:
        return (f'pod {self.pod} has no container port named "{self.name}" ({self.protocol}) for '
                f"spec.ports[{self.index}].targetPort; it is left out of the endpoints for that port")


def resolve_ports(svc: Obj, pod: Obj) -> tuple[list[dict[str, Any]], list[MissingPort]]:
    """The Service's ports as this pod serves them (EndpointSlice port dicts), and the named
    target ports it lacks. Kubernetes' FindPort."""
    container_ports: dict[tuple[str, str], int] = {}
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name"):
                container_ports.setdefault((p["name"], p.get("protocol") or "TCP"), int(p["containerPort"]))
    out, missing = [], []
    for i, port in enumerate((svc.get("spec") or {}).get("ports") or []):
        protocol = port.get("protocol") or "TCP"
        target = port.get("targetPort", port.get("port"))
        if isinstance(target, str) and not target.isdigit():
            number = container_ports.get((target, protocol))
            if number is None:
                missing.append(MissingPort(_meta(pod).get("name") or "", i, target, protocol))
                continue
        else:
            number = int(target)
        entry: dict[str, Any] = {"name": port.get("name") or "", "protocol": protocol, "port": number}
        if port.get("appProtocol"):
            entry["appProtocol"] = port["appProtocol"]
        out.append(entry)
    return out, missing


def ports_key(ports: list[dict[str, Any]] | None) -> PortsKey:
    return tuple(sorted((p.get("name") or "", p.get("protocol") or "TCP", int(p.get("port") or 0),
                         p.get("appProtocol") or "") for p in ports or []))


def should_set_hostname(pod: Obj, svc: Obj) -> bool:
    spec = pod.get("spec") or {}
    return bool(spec.get("hostname")) and spec.get("subdomain") == _meta(svc).get("name") and \
        _meta(pod).get("namespace") == _meta(svc).get("namespace")


def target_ref(pod: Obj) -> dict[str, Any]:
    meta = _meta(pod)
    return {"kind": "Pod", "namespace": meta.get("namespace"), "name": meta.get("name"), "uid": meta.get("uid")}


def pod_endpoint(pod: Obj, svc: Obj) -> dict[str, Any]:
    """The discovery.k8s.io/v1 endpoint of a pod (Kubernetes' podToEndpoint)."""
    serving = is_pod_ready(pod)
    terminating = is_terminating(pod)
    ready = bool((svc.get("spec") or {}).get("publishNotReadyAddresses")) or (serving and not terminating)
    ep: dict[str, Any] = {"addresses": [pod_ip(pod)],
                          "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
                          "targetRef": target_ref(pod)}
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        ep["nodeName"] = node
    if should_set_hostname(pod, svc):
        ep["hostname"] = pod["spec"]["hostname"]
    return ep


def endpoint_key(ep: Obj) -> str:
    ref = ep.get("targetRef") or {}
    return str(ref.get("uid") or (ep.get("addresses") or [""])[0])


@dataclass
class Group:
    ports: list[dict[str, Any]]
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)   # endpoint_key -> endpoint


def desired_groups(svc: Obj, pods: list[Obj]) -> tuple[dict[PortsKey, Group], list[MissingPort]]:
    """The Service's endpoints grouped by the ports they serve, and the ports pods lack."""
    groups: dict[PortsKey, Group] = {}
    problems: list[MissingPort] = []
    has_ports = bool((svc.get("spec") or {}).get("ports"))
    for pod in sorted(pods, key=lambda p: _meta(p).get("name") or ""):
        if not include_pod(pod, include_terminating=True):
            continue
        ports, missing = resolve_ports(svc, pod)
        problems += missing
        if has_ports and not ports:
            continue   # serves none of the Service's ports
        group = groups.setdefault(ports_key(ports), Group(ports=ports))
        ep = pod_endpoint(pod, svc)
        group.endpoints[endpoint_key(ep)] = ep
    return groups, problems


def slice_labels(svc: Obj) -> dict[str, str]:
    """Kubernetes copies the Service's labels onto its slices, then sets its own."""
    labels = {k: v for k, v in (_meta(svc).get("labels") or {}).items()
              if k not in (SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL)}
    labels[SERVICE_NAME_LABEL] = _meta(svc).get("name") or ""
    labels[MANAGED_BY_LABEL] = MANAGED_BY
    if (svc.get("spec") or {}).get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    return labels


def owner_ref(svc: Obj) -> dict[str, Any]:
    meta = _meta(svc)
    return {"apiVersion": "v1", "kind": "Service", "name": meta.get("name"), "uid": meta.get("uid"),
            "controller": True, "blockOwnerDeletion": True}


def new_slice(svc: Obj, ports: list[dict[str, Any]] | None, endpoints: list[dict[str, Any]]) -> dict[str, Any]:
    meta = _meta(svc)
    body: dict[str, Any] = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                            "metadata": {"generateName": f"{meta.get('name')}-", "namespace": meta.get("namespace"),
                                         "labels": slice_labels(svc), "ownerReferences": [owner_ref(svc)]},
                            "addressType": "IPv4", "endpoints": endpoints}
    if ports is not None:
        body["ports"] = ports
    return body


@dataclass
class SlicePlan:
    create: list[dict[str, Any]] = field(default_factory=list)
    update: list[dict[str, Any]] = field(default_factory=list)
    delete: list[dict[str, Any]] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.create or self.update or self.delete)


def plan_slices(svc: Obj, existing: list[Obj], groups: dict[PortsKey, Group], *,
                max_per_slice: int = MAX_ENDPOINTS_PER_SLICE) -> SlicePlan:
    """The writes that turn the Service's existing slices into the desired groups.

    An endpoint stays in the slice that has it (rewritten only if it changed); endpoints
    gone are removed; new ones fill the slices that change anyway, then others with
    room, then new slices. Slices left empty, or whose ports no group has, go. With no
    endpoints at all one empty slice without ports stays (Kubernetes' placeholder)."""
    plan = SlicePlan()
    labels = slice_labels(svc)
    by_key: dict[PortsKey, list[Obj]] = {}
    for s in sorted(existing, key=lambda s: _meta(s).get("name") or ""):
        by_key.setdefault(ports_key(s.get("ports")), []).append(s)
    for key, slices in by_key.items():
        group = groups.get(key)
        if group is None or not group.endpoints:
            plan.delete += slices
            continue
        remaining = dict(group.endpoints)
        kept: list[tuple[Obj, list[dict[str, Any]], bool]] = []
        for s in slices:
            endpoints, changed = [], False
            for ep in s.get("endpoints") or []:
                wanted = remaining.pop(endpoint_key(ep), None)
                if wanted is None:
                    changed = True
                    continue
                changed |= wanted != ep
                endpoints.append(wanted)
            changed |= (_meta(s).get("labels") or {}) != labels
            kept.append((s, endpoints, changed))
        new = list(remaining.values())
        # Fill changing slices first, then unchanged ones with room.
        for pass_changed in (True, False):
            for i, (s, endpoints, changed) in enumerate(kept):
                if changed != pass_changed or not new:
                    continue
                room = max_per_slice - len(endpoints)
                if room > 0:
                    endpoints += new[:room]
                    new = new[room:]
                    kept[i] = (s, endpoints, True)
        for s, endpoints, changed in kept:
            if not endpoints:
                plan.delete.append(s)
            elif changed:
                plan.update.append({**s, "metadata": {**_meta(s), "labels": labels}, "endpoints": endpoints})
        for i in range(0, len(new), max_per_slice):
            plan.create.append(new_slice(svc, group.ports, new[i:i + max_per_slice]))
    for key, group in groups.items():
        if key not in by_key and group.endpoints:
            for i in range(0, len(group.endpoints), max_per_slice):
                plan.create.append(new_slice(svc, group.ports, list(group.endpoints.values())[i:i + max_per_slice]))
    if not plan.create and len(plan.delete) == len(existing):
        # Nothing would be left: keep (or make) one empty placeholder slice.
        placeholder = next((s for s in plan.delete if not s.get("endpoints") and not s.get("ports")
                            and (_meta(s).get("labels") or {}) == labels), None)
        if placeholder is not None:
            plan.delete.remove(placeholder)
        else:
            plan.create.append(new_slice(svc, None, []))
    # A slice to create and one to delete: rewrite the old one instead (one write, not two,
    # and no moment with both or neither), as Kubernetes' reconciler does.
    while plan.create and plan.delete:
        old, new = plan.delete.pop(), plan.create.pop()
        update = {**old, "metadata": {**_meta(old), "labels": new["metadata"]["labels"]},
                  "endpoints": new["endpoints"]}
        update.pop("ports", None)
        if "ports" in new:
            update["ports"] = new["ports"]
        plan.update.append(update)
    return plan


def endpoints_subsets(svc: Obj, pods: list[Obj]) -> list[dict[str, Any]]:
    """The v1 Endpoints subsets (Kubernetes' endpoints controller, then RepackSubsets): ready
    addresses and not-ready addresses, grouped by identical ports, sorted."""
    publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    by_ports: dict[PortsKey, dict[str, Any]] = {}
    for pod in pods:
        if not include_pod(pod, include_terminating=publish):
            continue
        ports, _ = resolve_ports(svc, pod)
        if (svc.get("spec") or {}).get("ports") and not ports:
            continue
        address: dict[str, Any] = {"ip": pod_ip(pod), "targetRef": target_ref(pod)}
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            address["nodeName"] = node
        if should_set_hostname(pod, svc):
            address["hostname"] = pod["spec"]["hostname"]
        subset = by_ports.setdefault(ports_key(ports), {"ports": [{k: v for k, v in p.items()} for p in ports],
                                                        "addresses": [], "notReadyAddresses": []})
        ready = publish or (is_pod_ready(pod) and not is_terminating(pod))
        subset["addresses" if ready else "notReadyAddresses"].append(address)
    out = []
    for key in sorted(by_ports):
        subset = by_ports[key]
        result: dict[str, Any] = {}
        for field_name in ("addresses", "notReadyAddresses"):
            if subset[field_name]:
                result[field_name] = sorted(subset[field_name], key=lambda a: (a["ip"], a["targetRef"]["uid"] or ""))
        if subset["ports"]:
            result["ports"] = sorted(subset["ports"], key=lambda p: (p["name"], p["port"]))
        out.append(result)
    return out


def endpoints_labels(svc: Obj) -> dict[str, str]:
    labels = {k: v for k, v in (_meta(svc).get("labels") or {}).items() if k != HEADLESS_LABEL}
    if (svc.get("spec") or {}).get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    return labels
