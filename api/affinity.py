"""Where a pod may run: node affinity, pod (anti-)affinity, tolerations, topology spread.

These are the pod's scheduling constraints (PodSpec.affinity, .tolerations,
.topologySpreadConstraints). The scheduler's NodeAffinity, InterPodAffinity,
TaintToleration and PodTopologySpread plugins read them; `matches` and
`tolerates` give the shared meaning of a term and a toleration so every
component agrees with the scheduler. Taints themselves belong to nodes
(api/node.py).
"""

from __future__ import annotations

from typing import Literal, Mapping, Optional, Protocol

from pydantic import Field

from api.base import ApiModel
from api.errors import FieldError, ValidationFailed, duplicate, invalid, required, unsupported
from api.taints import tolerates
from api.meta import LabelSelector
from api.selectors import DOES_NOT_EXIST, EXISTS, GT, IN, LT, NOT_IN, Requirement, check_label_key, \
    requirement_from_expression

NODE_OPERATORS = (IN, NOT_IN, EXISTS, DOES_NOT_EXIST, GT, LT)
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


class NodeSelectorRequirement(ApiModel):
    """A requirement on a node label (matchExpressions) or field (matchFields)."""

    key: str = Field(description="Label key, or for matchFields the field (metadata.name).")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"] = Field(
        description="In, NotIn, Exists, DoesNotExist, Gt or Lt.")
    values: Optional[list[str]] = Field(None, description="Values; one integer for Gt and Lt, none for "
                                                          "Exists and DoesNotExist.")

    def requirement(self) -> Requirement:
        return Requirement(self.key, self.operator, tuple(self.values or ()))


class NodeSelectorTerm(ApiModel):
    """Requirements that must all hold. An empty term matches no node."""

    match_expressions: Optional[list[NodeSelectorRequirement]] = Field(None, description="Requirements on "
                                                                                         "node labels.")
    match_fields: Optional[list[NodeSelectorRequirement]] = Field(None, description="Requirements on node "
                                                                                    "fields (metadata.name).")

    def matches(self, labels: Mapping[str, str] | None, node_name: str) -> bool:
        if not self.match_expressions and not self.match_fields:
            return False
        labels = labels or {}
        fields = {"metadata.name": node_name}
        return (all(r.requirement().matches(labels) for r in self.match_expressions or [])
                and all(r.requirement().matches(fields) for r in self.match_fields or []))


class NodeSelector(ApiModel):
    """Node selector terms; a node matches when any term matches."""

    node_selector_terms: list[NodeSelectorTerm] = Field(description="Terms, ORed together.")

    def matches(self, labels: Mapping[str, str] | None, node_name: str) -> bool:
        return any(term.matches(labels, node_name) for term in self.node_selector_terms)


class PreferredSchedulingTerm(ApiModel):
    """A weighted preference for nodes that match a term."""

    weight: int = Field(description="Weight, 1-100, added to a matching node's score.")
    preference: NodeSelectorTerm = Field(description="The term a node should match.")


class NodeAffinity(ApiModel):
    """Rules about the labels of the node a pod runs on."""

    required_during_scheduling_ignored_during_execution: Optional[NodeSelector] = Field(
        None, description="The pod is only scheduled to nodes that match.")
    preferred_during_scheduling_ignored_during_execution: Optional[list[PreferredSchedulingTerm]] = Field(
        None, description="Nodes that match get a higher score.")


class PodAffinityTerm(ApiModel):
    """Pods matching labelSelector in namespaces, on nodes sharing a topologyKey value."""

    label_selector: Optional[LabelSelector] = Field(None, description="Which pods to look for.")
    namespaces: Optional[list[str]] = Field(None, description="Namespaces to look in; default the pod's own.")
    namespace_selector: Optional[LabelSelector] = Field(None, description="Namespaces to look in, by label.")
    topology_key: str = Field(description="Node label whose value defines a domain, e.g. "
                                          "kubernetes.io/hostname.")


