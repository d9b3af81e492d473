"""The framework around the plugins: the "0/N nodes are available" message, stamping and
weighting, the sampling decision (percentageOfNodesToScore, rotating start, seeded ties),
the cache's assume/forget, the dry-run preview and the config file."""

from __future__ import annotations

import random
from typing import Any

import pytest

from controlplane.scheduler.algorithm import SchedulingAlgorithm, num_feasible_nodes_to_find
from controlplane.scheduler.cache import Cache
from controlplane.scheduler.config import ConfigError, SchedulerConfig, load_config, parse_config
from controlplane.scheduler.framework import UNSCHEDULABLE, CycleState, FitError, Framework, Status, \
    default_normalize, unschedulable_message
from controlplane.scheduler.nodeinfo import NodeInfo, PodInfo, normalized_image
from controlplane.scheduler.preview import preview



def node(name: str, *, cpu: str = "4", memory: str = "8Gi", labels: dict | None = None, taints: list | None = None,
         unschedulable: bool = False, images: list | None = None) -> dict[str, Any]:
    allocatable = {"cpu": cpu, "memory": memory, "pods": "110"}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"taints": taints or [], "unschedulable": unschedulable},
            "status": {"allocatable": allocatable, "images": images or []}}


def pod(name: str, *, cpu: str | None = None, on: str | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "busybox:1.36"}
    if cpu:
        container["resources"] = {"requests": {"cpu": cpu}}
    p = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
         "spec": {"containers": [container]}}
    if on:
        p["spec"]["nodeName"] = on
    return p


GPU_TAINT = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


# ---- the message ------------------------------------------------------------------------

def st(*reasons: str) -> Status:
    return Status(UNSCHEDULABLE, reasons)


@pytest.mark.parametrize("num_nodes, statuses, expected", [
    (3, [st("Insufficient cpu"), st("Insufficient cpu"), st("node(s) had untolerated taint {dedicated: gpu}")],
     "0/3 nodes are available: 2 Insufficient cpu, 1 node(s) had untolerated taint {dedicated: gpu}."),
    (2, [st("Insufficient cpu"), st("Insufficient cpu")], "0/2 nodes are available: 2 Insufficient cpu."),
    # one node short of two resources gives both reasons
    (1, [st("Insufficient cpu", "Insufficient memory")],
     "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory."),
    # most frequent first, then alphabetical; 10 sorts after 9 (not as text)
    (19, [st("b")] * 9 + [st("a")] * 10, "0/19 nodes are available: 10 a, 9 b."),
    (0, [], "0/0 nodes are available: no nodes available to schedule pods."),
])
def test_unschedulable_message(num_nodes, statuses, expected):
    assert unschedulable_message(num_nodes, statuses) == expected


# ---- running plugins ---------------------------------------------------------------------

class Says:
    """A filter/score plugin with fixed answers per node name."""

    def __init__(self, name: str, rejects: dict[str, str] | None = None, scores: dict[str, int] | None = None):
        self.name = name
        self.rejects = rejects or {}
        self.scores = scores or {}
        self.calls: list[str] = []

    def filter(self, state, pod, node):
        self.calls.append(node.name)
        return st(self.rejects[node.name]) if node.name in self.rejects else None

    def score(self, state, pod, node):
        return self.scores.get(node.name, 0)


def test_framework_stamps_the_plugin_and_stops_at_the_first_rejection():
    first, second = Says("First", rejects={"n1": "no"}), Says("Second", rejects={"n1": "never", "n2": "nope"})
    framework = Framework(filters=[first, second], scores=[])
    cache = Cache.from_objects(nodes=[node("n1"), node("n2"), node("n3")])
    state = CycleState(cache)
    incoming = PodInfo(pod("p"))
    status = framework.run_filters(framework.filters, state, incoming, cache.nodes["n1"])
    assert (status.plugin, status.reasons) == ("First", ("no",))
    assert second.calls == []
    assert framework.run_filters(framework.filters, state, incoming, cache.nodes["n2"]).plugin == "Second"
    # every verdict, for explanations
    every = framework.run_every_filter(state, incoming, cache.nodes["n1"])
    assert [(v.plugin, v.reasons) for v in every] == [("First", ("no",)), ("Second", ("never",))]


