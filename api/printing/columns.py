"""The columns of `ctl get` for each kind: kubectl's defaults, and what `-o wide` adds.

Each kind has one ordered list of `Column`s; a column marked `wide` appears
only with `-o wide` (in its place, as kubectl interleaves them: events put
SUBOBJECT before MESSAGE). A column's `value` turns an object (its JSON form,
a dict) into the cell text; "" prints as `<none>`. Kinds without an entry get
NAME and AGE. The printer (cli/printers/table.py) adds NAMESPACE with `-A` and
LABELS with `--show-labels`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from api.selectors import selector_from_spec
from api.printing.podstatus import pod_ready, pod_restarts, pod_status
from api.printing.timefmt import between, since

Obj = dict[str, Any]


@dataclass(frozen=True)
class Column:
    header: str
    value: Callable[[Obj, datetime], str]
    wide: bool = False


# ---- helpers on JSON-shaped objects ----

def get(obj: Any, path: str, default: Any = None) -> Any:
    """The value at a dotted path (`status.readyReplicas`), or default."""
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return default
        obj = obj[part]
    return default if obj is None else obj


def num(obj: Obj, path: str) -> str:
    return str(get(obj, path, 0))


def name(obj: Obj, _now: datetime) -> str:
    return str(get(obj, "metadata.name", ""))


def age(obj: Obj, at: datetime) -> str:
    return since(get(obj, "metadata.creationTimestamp"), at)


def format_labels(labels: dict[str, str] | None) -> str:
    """`app=web,tier=front` (sorted), "" when there are none."""
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items()))


def format_selector(spec: dict[str, Any] | None) -> str:
    """A LabelSelector document as kubectl prints it: `app=web,env in (prod,staging)`."""
    if not spec:
        return ""
    try:
        return str(selector_from_spec(spec))
    except ValueError:
        return "<error>"


def _template_containers(obj: Obj) -> list[dict[str, Any]]:
    return get(obj, "spec.template.spec.containers", []) or []


def containers_col(obj: Obj, _now: datetime) -> str:
    return ",".join(c.get("name", "") for c in _template_containers(obj))


def images_col(obj: Obj, _now: datetime) -> str:
    return ",".join(c.get("image", "") for c in _template_containers(obj))


def selector_col(obj: Obj, _now: datetime) -> str:
    return format_selector(get(obj, "spec.selector"))


WORKLOAD_WIDE = [Column("CONTAINERS", containers_col, wide=True), Column("IMAGES", images_col, wide=True),
                 Column("SELECTOR", selector_col, wide=True)]


# ---- per kind ----

def _node_status(node: Obj, _now: datetime) -> str:
    ready = next((c for c in get(node, "status.conditions", []) if c.get("type") == "Ready"), None)
    text = "Unknown"                     # as kubectl: no Ready condition at all
    if ready is not None:                # False or Unknown (the agent stopped reporting): NotReady, as kubectl
        text = "Ready" if ready.get("status") == "True" else "NotReady"
    if get(node, "spec.unschedulable"):
        text += ",SchedulingDisabled"
    return text


def _node_roles(node: Obj, _now: datetime) -> str:
    prefix = "node-role.kubernetes.io/"
    roles = sorted(k[len(prefix):] for k in get(node, "metadata.labels", {}) if k.startswith(prefix))
    return ",".join(r for r in roles if r)


def _node_address(kind: str) -> Callable[[Obj, datetime], str]:
    def value(node: Obj, _now: datetime) -> str:
        return ",".join(a.get("address", "") for a in get(node, "status.addresses", []) if a.get("type") == kind)
    return value


def _job_completions(job: Obj, _now: datetime) -> str:
    succeeded = get(job, "status.succeeded", 0)
    completions = get(job, "spec.completions")
    if completions is not None:
        return f"{succeeded}/{completions}"
    parallelism = get(job, "spec.parallelism", 0)
    return f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"


def _job_duration(job: Obj, at: datetime) -> str:
    start = get(job, "status.startTime")
    if not start:
        return ""
    end = get(job, "status.completionTime")
    return between(start, end) if end else since(start, at)


def _service_cluster_ip(svc: Obj, _now: datetime) -> str:
    return str(get(svc, "spec.clusterIP", ""))


def _service_external_ip(svc: Obj, _now: datetime) -> str:
    kind = get(svc, "spec.type", "ClusterIP")
    external = list(get(svc, "spec.externalIPs", []))
    if kind == "LoadBalancer":
        ingress = [i.get("ip") or i.get("hostname") for i in get(svc, "status.loadBalancer.ingress", [])]
        external = [i for i in ingress if i] + external
        return ",".join(external) or "<pending>"
    if kind == "ExternalName":
        return str(get(svc, "spec.externalName", ""))
    return ",".join(external)


def _service_ports(svc: Obj, _now: datetime) -> str:
    out = []
    for p in get(svc, "spec.ports", []):
        node_port = f":{p['nodePort']}" if p.get("nodePort") else ""
        out.append(f"{p.get('port')}{node_port}/{p.get('protocol', 'TCP')}")
    return ",".join(out)


def _service_selector(svc: Obj, _now: datetime) -> str:
    return format_labels(get(svc, "spec.selector"))


def list_with_more(items: list[str], count: int, limit: int = 3, *, empty: str = "") -> str:
    """kubectl's listWithMoreString: the first `limit`, then ` + N more...`."""
    text = ",".join(items[:limit])
    if count > limit:
        return f"{text} + {count - limit} more..."
    return text or empty


