"""Table-driven tests of every scheduler plugin: each filter's exact reason strings, each score.

A case builds a tiny cluster (nodes as dicts, pods already bound to them), runs one
plugin's PreFilter/Filter (or PreScore/Score/NormalizeScore) the way the framework
does, and compares with what Kubernetes would say.
"""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.scheduler.cache import Cache
from controlplane.scheduler.framework import SKIP, UNSCHEDULABLE, UNSCHEDULABLE_AND_UNRESOLVABLE, CycleState, \
    Framework, Status
from controlplane.scheduler.nodeinfo import PodInfo
from controlplane.scheduler.plugins.balanced_allocation import NodeResourcesBalancedAllocation
from controlplane.scheduler.plugins.image_locality import ImageLocality
from controlplane.scheduler.plugins.inter_pod_affinity import REASON_AFFINITY, REASON_ANTI_AFFINITY, \
    REASON_EXISTING_ANTI_AFFINITY, InterPodAffinity
from controlplane.scheduler.plugins.least_allocated import NodeResourcesLeastAllocated
from controlplane.scheduler.plugins.node_affinity import REASON as AFFINITY_REASON, NodeAffinity
from controlplane.scheduler.plugins.node_name import REASON as NODE_NAME_REASON, NodeName
from controlplane.scheduler.plugins.node_ports import REASON as PORTS_REASON, NodePorts
from controlplane.scheduler.plugins.node_resources_fit import NodeResourcesFit
from controlplane.scheduler.plugins.node_unschedulable import REASON as CORDONED_REASON, NodeUnschedulable
from controlplane.scheduler.plugins.pod_topology_spread import REASON as SPREAD_REASON, \
    REASON_MISSING_LABEL, PodTopologySpread
from controlplane.scheduler.plugins.selector_spread import SelectorSpread
from controlplane.scheduler.plugins.taint_toleration import TaintToleration

ZONE = "topology.kubernetes.io/zone"
HOST = "kubernetes.io/hostname"
MI = 1024 * 1024


# ---- builders ------------------------------------------------------------------------

def node(name: str, *, cpu: str = "4", memory: str = "8Gi", pods: str = "110", labels: dict | None = None,
         taints: list | None = None, unschedulable: bool = False, images: list | None = None,
         extra: dict | None = None) -> dict[str, Any]:
    allocatable = {"cpu": cpu, "memory": memory, "pods": pods, **(extra or {})}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"taints": taints or [], "unschedulable": unschedulable},
            "status": {"allocatable": allocatable, "capacity": allocatable, "images": images or []}}


def pod(name: str, *, ns: str = "default", cpu: str | None = None, memory: str | None = None,
        labels: dict | None = None, on: str | None = None, image: str = "busybox:1.36",
        ports: list | None = None, owner: str | None = None, extra_requests: dict | None = None,
        **spec: Any) -> dict[str, Any]:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v} | (extra_requests or {})
    container: dict[str, Any] = {"name": "main", "image": image}
    if requests:
        container["resources"] = {"requests": requests}
    if ports:
        container["ports"] = ports
    meta: dict[str, Any] = {"name": name, "namespace": ns, "uid": f"uid-{ns}-{name}", "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner,
                                    "uid": f"uid-{owner}", "controller": True}]
    p = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"containers": [container], **spec}}
    if on:
        p["spec"]["nodeName"] = on
    return p


def run_filter(plugin: Any, incoming: dict, target: str, nodes: list[dict],
               bound: list[dict] = (), namespaces: list[dict] = ()) -> Status | None:
    """PreFilter (Skip means: passes) then Filter of one plugin on one node."""
    cache = Cache.from_objects(nodes=nodes, pods=bound, namespaces=namespaces)
    state = CycleState(cache)
    info = PodInfo(incoming)
    if hasattr(plugin, "pre_filter"):
        status = plugin.pre_filter(state, info)
        if status is not None and status.code == SKIP:
            return None
        assert status is None
    return plugin.filter(state, info, cache.nodes[target])


def run_score(plugin: Any, incoming: dict, nodes: list[dict], bound: list[dict] = ()) -> dict[str, int]:
    """Normalised (weight 1) score of every node for one plugin."""
    cache = Cache.from_objects(nodes=nodes, pods=bound)
    framework = Framework(filters=[], scores=[(plugin, 1)])
    candidates = cache.node_list()
    scores = framework.run_scores(CycleState(cache), PodInfo(incoming), candidates)
    return {n.name: scores.totals[i] for i, n in enumerate(candidates)}