def test_framework_weights_scores_and_refuses_out_of_range_ones():
    framework = Framework(filters=[], scores=[(Says("A", scores={"n1": 10, "n2": 100}), 2),
                                              (Says("B", scores={"n1": 50}), 3)])
    cache = Cache.from_objects(nodes=[node("n1"), node("n2")])
    nodes = cache.node_list()
    result = framework.run_scores(CycleState(cache), PodInfo(pod("p")), nodes)
    assert result.by_plugin == {"A": [20, 200], "B": [150, 0]}
    assert result.totals == [170, 200]
    assert result.breakdown(0) == {"A": 20, "B": 150}
    broken = Framework(filters=[], scores=[(Says("Broken", scores={"n1": 101}), 1)])
    with pytest.raises(ValueError, match="plugin Broken scored node n1 101, outside 0..100"):
        broken.run_scores(CycleState(cache), PodInfo(pod("p")), nodes)


@pytest.mark.parametrize("scores, reverse, expected", [
    ([0, 5, 10], False, [0, 50, 100]),
    ([0, 5, 10], True, [100, 50, 0]),
    ([0, 0], False, [0, 0]),
    ([0, 0], True, [100, 100]),
])
def test_default_normalize(scores, reverse, expected):
    default_normalize(scores, reverse=reverse)
    assert scores == expected


# ---- one decision ---------------------------------------------------------------------------

@pytest.mark.parametrize("nodes, percentage, expected", [
    (0, 0, 0), (50, 0, 50), (99, 0, 99),
    (100, 0, 100),      # 50% of 100 = 50, but at least 100
    (400, 0, 188),      # 50 - 400/125 = 47%
    (1000, 0, 250),     # 50 - 1000/125 = 42% = 420, capped at 250
    (5000, 0, 250),     # 50 - 40 = 10% = 500, capped
    (10000, 0, 250),    # 50 - 80 < 5: 5% = 500, capped
    (5000, 5, 250),     # an explicit percentage is not capped
    (5000, 10, 500),
    (5000, 100, 5000),
    (200, 10, 100),
])
def test_num_feasible_nodes_to_find(nodes, percentage, expected):
    assert num_feasible_nodes_to_find(nodes, percentage) == expected


def default_algorithm(seed: int = 1, percentage: int = 0) -> SchedulingAlgorithm:
    return SchedulingAlgorithm(SchedulerConfig().build_framework(), percentage_of_nodes_to_score=percentage,
                               rng=random.Random(seed))


def test_schedule_picks_the_best_node_and_explains_the_score():
    cache = Cache.from_objects(nodes=[node("busy", cpu="4"), node("idle", cpu="4")],
                               pods=[pod("old", cpu="3", on="busy")])
    result = default_algorithm().schedule(cache, PodInfo(pod("p", cpu="500m")))
    assert result.node == "idle"
    assert result.total == sum(result.scores.values())
    assert set(result.scores) == set(SchedulerConfig().weights())
    assert result.summary().startswith(f"score {result.total} (NodeResourcesLeastAllocated ")
    assert result.summary().endswith("; 2 of 2 nodes checked fit")


def test_schedule_raises_fit_error_with_every_rejected_node():
    cache = Cache.from_objects(nodes=[node("a", cpu="1"), node("b", cpu="1"), node("c", taints=[GPU_TAINT])])
    with pytest.raises(FitError) as err:
        default_algorithm().schedule(cache, PodInfo(pod("big", cpu="2")))
    assert err.value.message == ("0/3 nodes are available: 2 Insufficient cpu, "
                                 "1 node(s) had untolerated taint {dedicated: gpu}.")
    assert {name: s.plugin for name, s in err.value.statuses.items()} == {
        "a": "NodeResourcesFit", "b": "NodeResourcesFit", "c": "TaintToleration"}
    with pytest.raises(FitError, match="0/0 nodes are available"):
        default_algorithm().schedule(Cache(), PodInfo(pod("p")))


def test_big_clusters_are_sampled_from_a_rotating_start():
    cache = Cache.from_objects(nodes=[node(f"n{i:03}") for i in range(300)])
    algorithm = default_algorithm(percentage=10)   # 10% of 300 = 30, at least 100
    starts = []
    for i in range(4):
        starts.append(algorithm.next_start)
        result = algorithm.schedule(cache, PodInfo(pod(f"p{i}")))
        assert (result.evaluated, result.feasible, result.all_nodes) == (100, 100, 300)
        assert result.summary().endswith("100 of 100 nodes checked fit (300 nodes)")
    assert starts == [0, 100, 200, 0]
    # infeasible nodes do not count toward the sample: the scan goes on until enough fit
    cordoned = Cache.from_objects(nodes=[node(f"n{i:03}", unschedulable=i % 2 == 0) for i in range(300)])
    result = default_algorithm(percentage=10).schedule(cordoned, PodInfo(pod("p")))
    assert (result.evaluated, result.feasible) == (200, 100)