def _endpoints_col(ep: Obj, _now: datetime) -> str:
    """kubectl's formatEndpoints: ready ip:port pairs, three at most."""
    subsets = get(ep, "subsets", [])
    if not subsets:
        return "<none>"
    found: list[str] = []
    count = 0
    for subset in subsets:
        addresses = [a.get("ip", "") for a in subset.get("addresses") or []]
        ports = subset.get("ports") or []
        if not ports:
            found += addresses
            count += len(addresses)
        for port in ports:
            found += [f"{ip}:{port.get('port')}" for ip in addresses]
            count += len(addresses)
    return list_with_more(found, count)


def _slice_ports(eps: Obj, _now: datetime) -> str:
    ports = [str(p["port"]) if p.get("port") is not None else (p.get("name") or "*") for p in get(eps, "ports", [])]
    return list_with_more(ports, len(ports), empty="<unset>")


def _slice_endpoints(eps: Obj, _now: datetime) -> str:
    addresses = [a for ep in get(eps, "endpoints", []) for a in ep.get("addresses") or []]
    return list_with_more(addresses, len(addresses), empty="<unset>")


def _event_object(ev: Obj, _now: datetime) -> str:
    ref = get(ev, "involvedObject", {})
    return f"{str(ref.get('kind', '')).lower()}/{ref.get('name', '')}"


def _event_source(ev: Obj, _now: datetime) -> str:
    component = get(ev, "source.component") or get(ev, "reportingComponent", "")
    host = get(ev, "source.host", "")
    return f"{component}, {host}" if host else component


def event_last_seen(ev: Obj) -> Any:
    return get(ev, "lastTimestamp") or get(ev, "firstTimestamp") or get(ev, "metadata.creationTimestamp")


def event_first_seen(ev: Obj) -> Any:
    return get(ev, "firstTimestamp") or get(ev, "metadata.creationTimestamp")


def _lease_holder(lease: Obj, _now: datetime) -> str:
    return str(get(lease, "spec.holderIdentity", ""))


def _data_count(obj: Obj, _now: datetime) -> str:
    return str(len(get(obj, "data", {})) + len(get(obj, "binaryData", {})) + len(get(obj, "stringData", {})))


def _f(path: str, default: Any = "") -> Callable[[Obj, datetime], str]:
    """A column that shows the value at a dotted path."""
    return lambda obj, _now: str(get(obj, path, default))


def _ratio(top: str, bottom: str) -> Callable[[Obj, datetime], str]:
    return lambda obj, _now: f"{get(obj, top, 0)}/{get(obj, bottom, 0)}"


NAME: Column = Column("NAME", name)
AGE: Column = Column("AGE", age)


def _subjects(kind: str) -> Callable[[Obj, datetime], str]:
    """A binding's subjects of one kind, as kubectl's wide columns list them (ns/name for accounts)."""
    def column(obj: Obj, _now: datetime) -> str:
        return ", ".join((f"{s.get('namespace', '')}/{s.get('name')}" if kind == "ServiceAccount" else s.get("name", ""))
                         for s in get(obj, "subjects", []) or [] if s.get("kind") == kind)
    return column

