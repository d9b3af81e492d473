"""The scheduling framework: Status, plugin interfaces, and running plugins over nodes.

As in kube-scheduler (pkg/scheduler/framework/interface.go), a plugin implements
one or more small interfaces, one per extension point:

- PreFilter   once per pod: precompute into the CycleState, or say Skip ("nothing
              to check for this pod") so its Filter is not called at all;
- Filter      per node: None (fits) or a Status with the reasons it does not;
- PreScore    once per pod over the feasible nodes; Skip as for PreFilter;
- Score       per feasible node: a raw number;
- NormalizeScore  turns the raw numbers into 0..100 (e.g. fewest taints -> 100).

Plugins are pure: they read the snapshot (cache.Cache) and the CycleState and
return; they never touch the client or storage. An expected rejection is a
Status, an exception is a bug. The Framework, not the plugin, stamps which plugin
said what, keeps every rejected node's Status (Nomad keeps a reason per filtered
node too), and multiplies normalised scores by the configured weights.

`unschedulable_message` builds the text users see on a Pending pod:
"0/3 nodes are available: 2 Insufficient cpu, 1 node(s) had untolerated taint {dedicated: gpu}."
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Protocol, runtime_checkable

from controlplane.scheduler.nodeinfo import NodeInfo, PodInfo

if TYPE_CHECKING:
    from controlplane.scheduler.cache import Cache

# Status codes (kube-scheduler's framework.Code). A plugin that accepts returns None.
SUCCESS = "Success"
UNSCHEDULABLE = "Unschedulable"                                 # may fit once the cluster changes
UNSCHEDULABLE_AND_UNRESOLVABLE = "UnschedulableAndUnresolvable"  # e.g. wrong node name: will never fit
SKIP = "Skip"                                                   # PreFilter/PreScore: nothing to do for this pod
ERROR = "Error"                                                 # a bug or broken input

MAX_NODE_SCORE = 100
NO_NODES_AVAILABLE = "no nodes available to schedule pods"


@dataclass(frozen=True, slots=True)
class Status:
    """A plugin's verdict: a code and the reasons shown to users. `plugin` is set by the Framework."""

    code: str
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @property
    def is_rejection(self) -> bool:
        return self.code in (UNSCHEDULABLE, UNSCHEDULABLE_AND_UNRESOLVABLE)

    def message(self) -> str:
        return ", ".join(self.reasons)


def unschedulable(*reasons: str) -> Status:
    return Status(UNSCHEDULABLE, reasons)


def unresolvable(*reasons: str) -> Status:
    return Status(UNSCHEDULABLE_AND_UNRESOLVABLE, reasons)


SKIPPED = Status(SKIP)


class CycleState:
    """Per-pod scratch space for one scheduling cycle: plugins write what PreFilter/PreScore
    computed and read it back in Filter/Score. `snapshot` is the cache the cycle decides on."""

    __slots__ = ("snapshot", "data", "skip_filters", "skip_scores")

    def __init__(self, snapshot: "Cache"):
        self.snapshot = snapshot
        self.data: dict[str, Any] = {}
        self.skip_filters: set[str] = set()
        self.skip_scores: set[str] = set()

    def read(self, key: str) -> Any:
        return self.data[key]

    def write(self, key: str, value: Any) -> None:
        self.data[key] = value


# ---- extension points -------------------------------------------------------------

class Plugin(Protocol):
    name: str


@runtime_checkable
class PreFilterPlugin(Protocol):
    name: str

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None: ...


@runtime_checkable
class FilterPlugin(Protocol):
    name: str

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None: ...


@runtime_checkable
class PreScorePlugin(Protocol):
    name: str

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None: ...


@runtime_checkable
class ScorePlugin(Protocol):
    name: str

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int: ...


@runtime_checkable
class BatchScorePlugin(Protocol):
    """A score plugin that can also score every node in one call: the same numbers as
    `score` node by node, without a Python call per node (for the plugins every pod runs;
    at 250 nodes a pod, the calls themselves were a tenth of the scheduler's time)."""
    name: str

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]: ...


@runtime_checkable
class NormalizeScorePlugin(Protocol):
    name: str

    def normalize_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo], scores: list[int]) -> None:
        """Rewrite `scores` (one per node, same order) in place to 0..MAX_NODE_SCORE."""


def default_normalize(scores: list[int], *, reverse: bool = False) -> None:
    """kube-scheduler's DefaultNormalizeScore: scale so the highest is 100; reverse: highest -> 0.
    All zero: 0 (or 100 when reversed, since none is worse than another)."""
    highest = max(scores, default=0)
    if highest == 0:
        if reverse:
            scores[:] = [MAX_NODE_SCORE] * len(scores)
        return
    for i, s in enumerate(scores):
        s = MAX_NODE_SCORE * s // highest
        scores[i] = MAX_NODE_SCORE - s if reverse else s


# ---- running plugins --------------------------------------------------------------

@dataclass
class NodeScores:
    """Weighted scores of the feasible nodes: per plugin a list in node order, and totals."""

    nodes: list[NodeInfo]
    by_plugin: dict[str, list[int]] = field(default_factory=dict)
    totals: list[int] = field(default_factory=list)

    def breakdown(self, index: int) -> dict[str, int]:
        return {name: scores[index] for name, scores in self.by_plugin.items()}