def reasons(status: Status | None) -> tuple[str, ...] | None:
    return None if status is None else status.reasons


# ---- NodeUnschedulable ------------------------------------------------------------------

@pytest.mark.parametrize("cordoned, tolerations, expected", [
    (False, [], None),
    (True, [], (CORDONED_REASON,)),
    (True, [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}], None),
    (True, [{"operator": "Exists"}], None),
    (True, [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoExecute"}],
     (CORDONED_REASON,)),
])
def test_node_unschedulable(cordoned, tolerations, expected):
    status = run_filter(NodeUnschedulable(), pod("p", tolerations=tolerations), "n1",
                        [node("n1", unschedulable=cordoned)])
    assert reasons(status) == expected
    assert CORDONED_REASON == "node(s) were unschedulable"
    if status:
        assert status.code == UNSCHEDULABLE_AND_UNRESOLVABLE


# ---- NodeName -----------------------------------------------------------------------------

@pytest.mark.parametrize("wanted, target, expected", [
    (None, "n1", None),
    ("n1", "n1", None),
    ("n1", "n2", ("node(s) didn't match the requested node name",)),
])
def test_node_name(wanted, target, expected):
    incoming = pod("p", on=wanted)
    assert reasons(run_filter(NodeName(), incoming, target, [node("n1"), node("n2")])) == expected
    assert NODE_NAME_REASON == "node(s) didn't match the requested node name"


# ---- NodeResourcesFit ---------------------------------------------------------------------

@pytest.mark.parametrize("incoming, target, bound, expected", [
    (pod("p", cpu="1", memory="1Gi"), node("n1", cpu="2", memory="2Gi"), [], None),
    (pod("p", cpu="3"), node("n1", cpu="2"), [], ("Insufficient cpu",)),
    (pod("p", memory="3Gi"), node("n1", memory="2Gi"), [], ("Insufficient memory",)),
    (pod("p", cpu="3", memory="3Gi"), node("n1", cpu="2", memory="2Gi"), [],
     ("Insufficient cpu", "Insufficient memory")),
    (pod("p"), node("n1", pods="1"), [pod("old", on="n1")], ("Too many pods",)),
    (pod("p", cpu="3"), node("n1", cpu="2", pods="1"), [pod("old", on="n1")], ("Too many pods", "Insufficient cpu")),
    # pods already on the node count
    (pod("p", cpu="500m"), node("n1", cpu="1"), [pod("old", cpu="600m", on="n1")], ("Insufficient cpu",)),
    (pod("p", cpu="400m"), node("n1", cpu="1"), [pod("old", cpu="600m", on="n1")], None),
    # finished pods do not
    (pod("p", cpu="500m"), node("n1", cpu="1"),
     [{**pod("old", cpu="600m", on="n1"), "status": {"phase": "Succeeded"}}], None),
    # the largest init container counts when it is more than the sum of the others
    (pod("p", cpu="100m", initContainers=[{"name": "init", "image": "busybox",
                                           "resources": {"requests": {"cpu": "2"}}}]),
     node("n1", cpu="1"), [], ("Insufficient cpu",)),
    # an extended resource the node does not have
    (pod("p", extra_requests={"example.com/gpu": "1"}), node("n1"), [], ("Insufficient example.com/gpu",)),
    (pod("p", extra_requests={"example.com/gpu": "1"}), node("n1", extra={"example.com/gpu": "2"}), [], None),
    # a pod that requests nothing fits a node with no cpu left
    (pod("p"), node("n1", cpu="1"), [pod("old", cpu="1", on="n1")], None),
])
def test_node_resources_fit(incoming, target, bound, expected):
    status = run_filter(NodeResourcesFit(), incoming, "n1", [target], bound)
    assert reasons(status) == expected
    if status:
        assert status.code == UNSCHEDULABLE


# ---- NodeAffinity -------------------------------------------------------------------------

def required(*terms: dict) -> dict:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


def expr(key: str, operator: str, *values: str) -> dict:
    e: dict[str, Any] = {"key": key, "operator": operator}
    if values:
        e["values"] = list(values)
    return e