COLUMNS: dict[str, list[Column]] = {
    "Pod": [NAME, Column("READY", lambda o, _: pod_ready(o)), Column("STATUS", lambda o, _: pod_status(o)),
            Column("RESTARTS", pod_restarts), AGE,
            Column("IP", _f("status.podIP"), wide=True), Column("NODE", _f("spec.nodeName"), wide=True),
            Column("NOMINATED NODE", _f("status.nominatedNodeName"), wide=True),
            Column("READINESS GATES", lambda o, _: ",".join(g.get("conditionType", "") for g in
                                                            get(o, "spec.readinessGates", [])), wide=True)],
    "Node": [NAME, Column("STATUS", _node_status), Column("ROLES", _node_roles), AGE,
             Column("VERSION", _f("status.nodeInfo.kubeletVersion")),
             Column("INTERNAL-IP", _node_address("InternalIP"), wide=True),
             Column("EXTERNAL-IP", _node_address("ExternalIP"), wide=True),
             Column("OS-IMAGE", _f("status.nodeInfo.osImage"), wide=True),
             Column("KERNEL-VERSION", _f("status.nodeInfo.kernelVersion"), wide=True),
             Column("CONTAINER-RUNTIME", _f("status.nodeInfo.containerRuntimeVersion"), wide=True)],
    "Deployment": [NAME, Column("READY", _ratio("status.readyReplicas", "spec.replicas")),
                   Column("UP-TO-DATE", lambda o, _: num(o, "status.updatedReplicas")),
                   Column("AVAILABLE", lambda o, _: num(o, "status.availableReplicas")), AGE, *WORKLOAD_WIDE],
    "ReplicaSet": [NAME, Column("DESIRED", lambda o, _: num(o, "spec.replicas")),
                   Column("CURRENT", lambda o, _: num(o, "status.replicas")),
                   Column("READY", lambda o, _: num(o, "status.readyReplicas")), AGE, *WORKLOAD_WIDE],
    "DaemonSet": [NAME, Column("DESIRED", lambda o, _: num(o, "status.desiredNumberScheduled")),
                  Column("CURRENT", lambda o, _: num(o, "status.currentNumberScheduled")),
                  Column("READY", lambda o, _: num(o, "status.numberReady")),
                  Column("UP-TO-DATE", lambda o, _: num(o, "status.updatedNumberScheduled")),
                  Column("AVAILABLE", lambda o, _: num(o, "status.numberAvailable")),
                  Column("NODE SELECTOR", lambda o, _: format_labels(get(o, "spec.template.spec.nodeSelector"))),
                  AGE, *WORKLOAD_WIDE],
    "Job": [NAME, Column("COMPLETIONS", _job_completions), Column("DURATION", _job_duration), AGE,
            *WORKLOAD_WIDE],
    "Service": [NAME, Column("TYPE", _f("spec.type", "ClusterIP")), Column("CLUSTER-IP", _service_cluster_ip),
                Column("EXTERNAL-IP", _service_external_ip), Column("PORT(S)", _service_ports), AGE,
                Column("SELECTOR", _service_selector, wide=True)],
    "Endpoints": [NAME, Column("ENDPOINTS", _endpoints_col), AGE],
    "EndpointSlice": [NAME, Column("ADDRESSTYPE", _f("addressType")), Column("PORTS", _slice_ports),
                      Column("ENDPOINTS", _slice_endpoints), AGE],
    "Event": [Column("LAST SEEN", lambda o, at: since(event_last_seen(o), at)), Column("TYPE", _f("type")),
              Column("REASON", _f("reason")), Column("OBJECT", _event_object),
              Column("SUBOBJECT", _f("involvedObject.fieldPath"), wide=True),
              Column("SOURCE", _event_source, wide=True),
              Column("MESSAGE", lambda o, _: str(get(o, "message", "")).strip()),
              Column("FIRST SEEN", lambda o, at: since(event_first_seen(o), at), wide=True),
              Column("COUNT", _f("count", 1), wide=True), Column("NAME", name, wide=True)],
    "Namespace": [NAME, Column("STATUS", _f("status.phase", "Active")), AGE],
    "Secret": [NAME, Column("TYPE", _f("type", "Opaque")), Column("DATA", _data_count), AGE],
    "ConfigMap": [NAME, Column("DATA", _data_count), AGE],
    "Lease": [NAME, Column("HOLDER", _lease_holder), AGE],
    "ServiceAccount": [NAME, Column("SECRETS", lambda o, _: str(len(get(o, "secrets", []) or []))), AGE],
    "Role": [NAME, Column("CREATED AT", _f("metadata.creationTimestamp"))],
    "ClusterRole": [NAME, Column("CREATED AT", _f("metadata.creationTimestamp"))],
    "RoleBinding": [NAME, Column("ROLE", lambda o, _: f'{get(o, "roleRef.kind")}/{get(o, "roleRef.name")}'), AGE,
                    *(Column(title, _subjects(kind), wide=True)
                      for title, kind in (("USERS", "User"), ("GROUPS", "Group"), ("SERVICEACCOUNTS", "ServiceAccount")))],
}
COLUMNS["ClusterRoleBinding"] = COLUMNS["RoleBinding"]