def test_ties_are_broken_reproducibly_from_the_seed():
    cache = Cache.from_objects(nodes=[node(f"n{i}") for i in range(20)])
    def choices(seed: int) -> list[str]:
        algorithm = default_algorithm(seed)
        return [algorithm.schedule(cache, PodInfo(pod(f"p{i}"))).node for i in range(10)]
    assert choices(7) == choices(7)
    assert len(set(choices(7))) > 1


def test_zones_are_interleaved_in_the_node_order():
    cache = Cache.from_objects(nodes=[node(f"{z}{i}", labels={"topology.kubernetes.io/zone": z})
                                      for z in "ab" for i in range(3)] + [node("plain")])
    assert [n.name for n in cache.node_list()] == ["plain", "a0", "b0", "a1", "b1", "a2", "b2"]


# ---- the cache --------------------------------------------------------------------------------

def test_assumed_pods_count_until_forgotten():
    cache = Cache.from_objects(nodes=[node("n1", cpu="1")])
    algorithm = default_algorithm()
    first = PodInfo(pod("a", cpu="600m"))
    cache.assume_pod(first, algorithm.schedule(cache, first).node)
    assert cache.is_assumed(("default", "a"))
    assert cache.nodes["n1"].requested["cpu"] == 600
    with pytest.raises(FitError, match="1 Insufficient cpu"):
        algorithm.schedule(cache, PodInfo(pod("b", cpu="600m")))
    cache.forget_pod(("default", "a"))          # the bind failed
    assert cache.nodes["n1"].requested["cpu"] == 0
    assert algorithm.schedule(cache, PodInfo(pod("b", cpu="600m"))).node == "n1"


def test_informer_confirms_assumed_pods_and_frees_finished_ones():
    cache = Cache.from_objects(nodes=[node("n1", cpu="1")])
    cache.assume_pod(PodInfo(pod("a", cpu="600m")), "n1")
    bound = pod("a", cpu="600m", on="n1")
    cache.set_pod(bound)                        # the watch event of the bind
    assert not cache.is_assumed(("default", "a"))
    cache.forget_pod(("default", "a"))          # a late failure report must not undo a confirmed pod
    assert cache.nodes["n1"].requested["cpu"] == 600
    cache.set_pod({**bound, "status": {"phase": "Succeeded"}})
    assert cache.nodes["n1"].requested == {"cpu": 0, "memory": 0, "pods": 0}


def test_pods_on_unknown_nodes_are_kept_but_never_candidates():
    cache = Cache.from_objects(nodes=[node("n1")], pods=[pod("a", cpu="1", on="ghost")])
    assert [n.name for n in cache.node_list()] == ["n1"]
    cache.set_node(node("ghost", cpu="2"))
    assert cache.nodes["ghost"].requested["cpu"] == 1000
    cache.remove_node("ghost")
    assert "ghost" in cache.nodes and [n.name for n in cache.node_list()] == ["n1"]
    cache.remove_pod(("default", "a"))
    assert "ghost" not in cache.nodes


def test_nodes_get_a_hostname_label_and_images_are_normalized():
    info = NodeInfo("n1", node("n1", images=[{"names": ["busybox"], "sizeBytes": 1}]))
    assert info.labels["kubernetes.io/hostname"] == "n1"
    assert info.images == {"docker.io/library/busybox:latest": 1}
    assert normalized_image("registry.local:5000/team/app") == "registry.local:5000/team/app:latest"
    assert normalized_image("localhost/app:1") == "localhost/app:1"
    assert normalized_image("user/app@sha256:ab") == "docker.io/user/app@sha256:ab"


# ---- preview -------------------------------------------------------------------------------------

