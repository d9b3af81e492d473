"""InterPodAffinity: place a pod near, or away from, pods with certain labels.

A term says: pods matching `labelSelector` (in `namespaces`) counted per value of
`topologyKey` on their nodes — per node with `kubernetes.io/hostname`, per zone
with `topology.kubernetes.io/zone`. The filter, as in Kubernetes
(plugins/interpodaffinity), rejects a node when

1. the pod's required podAffinity terms find no matching pod in the node's domain
   (except for the first pod of a group that matches its own terms);
2. a required podAntiAffinity term finds a matching pod in the node's domain;
3. an existing pod's required podAntiAffinity term matches this pod and that pod
   is in the node's domain (anti-affinity is symmetric).

The score adds the weights of preferred terms (the pod's and, symmetrically, the
existing pods'), minus anti-affinity weights, per domain; then scales to 0..100.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable

from controlplane.scheduler.framework import MAX_NODE_SCORE, SKIPPED, CycleState, Status, unschedulable
from controlplane.scheduler.nodeinfo import AffinityTerm, NodeInfo, PodInfo

NAME = "InterPodAffinity"
REASON_AFFINITY = "node(s) didn't match pod affinity rules"
REASON_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
# An existing pod's *required* affinity to this pod counts this much in the score (Kubernetes' default).
HARD_POD_AFFINITY_WEIGHT = 1
_FILTER_KEY = "InterPodAffinity/filter"
_SCORE_KEY = "InterPodAffinity/score"


class _FilterState:
    __slots__ = ("existing_anti", "existing_anti_keys", "affinity", "anti")

    def __init__(self) -> None:
        self.existing_anti: Counter = Counter()   # (topologyKey, value) -> existing pods whose anti-affinity hits us
        self.existing_anti_keys: set[str] = set()
        self.affinity: Counter = Counter()        # (topologyKey, value) -> pods matching all our affinity terms
        self.anti: Counter = Counter()            # (topologyKey, value) -> pods matching one of our anti terms


def _add(counts: Counter, node: NodeInfo | None, key: str, value: int = 1) -> None:
    if node is not None and key in node.labels:
        counts[(key, node.labels[key])] += value


def _matches_all(terms: Iterable[AffinityTerm], pod: PodInfo, ns_labels: dict) -> bool:
    return all(term.matches(pod, ns_labels) for term in terms)


class InterPodAffinity:
    name = NAME

    # -- filter ---------------------------------------------------------------------

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        snap = state.snapshot
        if not pod.affinity and not pod.anti_affinity and not snap.with_required_anti_affinity:
            return SKIPPED
        ns_labels = snap.namespace_labels
        s = _FilterState()
        for other in snap.with_required_anti_affinity.values():
            node = snap.nodes.get(other.node_name)
            for term in other.anti_affinity:
                if term.matches(pod, ns_labels):
                    _add(s.existing_anti, node, term.topology_key)
        if pod.affinity or pod.anti_affinity:
            for other in snap.pods():
                node = snap.nodes.get(other.node_name)
                if pod.affinity and _matches_all(pod.affinity, other, ns_labels):
                    for term in pod.affinity:
                        _add(s.affinity, node, term.topology_key)
                for term in pod.anti_affinity:
                    if term.matches(other, ns_labels):
                        _add(s.anti, node, term.topology_key)
        s.existing_anti_keys = {key for key, _ in s.existing_anti}
        state.write(_FILTER_KEY, s)
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        s: _FilterState = state.data[_FILTER_KEY]
        labels = node.labels
        if pod.affinity and not self._affinity_ok(s, pod, labels, state.snapshot.namespace_labels):
            return unschedulable(REASON_AFFINITY)
        for term in pod.anti_affinity:
            value = labels.get(term.topology_key)
            if value is not None and s.anti[(term.topology_key, value)] > 0:
                return unschedulable(REASON_ANTI_AFFINITY)
        for key in s.existing_anti_keys:
            value = labels.get(key)
            if value is not None and s.existing_anti[(key, value)] > 0:
                return unschedulable(REASON_EXISTING_ANTI_AFFINITY)
        return None

    @staticmethod
    def _affinity_ok(s: _FilterState, pod: PodInfo, labels: dict, ns_labels: dict) -> bool:
        pods_exist = True
        for term in pod.affinity:
            value = labels.get(term.topology_key)
            if value is None:
                return False  # every topology label must be on the node
            if s.affinity[(term.topology_key, value)] <= 0:
                pods_exist = False
        if pods_exist:
            return True
        # The first pod of a group with affinity to itself: nothing matches anywhere yet.
        return not s.affinity and _matches_all(pod.affinity, pod, ns_labels)

    # -- score ----------------------------------------------------------------------

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        snap = state.snapshot
        has_preferences = bool(pod.preferred_affinity or pod.preferred_anti_affinity)
        if not has_preferences and not snap.with_affinity:
            return SKIPPED
        ns_labels = snap.namespace_labels
        scores: dict[str, Counter] = {}   # topologyKey -> value -> score

        # One loop per kind of term below, alike in shape by design (the `duplicates` tool pairs them): each
        # adds with its own direction and weight, as kube-scheduler's InterPodAffinity scoring reads.
        def add(node: NodeInfo | None, term: AffinityTerm, weight: int) -> None:
            if node is not None and term.topology_key in node.labels:
                scores.setdefault(term.topology_key, Counter())[node.labels[term.topology_key]] += weight

        others = snap.pods() if has_preferences else snap.with_affinity.values()
        for other in others:
            node = snap.nodes.get(other.node_name)
            for term in pod.preferred_affinity:
                if term.matches(other, ns_labels):
                    add(node, term, term.weight)
            for term in pod.preferred_anti_affinity:
                if term.matches(other, ns_labels):
                    add(node, term, -term.weight)
            for term in other.affinity:
                if term.matches(pod, ns_labels):
                    add(node, term, HARD_POD_AFFINITY_WEIGHT)
            for term in other.preferred_affinity:
                if term.matches(pod, ns_labels):
                    add(node, term, term.weight)
            for term in other.preferred_anti_affinity:
                if term.matches(pod, ns_labels):
                    add(node, term, -term.weight)
        if not scores:
            return SKIPPED
        state.write(_SCORE_KEY, scores)
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        scores: dict[str, Counter] = state.data[_SCORE_KEY]
        labels = node.labels
        return sum(by_value.get(labels.get(key), 0) for key, by_value in scores.items())

    def normalize_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo], scores: list[int]) -> None:
        """Min-max to 0..100 (raw scores may be negative)."""
        if not scores:
            return
        low, high = min(scores), max(scores)
        spread = high - low
        for i, s in enumerate(scores):
            scores[i] = int(MAX_NODE_SCORE * (s - low) / spread) if spread > 0 else 0