LABELS = {"disk": "ssd", "cores": "8", ZONE: "a"}


@pytest.mark.parametrize("spec, expected_fit", [
    ({}, True),
    ({"nodeSelector": {"disk": "ssd"}}, True),
    ({"nodeSelector": {"disk": "hdd"}}, False),
    ({"nodeSelector": {"disk": "ssd", "gpu": "yes"}}, False),
    ({"affinity": required({"matchExpressions": [expr("disk", "In", "ssd", "nvme")]})}, True),
    ({"affinity": required({"matchExpressions": [expr("disk", "In", "hdd")]})}, False),
    ({"affinity": required({"matchExpressions": [expr("disk", "NotIn", "hdd")]})}, True),
    ({"affinity": required({"matchExpressions": [expr("disk", "NotIn", "ssd")]})}, False),
    ({"affinity": required({"matchExpressions": [expr("gpu", "NotIn", "yes")]})}, True),
    ({"affinity": required({"matchExpressions": [expr("disk", "Exists")]})}, True),
    ({"affinity": required({"matchExpressions": [expr("gpu", "Exists")]})}, False),
    ({"affinity": required({"matchExpressions": [expr("gpu", "DoesNotExist")]})}, True),
    ({"affinity": required({"matchExpressions": [expr("disk", "DoesNotExist")]})}, False),
    ({"affinity": required({"matchExpressions": [expr("cores", "Gt", "4")]})}, True),
    ({"affinity": required({"matchExpressions": [expr("cores", "Gt", "8")]})}, False),
    ({"affinity": required({"matchExpressions": [expr("cores", "Lt", "16")]})}, True),
    ({"affinity": required({"matchExpressions": [expr("cores", "Lt", "8")]})}, False),
    ({"affinity": required({"matchExpressions": [expr("missing", "Gt", "1")]})}, False),
    ({"affinity": required({"matchFields": [expr("metadata.name", "In", "n1")]})}, True),
    ({"affinity": required({"matchFields": [expr("metadata.name", "NotIn", "n1")]})}, False),
    # expressions in a term are ANDed, terms are ORed
    ({"affinity": required({"matchExpressions": [expr("disk", "In", "ssd"), expr("gpu", "Exists")]})}, False),
    ({"affinity": required({"matchExpressions": [expr("gpu", "Exists")]},
                           {"matchExpressions": [expr("disk", "In", "ssd")]})}, True),
    # an empty term matches nothing
    ({"affinity": required({})}, False),
    # nodeSelector and affinity must both hold
    ({"nodeSelector": {"disk": "hdd"}, "affinity": required({"matchExpressions": [expr("disk", "Exists")]})}, False),
])
def test_node_affinity_filter(spec, expected_fit):
    status = run_filter(NodeAffinity(), pod("p", **spec), "n1", [node("n1", labels=LABELS)])
    assert reasons(status) == (None if expected_fit else ("node(s) didn't match Pod's node affinity/selector",))
    assert AFFINITY_REASON == "node(s) didn't match Pod's node affinity/selector"
    if status:
        assert status.code == UNSCHEDULABLE_AND_UNRESOLVABLE


def test_node_affinity_preferred_score():
    preferred = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 80, "preference": {"matchExpressions": [expr("disk", "In", "ssd")]}},
        {"weight": 20, "preference": {"matchExpressions": [expr(ZONE, "In", "a")]}},
    ]}}
    nodes = [node("both", labels={"disk": "ssd", ZONE: "a"}), node("ssd", labels={"disk": "ssd", ZONE: "b"}),
             node("zone", labels={ZONE: "a"}), node("none")]
    assert run_score(NodeAffinity(), pod("p", affinity=preferred), nodes) == {
        "both": 100, "ssd": 80, "zone": 20, "none": 0}
    # without preferences the plugin is skipped: 0 everywhere
    assert set(run_score(NodeAffinity(), pod("p"), nodes).values()) == {0}


# ---- TaintToleration ----------------------------------------------------------------------

GPU = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