class WeightedPodAffinityTerm(ApiModel):
    """A weighted pod affinity term."""

    weight: int = Field(description="Weight, 1-100, added to the score of a matching node.")
    pod_affinity_term: PodAffinityTerm = Field(description="The term.")


class PodAffinity(ApiModel):
    """Schedule the pod near pods that match (or, in podAntiAffinity, away from them)."""

    required_during_scheduling_ignored_during_execution: Optional[list[PodAffinityTerm]] = Field(
        None, description="Terms that must all hold.")
    preferred_during_scheduling_ignored_during_execution: Optional[list[WeightedPodAffinityTerm]] = Field(
        None, description="Terms that add to a node's score.")


class Affinity(ApiModel):
    """Scheduling constraints on nodes and on other pods."""

    node_affinity: Optional[NodeAffinity] = Field(None, description="Rules about the node's labels.")
    pod_affinity: Optional[PodAffinity] = Field(None, description="Run near pods that match.")
    pod_anti_affinity: Optional[PodAffinity] = Field(None, description="Run away from pods that match.")


class TaintLike(Protocol):
    key: str
    value: Optional[str]
    effect: str


class Toleration(ApiModel):
    """Lets the pod run on nodes with a matching taint."""

    key: Optional[str] = Field(None, description="Taint key to match; empty with Exists matches all taints.")
    operator: Literal["Equal", "Exists"] = Field("Equal", description="Equal (key and value) or Exists (key).")
    value: Optional[str] = Field(None, description="Taint value to match with Equal.")
    effect: Optional[Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]] = Field(
        None, description="Taint effect to match; empty matches all effects.")
    toleration_seconds: Optional[int] = Field(None, description="For NoExecute: how long the pod stays "
                                                                "after the taint appears.")

    def tolerates(self, taint: TaintLike) -> bool:
        """Kubernetes' ToleratesTaint (api/taints.py)."""
        return tolerates({"key": self.key, "operator": self.operator, "value": self.value, "effect": self.effect},
                         {"key": taint.key, "value": taint.value, "effect": taint.effect})


class TopologySpreadConstraint(ApiModel):
    """Spread matching pods evenly across the domains of a node label."""

    max_skew: int = Field(ge=1, description="Largest allowed difference in matching pods between domains.")
    topology_key: str = Field(description="Node label whose values are the domains, e.g. "
                                          "topology.kubernetes.io/zone.")
    when_unsatisfiable: Literal["DoNotSchedule", "ScheduleAnyway"] = Field(
        description="DoNotSchedule (a filter) or ScheduleAnyway (a score).")
    label_selector: Optional[LabelSelector] = Field(None, description="Which pods count.")
    min_domains: Optional[int] = Field(None, ge=1, description="Least number of eligible domains.")


# ---- validation ----

def _check_requirements(reqs: list[NodeSelectorRequirement] | None, path: str, *,
                        fields: bool) -> list[FieldError]:
    errors = []
    for i, req in enumerate(reqs or []):
        p = f"{path}[{i}]"
        if fields:
            if req.key != "metadata.name":
                errors.append(unsupported(f"{p}.key", req.key, ("metadata.name",)))
            if req.operator not in (IN, NOT_IN):
                errors.append(unsupported(f"{p}.operator", req.operator, (IN, NOT_IN)))
            elif len(req.values or []) != 1:
                errors.append(required(f"{p}.values", "must be only one value when `operator` is 'In' or "
                                                      "'NotIn' for node field selector"))
            continue
        try:
            requirement_from_expression(req.to_json(), path=p, operators=NODE_OPERATORS)
        except ValidationFailed as e:
            errors += e.errors
    return errors


def _check_term(term: NodeSelectorTerm, path: str) -> list[FieldError]:
    return (_check_requirements(term.match_expressions, f"{path}.matchExpressions", fields=False)
            + _check_requirements(term.match_fields, f"{path}.matchFields", fields=True))


check_node_selector_term = _check_term  # PersistentVolume nodeAffinity (api/storage.py)