def test_preview_explains_every_node():
    nodes = [node("a", cpu="1"), node("b", cpu="4"), node("c", taints=[GPU_TAINT])]
    bound = [pod("old", cpu="3", on="b")]
    result = preview(pod("web", cpu="500m"), nodes=nodes, pods=bound)
    assert result["pod"] == "web" and result["message"] == ""
    assert result["node"] in ("a", "b")
    rows = {row["name"]: row for row in result["nodes"]}
    assert [row["name"] for row in result["nodes"]] == ["a", "b", "c"]
    assert rows["c"]["feasible"] is False
    assert {f["plugin"]: (f["ok"], f["reason"]) for f in rows["c"]["filters"]}["TaintToleration"] == (
        False, "node(s) had untolerated taint {dedicated: gpu}")
    assert rows["c"]["scores"] == {} and rows["c"]["total"] == 0
    assert all(f["ok"] for f in rows["a"]["filters"])
    assert set(rows["a"]["scores"]) == set(result["weights"])
    assert rows["a"]["total"] == sum(rows["a"]["scores"].values())
    assert result["node"] == max(("a", "b"), key=lambda n: rows[n]["total"])


def test_preview_of_a_pod_that_fits_nowhere_lists_every_failing_filter():
    nodes = [node("a", cpu="1", unschedulable=True), node("b", cpu="1")]
    result = preview(pod("big", cpu="2"), nodes=nodes, pods=[])
    assert result["node"] == ""
    # the message counts each node's first rejection, as the scheduler would write it
    assert result["message"] == "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) were unschedulable."
    failing = {row["name"]: [f["plugin"] for f in row["filters"] if not f["ok"]] for row in result["nodes"]}
    assert failing == {"a": ["NodeUnschedulable", "NodeResourcesFit"], "b": ["NodeResourcesFit"]}


def test_preview_ignores_an_existing_pod_of_the_same_name():
    nodes = [node("a", cpu="1")]
    existing = pod("web", cpu="800m", on="a")
    assert preview(pod("web", cpu="800m"), nodes=nodes, pods=[existing])["node"] == "a"


# ---- config -------------------------------------------------------------------------------------

def test_config_defaults_match_kubernetes_weights():
    config = SchedulerConfig()
    assert config.weights() == {"NodeResourcesLeastAllocated": 1, "NodeResourcesBalancedAllocation": 1,
                                "NodeAffinity": 2, "TaintToleration": 3, "InterPodAffinity": 2,
                                "SelectorSpread": 1, "ImageLocality": 1}
    assert load_config(None) == config


def test_config_file_sets_weights_and_disables_plugins(tmp_path):
    path = tmp_path / "scheduler.yaml"
    path.write_text("apiVersion: skiff.io/v1alpha1\nkind: SchedulerConfiguration\n"
                    "scoreWeights: {ImageLocality: 5, SelectorSpread: 0}\n"
                    "disabledPlugins: [NodePorts]\npercentageOfNodesToScore: 20\nseed: 3\n")
    config = load_config(path)
    assert config.weights()["ImageLocality"] == 5 and "SelectorSpread" not in config.weights()
    assert config.percentage_of_nodes_to_score == 20 and config.seed == 3
    framework = config.build_framework()
    assert "NodePorts" not in framework.filter_names
    assert dict((p.name, w) for p, w in framework.scores)["ImageLocality"] == 5


@pytest.mark.parametrize("data, message", [
    ({"scoreWeights": {"Nope": 1}}, "scoreWeights: Value error, unknown score plugin 'Nope'"),
    ({"scoreWeights": {"ImageLocality": 101}}, "weight of ImageLocality must be between 0 and 100"),
    ({"disabledPlugins": ["Nope"]}, "disabledPlugins: Value error, unknown plugin 'Nope'"),
    ({"percentageOfNodesToScore": 101}, "percentageOfNodesToScore: Input should be less than or equal to 100"),
    ({"weights": {}}, "weights: Extra inputs are not permitted"),
    ({"podInitialBackoffSeconds": 5, "podMaxBackoffSeconds": 2}, "podMaxBackoffSeconds: must be at least"),
    ([1, 2], "must be a mapping of settings"),
])
def test_bad_config_names_the_field(data, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        parse_config(data, source="scheduler config x.yaml")
    assert str(err.value).startswith("scheduler config x.yaml: ")


def test_unreadable_config_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("scoreWeights: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


@pytest.mark.parametrize("spec", [
    {"containers": [{"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
                    {"name": "b", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]},
    {"containers": [{"name": "a"}], "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}]},
    {"containers": [{"name": "a", "resources": {"requests": {"example.com/gpu": "2", "cpu": "0.5"}}}]},
])
def test_pod_requests_agree_with_the_api_helper_the_bind_check_uses(spec):
    from api.requests import pod_requests_dict
    from controlplane.scheduler.nodeinfo import pod_requests
    assert pod_requests(spec)[0] == pod_requests_dict({"spec": spec})