@pytest.mark.parametrize("taints, tolerations, expected", [
    ([], [], None),
    ([GPU], [], ("node(s) had untolerated taint {dedicated: gpu}",)),
    ([{"key": "dedicated", "value": "gpu", "effect": "NoExecute"}], [],
     ("node(s) had untolerated taint {dedicated: gpu}",)),
    ([{"key": "maintenance", "effect": "NoSchedule"}], [], ("node(s) had untolerated taint {maintenance: }",)),
    ([{"key": "dedicated", "value": "gpu", "effect": "PreferNoSchedule"}], [], None),
    ([GPU], [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}], None),
    ([GPU], [{"key": "dedicated", "value": "gpu"}], None),  # operator defaults to Equal, any effect
    ([GPU], [{"key": "dedicated", "operator": "Exists"}], None),
    ([GPU], [{"operator": "Exists"}], None),  # tolerates everything
    ([GPU], [{"key": "dedicated", "operator": "Equal", "value": "cpu"}],
     ("node(s) had untolerated taint {dedicated: gpu}",)),
    ([GPU], [{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}],
     ("node(s) had untolerated taint {dedicated: gpu}",)),
    # the first untolerated taint is named
    ([GPU, {"key": "team", "value": "a", "effect": "NoSchedule"}], [{"key": "dedicated", "operator": "Exists"}],
     ("node(s) had untolerated taint {team: a}",)),
])
def test_taint_toleration_filter(taints, tolerations, expected):
    status = run_filter(TaintToleration(), pod("p", tolerations=tolerations), "n1", [node("n1", taints=taints)])
    assert reasons(status) == expected
    if status:
        assert status.code == UNSCHEDULABLE_AND_UNRESOLVABLE


def test_taint_toleration_score_prefers_fewer_prefer_no_schedule_taints():
    soft = lambda key: {"key": key, "effect": "PreferNoSchedule"}  # noqa: E731
    nodes = [node("clean"), node("one", taints=[soft("a")]), node("two", taints=[soft("a"), soft("b")])]
    assert run_score(TaintToleration(), pod("p"), nodes) == {"clean": 100, "one": 50, "two": 0}
    tolerant = pod("p", tolerations=[{"key": "a", "operator": "Exists", "effect": "PreferNoSchedule"}])
    assert run_score(TaintToleration(), tolerant, nodes) == {"clean": 100, "one": 100, "two": 0}
    # no such taints anywhere: every node is as good as the best
    assert run_score(TaintToleration(), pod("p"), [node("a"), node("b")]) == {"a": 100, "b": 100}


# ---- NodePorts ------------------------------------------------------------------------------

def port(host_port: int, protocol: str = "TCP", host_ip: str | None = None) -> dict:
    p: dict[str, Any] = {"containerPort": 80, "hostPort": host_port, "protocol": protocol}
    if host_ip:
        p["hostIP"] = host_ip
    return p


@pytest.mark.parametrize("wanted, used, fits", [
    ([], [port(80)], True),
    ([port(80)], [], True),
    ([port(80)], [port(80)], False),
    ([port(80)], [port(8080)], True),
    ([port(53, "UDP")], [port(53, "TCP")], True),
    ([port(80, host_ip="198.18.0.1")], [port(80)], False),            # 0.0.0.0 holds every address
    ([port(80)], [port(80, host_ip="198.18.0.1")], False),
    ([port(80, host_ip="198.18.0.1")], [port(80, host_ip="198.18.0.2")], True),
    ([port(80, host_ip="198.18.0.1")], [port(80, host_ip="198.18.0.1")], False),
])
def test_node_ports(wanted, used, fits):
    bound = [pod("old", on="n1", ports=used)] if used else []
    status = run_filter(NodePorts(), pod("p", ports=wanted), "n1", [node("n1")], bound)
    assert reasons(status) == (None if fits else (PORTS_REASON,))
    assert PORTS_REASON == "node(s) didn't have free ports for the requested pod ports"


# ---- InterPodAffinity -------------------------------------------------------------------------

def term(labels: dict, key: str = HOST, **extra: Any) -> dict:
    return {"labelSelector": {"matchLabels": labels}, "topologyKey": key, **extra}