def _check_weight(weight: int, path: str) -> list[FieldError]:
    return [] if 1 <= weight <= 100 else [invalid(path, weight, "must be in the range 1-100")]


def _check_pod_affinity(aff: PodAffinity, path: str) -> list[FieldError]:
    errors = []
    req_path = f"{path}.requiredDuringSchedulingIgnoredDuringExecution"
    for i, term in enumerate(aff.required_during_scheduling_ignored_during_execution or []):
        if not term.topology_key:
            errors.append(required(f"{req_path}[{i}].topologyKey", "can not be empty"))
        elif msg := check_label_key(term.topology_key):
            errors.append(FieldError(f"{req_path}[{i}].topologyKey", msg))
    pref_path = f"{path}.preferredDuringSchedulingIgnoredDuringExecution"
    for i, weighted in enumerate(aff.preferred_during_scheduling_ignored_during_execution or []):
        errors += _check_weight(weighted.weight, f"{pref_path}[{i}].weight")
        key = weighted.pod_affinity_term.topology_key
        if not key:
            errors.append(required(f"{pref_path}[{i}].podAffinityTerm.topologyKey", "can not be empty"))
    return errors


def check_affinity(aff: Affinity, path: str) -> list[FieldError]:
    errors = []
    node = aff.node_affinity
    if node is not None:
        p = f"{path}.nodeAffinity"
        if node.required_during_scheduling_ignored_during_execution is not None:
            req_path = f"{p}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"
            terms = node.required_during_scheduling_ignored_during_execution.node_selector_terms
            if not terms:
                errors.append(required(req_path, "must have at least one node selector term"))
            for i, term in enumerate(terms):
                errors += _check_term(term, f"{req_path}[{i}]")
        for i, pref in enumerate(node.preferred_during_scheduling_ignored_during_execution or []):
            pref_path = f"{p}.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
            errors += _check_weight(pref.weight, f"{pref_path}.weight")
            errors += _check_term(pref.preference, f"{pref_path}.preference")
    if aff.pod_affinity is not None:
        errors += _check_pod_affinity(aff.pod_affinity, f"{path}.podAffinity")
    if aff.pod_anti_affinity is not None:
        errors += _check_pod_affinity(aff.pod_anti_affinity, f"{path}.podAntiAffinity")
    return errors


def check_tolerations(tolerations: list[Toleration], path: str) -> list[FieldError]:
    errors = []
    for i, t in enumerate(tolerations):
        p = f"{path}[{i}]"
        if t.key:
            if msg := check_label_key(t.key):
                errors.append(FieldError(f"{p}.key", msg))
        elif t.operator != "Exists":
            errors.append(invalid(f"{p}.operator", t.operator, "operator must be Exists when `key` is empty, "
                                                               "which means \"match all values and all keys\""))
        if t.operator == "Exists" and t.value:
            errors.append(invalid(f"{p}.operator", t.value, "value must be empty when `operator` is 'Exists'"))
        if t.toleration_seconds is not None and t.effect != "NoExecute":
            errors.append(invalid(f"{p}.effect", t.effect or "",
                                  "effect must be 'NoExecute' when `tolerationSeconds` is set"))
    return errors


def check_topology_spread(constraints: list[TopologySpreadConstraint], path: str) -> list[FieldError]:
    errors, seen = [], set()
    for i, c in enumerate(constraints):
        p = f"{path}[{i}]"
        if not c.topology_key:
            errors.append(required(f"{p}.topologyKey", "can not be empty"))
        elif msg := check_label_key(c.topology_key):
            errors.append(FieldError(f"{p}.topologyKey", msg))
        if (c.topology_key, c.when_unsatisfiable) in seen:
            errors.append(duplicate(f"{p}.{{topologyKey, whenUnsatisfiable}}",
                                    f"{c.topology_key}, {c.when_unsatisfiable}"))
        seen.add((c.topology_key, c.when_unsatisfiable))
    return errors