class Framework:
    """Runs a fixed list of filter plugins and weighted score plugins.

    `filters` run in order; a node's first rejection ends its checks (that reason is
    what the pod's message counts). `scores` are (plugin, weight) pairs, weight >= 1.
    """

    def __init__(self, *, filters: list[Any], scores: list[tuple[Any, int]]):
        self.filters = filters
        self.scores = scores
        self.pre_filters = [p for p in filters if isinstance(p, PreFilterPlugin)]
        self.pre_scores = [p for p, _ in scores if isinstance(p, PreScorePlugin)]
        # (plugin, weight, score_nodes or None, normalize or None), worked out once: protocol checks are slow.
        self._score_steps = [(p, weight, p.score_nodes if isinstance(p, BatchScorePlugin) else None,
                              p.normalize_score if isinstance(p, NormalizeScorePlugin) else None)
                             for p, weight in scores]

    @property
    def filter_names(self) -> list[str]:
        return [p.name for p in self.filters]

    @property
    def score_names(self) -> list[str]:
        return [p.name for p, _ in self.scores]

    def run_pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        """PreFilter of every filter plugin; returns the first rejection (for all nodes), else None."""
        for plugin in self.pre_filters:
            status = plugin.pre_filter(state, pod)
            if status is None:
                continue
            if status.code == SKIP:
                state.skip_filters.add(plugin.name)
                continue
            return Status(status.code, status.reasons, plugin.name)
        return None

    def active_filters(self, state: CycleState) -> list[Any]:
        return [p for p in self.filters if p.name not in state.skip_filters]

    @staticmethod
    def run_filters(filters: list[Any], state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        """The first rejection of `node` (stamped with its plugin), or None when the pod fits."""
        for plugin in filters:
            status = plugin.filter(state, pod, node)
            if status is not None:
                return Status(status.code, status.reasons, plugin.name)
        return None

    def run_every_filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> list[Status | None]:
        """Every filter's verdict on `node`, in order (skipped ones pass) — for explanations."""
        verdicts: list[Status | None] = []
        for plugin in self.filters:
            status = None if plugin.name in state.skip_filters else plugin.filter(state, pod, node)
            verdicts.append(None if status is None else Status(status.code, status.reasons, plugin.name))
        return verdicts

    def run_scores(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> NodeScores:
        """PreScore, Score, NormalizeScore and weights for every enabled score plugin.
        A plugin that skips this pod contributes 0 to every node."""
        result = NodeScores(nodes)
        for plugin in self.pre_scores:
            status = plugin.pre_score(state, pod, nodes)
            if status is not None and status.code == SKIP:
                state.skip_scores.add(plugin.name)
        for plugin, weight, score_nodes, normalize in self._score_steps:
            if plugin.name in state.skip_scores:
                result.by_plugin[plugin.name] = [0] * len(nodes)
                continue
            if score_nodes is not None:
                raw = score_nodes(state, pod, nodes)
            else:
                score = plugin.score
                raw = [score(state, pod, node) for node in nodes]
            if normalize is not None:
                normalize(state, pod, nodes, raw)
            if raw and (min(raw) < 0 or max(raw) > MAX_NODE_SCORE):
                bad = next(i for i, s in enumerate(raw) if not 0 <= s <= MAX_NODE_SCORE)
                raise ValueError(f"plugin {plugin.name} scored node {nodes[bad].name} {raw[bad]}, "
                                 f"outside 0..{MAX_NODE_SCORE}")
            result.by_plugin[plugin.name] = raw if weight == 1 else [s * weight for s in raw]
        result.totals = [sum(column) for column in zip(*result.by_plugin.values())] if result.by_plugin \
            else [0] * len(nodes)
        return result


# ---- explaining failure ---------------------------------------------------------------

def unschedulable_message(num_nodes: int, statuses: Iterable[Status]) -> str:
    """"0/3 nodes are available: 2 Insufficient cpu, 1 node(s) had untolerated taint {dedicated: gpu}."

    Every reason of every rejected node is counted. The most frequent reasons come
    first, ties alphabetically. (kube-scheduler sorts the "N reason" strings as text,
    which puts "10 ..." before "2 ..."; counting down reads better and is the form
    Skiff's issue asks for.)
    """
    if num_nodes == 0:
        return f"0/0 nodes are available: {NO_NODES_AVAILABLE}."
    counts = Counter(reason for status in statuses for reason in status.reasons)
    message = f"0/{num_nodes} nodes are available"
    if not counts:
        return message + "."
    parts = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return message + ": " + ", ".join(f"{n} {reason}" for reason, n in parts) + "."


class FitError(Exception):
    """No node fits the pod. `statuses` holds every rejected node's Status (by node name)."""

    def __init__(self, pod: PodInfo, num_nodes: int, statuses: dict[str, Status]):
        self.pod = pod
        self.num_nodes = num_nodes
        self.statuses = statuses
        super().__init__(unschedulable_message(num_nodes, statuses.values()))

    @property
    def message(self) -> str:
        return str(self)