def pod_affinity(*terms: dict) -> dict:
    return {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": list(terms)}}


def pod_anti_affinity(*terms: dict) -> dict:
    return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": list(terms)}}


ZONED = [node("n1", labels={ZONE: "a"}), node("n2", labels={ZONE: "a"}), node("n3", labels={ZONE: "b"}),
         node("bare")]  # "bare" has no zone label (but, like every node, a hostname)


@pytest.mark.parametrize("incoming, bound, expected", [
    # affinity by hostname: only the node running a db pod
    (pod("web", affinity=pod_affinity(term({"app": "db"}))), [pod("db", labels={"app": "db"}, on="n1")],
     {"n1": None, "n2": REASON_AFFINITY, "n3": REASON_AFFINITY}),
    # affinity by zone: any node in the db pod's zone; a node without the zone label never
    (pod("web", affinity=pod_affinity(term({"app": "db"}, ZONE))), [pod("db", labels={"app": "db"}, on="n1")],
     {"n1": None, "n2": None, "n3": REASON_AFFINITY, "bare": REASON_AFFINITY}),
    # no db pod anywhere: affinity cannot be met...
    (pod("web", affinity=pod_affinity(term({"app": "db"}))), [],
     {"n1": REASON_AFFINITY, "n2": REASON_AFFINITY}),
    # ...unless the pod is the first of a group that wants to be together
    (pod("db", labels={"app": "db"}, affinity=pod_affinity(term({"app": "db"}))), [],
     {"n1": None, "n2": None}),
    # pods in other namespaces do not count, unless the term names them
    (pod("web", affinity=pod_affinity(term({"app": "db"}))), [pod("db", ns="other", labels={"app": "db"}, on="n1")],
     {"n1": REASON_AFFINITY}),
    (pod("web", affinity=pod_affinity(term({"app": "db"}, namespaces=["other"]))),
     [pod("db", ns="other", labels={"app": "db"}, on="n1")], {"n1": None, "n2": REASON_AFFINITY}),
    (pod("web", affinity=pod_affinity(term({"app": "db"}, namespaceSelector={}))),
     [pod("db", ns="other", labels={"app": "db"}, on="n1")], {"n1": None}),
    # anti-affinity by hostname and by zone
    (pod("web", labels={"app": "web"}, affinity=pod_anti_affinity(term({"app": "web"}))),
     [pod("web-0", labels={"app": "web"}, on="n1")], {"n1": REASON_ANTI_AFFINITY, "n2": None, "n3": None}),
    (pod("web", labels={"app": "web"}, affinity=pod_anti_affinity(term({"app": "web"}, ZONE))),
     [pod("web-0", labels={"app": "web"}, on="n1")],
     {"n1": REASON_ANTI_AFFINITY, "n2": REASON_ANTI_AFFINITY, "n3": None, "bare": None}),
    # an existing pod's anti-affinity keeps matching pods away (symmetry)
    (pod("web", labels={"app": "web"}),
     [pod("loner", on="n1", affinity=pod_anti_affinity(term({"app": "web"})))],
     {"n1": REASON_EXISTING_ANTI_AFFINITY, "n2": None}),
    (pod("web", labels={"app": "other"}),
     [pod("loner", on="n1", affinity=pod_anti_affinity(term({"app": "web"})))], {"n1": None}),
    # a term without labelSelector matches no pod
    (pod("web", affinity=pod_anti_affinity({"topologyKey": HOST})), [pod("any", on="n1")], {"n1": None}),
])
def test_inter_pod_affinity_filter(incoming, bound, expected):
    for target, reason in expected.items():
        status = run_filter(InterPodAffinity(), incoming, target, ZONED, bound)
        assert reasons(status) == (None if reason is None else (reason,)), target
    assert REASON_AFFINITY == "node(s) didn't match pod affinity rules"
    assert REASON_ANTI_AFFINITY == "node(s) didn't match pod anti-affinity rules"


def test_inter_pod_affinity_namespace_selector_uses_namespace_labels():
    incoming = pod("web", affinity=pod_affinity(term({"app": "db"}, namespaceSelector={
        "matchLabels": {"team": "data"}})))
    bound = [pod("db", ns="data", labels={"app": "db"}, on="n1")]
    namespaces = [{"metadata": {"name": "data", "labels": {"team": "data"}}}]
    assert run_filter(InterPodAffinity(), incoming, "n1", ZONED, bound, namespaces) is None
    assert reasons(run_filter(InterPodAffinity(), incoming, "n1", ZONED, bound)) == (REASON_AFFINITY,)


def test_inter_pod_affinity_preferred_score():
    preferred = {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 50, "podAffinityTerm": term({"app": "cache"}, ZONE)}]},
                 "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "podAffinityTerm": term({"app": "web"})}]}}
    bound = [pod("cache", labels={"app": "cache"}, on="n1"), pod("web-0", labels={"app": "web"}, on="n2")]
    scores = run_score(InterPodAffinity(), pod("web", labels={"app": "web"}, affinity=preferred), ZONED, bound)
    # raw: n1 +50 (zone a has the cache); n2 +50 - 100 (and runs a web pod); n3, bare 0; then min-max
    assert scores == {"n1": 100, "n2": 0, "n3": 50, "bare": 50}
    # an existing pod's preference for us counts too
    fan = pod("fan", on="n3", affinity={"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 10, "podAffinityTerm": term({"app": "star"})}]}})
    assert run_score(InterPodAffinity(), pod("star", labels={"app": "star"}), ZONED, [fan]) == {
        "n1": 0, "n2": 0, "n3": 100, "bare": 0}


# ---- PodTopologySpread ------------------------------------------------------------------------

def spread(key: str = ZONE, max_skew: int = 1, when: str = "DoNotSchedule", **extra: Any) -> list[dict]:
    return [{"maxSkew": max_skew, "topologyKey": key, "whenUnsatisfiable": when,
             "labelSelector": {"matchLabels": {"app": "web"}}, **extra}]


WEB = {"app": "web"}


@pytest.mark.parametrize("incoming, bound, expected", [
    # zone a has 1 web pod, zone b none: the next goes to b
    (pod("w", labels=WEB, topologySpreadConstraints=spread()), [pod("w0", labels=WEB, on="n1")],
     {"n1": SPREAD_REASON, "n2": SPREAD_REASON, "n3": None, "bare": REASON_MISSING_LABEL}),
    # maxSkew 2 allows one more in zone a
    (pod("w", labels=WEB, topologySpreadConstraints=spread(max_skew=2)), [pod("w0", labels=WEB, on="n1")],
     {"n1": None, "n3": None}),
    # a pod that does not match its own selector adds nothing to its domain
    (pod("x", topologySpreadConstraints=spread()), [pod("w0", labels=WEB, on="n1")], {"n1": None, "n3": None}),
    # other namespaces and non-matching pods do not count
    (pod("w", labels=WEB, topologySpreadConstraints=spread()),
     [pod("w0", ns="other", labels=WEB, on="n1"), pod("x", on="n1")], {"n1": None, "n3": None}),
    # hostname spreading
    (pod("w", labels=WEB, topologySpreadConstraints=spread(HOST)), [pod("w0", labels=WEB, on="n1")],
     {"n1": SPREAD_REASON, "n2": None, "bare": None}),
    # ScheduleAnyway is a preference, not a filter
    (pod("w", labels=WEB, topologySpreadConstraints=spread(when="ScheduleAnyway")),
     [pod("w0", labels=WEB, on="n1")], {"n1": None, "bare": None}),
    # minDomains above the number of zones: the emptiest zone counts as 0 even when it is not
    (pod("w", labels=WEB, topologySpreadConstraints=spread(minDomains=3)),
     [pod("w0", labels=WEB, on="n1"), pod("w1", labels=WEB, on="n3")], {"n1": SPREAD_REASON, "n3": SPREAD_REASON}),
    # nodes the pod may not use (nodeSelector) are not domains: zone b is out, so zone a is the emptiest
    (pod("w", labels=WEB, topologySpreadConstraints=spread(), nodeSelector={ZONE: "a"}),
     [pod("w0", labels=WEB, on="n1")], {"n1": None, "n2": None}),
])
def test_pod_topology_spread_filter(incoming, bound, expected):
    for target, reason in expected.items():
        status = run_filter(PodTopologySpread(), incoming, target, ZONED, bound)
        assert reasons(status) == (None if reason is None else (reason,)), target
    assert SPREAD_REASON == "node(s) didn't match pod topology spread constraints"


# ---- score plugins ------------------------------------------------------------------------------

@pytest.mark.parametrize("incoming, target, bound, expected", [
    (pod("p", cpu="1", memory="2Gi"), node("n1", cpu="4", memory="8Gi"), [], 75),
    (pod("p", cpu="2", memory="2Gi"), node("n1", cpu="4", memory="8Gi"), [], (50 + 75) // 2),
    (pod("p", cpu="1", memory="2Gi"), node("n1", cpu="4", memory="8Gi"), [pod("o", cpu="2", memory="4Gi", on="n1")],
     25),
    # no requests: counted as 100m and 200Mi
    (pod("p"), node("n1", cpu="1", memory=f"{400 * MI}"), [], (90 + 50) // 2),
    (pod("p", cpu="8"), node("n1", cpu="4", memory="8Gi"), [], (0 + 97) // 2),
])
def test_least_allocated(incoming, target, bound, expected):
    assert run_score(NodeResourcesLeastAllocated(), incoming, [target], bound) == {"n1": expected}


@pytest.mark.parametrize("incoming, target, expected", [
    (pod("p", cpu="2", memory="4Gi"), node("n1", cpu="4", memory="8Gi"), 100),   # 50% / 50%
    (pod("p", cpu="2", memory="2Gi"), node("n1", cpu="4", memory="8Gi"), 87),    # 50% / 25%: 1 - 0.125
    (pod("p", cpu="4"), node("n1", cpu="4", memory="8Gi"), 50),                  # 100% / 0%
    (pod("p"), node("n1"), 100),                                                 # nothing requested
])
def test_balanced_allocation(incoming, target, expected):
    assert run_score(NodeResourcesBalancedAllocation(), incoming, [target]) == {"n1": expected}


def test_selector_spread_prefers_nodes_and_zones_with_fewer_pods_of_the_owner():
    nodes = [node("a1", labels={ZONE: "a"}), node("a2", labels={ZONE: "a"}), node("b1", labels={ZONE: "b"})]
    bound = [pod("r0", owner="rs", on="a1"), pod("r1", owner="rs", on="a1"), pod("other", owner="x", on="b1")]
    scores = run_score(SelectorSpread(), pod("r2", owner="rs"), nodes, bound)
    # by node: a1 0, a2 100, b1 100; by zone: a 0, b 100; zone weighs 2/3
    assert scores == {"a1": 0, "a2": 33, "b1": 100}
    # without zones only nodes count
    flat = [node("n1"), node("n2")]
    assert run_score(SelectorSpread(), pod("r2", owner="rs"), flat, [pod("r0", owner="rs", on="n1")]) == {
        "n1": 0, "n2": 100}
    # a pod without an owner is not spread: 0 everywhere
    assert set(run_score(SelectorSpread(), pod("solo"), nodes, bound).values()) == {0}


def test_image_locality_prefers_nodes_holding_big_images():
    big = {"names": ["docker.io/library/postgres:16"], "sizeBytes": 400 * MI}
    small = {"names": ["docker.io/library/busybox:1.36"], "sizeBytes": 2 * MI}
    nodes = [node("has", images=[big]), node("small", images=[small]), node("none")]
    scores = run_score(ImageLocality(), pod("db", image="postgres:16"), nodes)
    # 400Mi spread over 1 of 3 nodes = 133Mi -> (133 - 23) * 100 / (1000 - 23)
    assert scores == {"has": 11, "small": 0, "none": 0}
    # below 23Mi counts as nothing
    assert set(run_score(ImageLocality(), pod("b", image="busybox:1.36"), nodes).values()) == {0}


# ---- batch scoring: score_nodes gives what score gives, node by node -------------------

@pytest.mark.parametrize("plugin", [NodeResourcesLeastAllocated(), NodeResourcesBalancedAllocation()],
                         ids=lambda p: p.name)
def test_score_nodes_equals_score_node_by_node(plugin):
    import random
    rng = random.Random(7)
    sizes = ["0", "1", "2", "4", "32", "100m", "1500m"]
    memories = ["0", "1Gi", "8Gi", "128Gi", "300Mi"]
    nodes = [node(f"n{i}", cpu=rng.choice(sizes), memory=rng.choice(memories)) for i in range(60)]
    bound = [pod(f"b{i}", cpu=rng.choice(["100m", "3", None]), memory=rng.choice(["1Gi", "64Gi", None]),
                 on=f"n{rng.randrange(60)}") for i in range(120)]
    cache = Cache.from_objects(nodes=nodes, pods=bound)
    candidates = cache.node_list()
    for incoming in (pod("p"), pod("q", cpu="500m"), pod("r", memory="200Gi"), pod("s", cpu="40", memory="1Gi")):
        info, state = PodInfo(incoming), CycleState(cache)
        assert plugin.score_nodes(state, info, candidates) == [plugin.score(state, info, n) for n in candidates]