# ---- storage and StatefulSets (api/storage.py, api/statefulset.py) ----

_ACCESS_MODES = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}


def _access_modes(path: str) -> Callable[[Obj, datetime], str]:
    return lambda o, _: ",".join(_ACCESS_MODES.get(m, m) for m in get(o, path, []) or [])


def _pv_claim(pv: Obj, _now: datetime) -> str:
    ref = get(pv, "spec.claimRef")
    return f"{ref.get('namespace', '')}/{ref.get('name', '')}" if ref else ""


def _class_name(sc: Obj, _now: datetime) -> str:
    default = get(sc, "metadata.annotations", {}).get("storageclass.kubernetes.io/is-default-class") == "true"
    return name(sc, _now) + (" (default)" if default else "")


def _revision_owner(cr: Obj, _now: datetime) -> str:
    for ref in get(cr, "metadata.ownerReferences", []) or []:
        if ref.get("controller"):
            group = ref.get("apiVersion", "").split("/")[0] if "/" in ref.get("apiVersion", "") else ""
            return f"{ref.get('kind', '').lower()}{'.' + group if group else ''}/{ref.get('name', '')}"
    return ""


_UNSET = Column("VOLUMEATTRIBUTESCLASS", lambda o, _: "<unset>")
COLUMNS.update({
    "StatefulSet": [NAME, Column("READY", _ratio("status.readyReplicas", "spec.replicas")), AGE, *WORKLOAD_WIDE],
    "PersistentVolume": [NAME, Column("CAPACITY", _f("spec.capacity.storage")),
                         Column("ACCESS MODES", _access_modes("spec.accessModes")),
                         Column("RECLAIM POLICY", _f("spec.persistentVolumeReclaimPolicy", "Retain")),
                         Column("STATUS", _f("status.phase")), Column("CLAIM", _pv_claim),
                         Column("STORAGECLASS", _f("spec.storageClassName")), _UNSET,
                         Column("REASON", _f("status.reason")), AGE,
                         Column("VOLUMEMODE", _f("spec.volumeMode", "Filesystem"), wide=True)],
    "PersistentVolumeClaim": [NAME, Column("STATUS", _f("status.phase")), Column("VOLUME", _f("spec.volumeName")),
                              Column("CAPACITY", _f("status.capacity.storage")),
                              Column("ACCESS MODES", _access_modes("status.accessModes")),
                              Column("STORAGECLASS", _f("spec.storageClassName")), _UNSET, AGE,
                              Column("VOLUMEMODE", _f("spec.volumeMode", "Filesystem"), wide=True)],
    "StorageClass": [Column("NAME", _class_name), Column("PROVISIONER", _f("provisioner")),
                     Column("RECLAIMPOLICY", _f("reclaimPolicy", "Delete")),
                     Column("VOLUMEBINDINGMODE", _f("volumeBindingMode", "Immediate")),
                     Column("ALLOWVOLUMEEXPANSION", lambda o, _: str(bool(get(o, "allowVolumeExpansion"))).lower()),
                     AGE],
    "ControllerRevision": [NAME, Column("CONTROLLER", _revision_owner), Column("REVISION", _f("revision")), AGE],
})


def columns_for(kind: str, *, wide: bool = False) -> list[Column]:
    return [c for c in COLUMNS.get(kind, [NAME, AGE]) if wide or not c.wide]


# CronJob, HorizontalPodAutoscaler, PodDisruptionBudget, ResourceQuota, LimitRange: their own module,
# which uses the helpers above (hence imported last).
from api.printing.workload_policy import COLUMNS as _MORE  # noqa: E402

COLUMNS.update(_MORE)
