"""PodDisruptionBudget (policy/v1): how many of an application's pods may be down at once by choice.

`minAvailable` or `maxUnavailable` (exactly one; an integer or a percentage of the
expected pods) over the pods `selector` picks. The disruption controller
(controlplane/controllers/disruption.py) keeps `status`: `currentHealthy` (Ready pods),
`desiredHealthy`, `expectedPods` and `disruptionsAllowed`. The Eviction subresource
(`pods/NAME/eviction`, controlplane/apiserver/eviction.py) deletes a pod only while
`disruptionsAllowed` > 0, and takes one from it in the same breath; `ctl drain` evicts.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from api.base import ApiModel
from api.errors import FieldError, invalid
from api.fieldtypes import IntOrString, check_int_or_percent
from api.meta import LabelSelector
from api.podstatus import ConditionStatus
from api.registry import ResourceInfo, register
from api.resource import Resource


class PodDisruptionBudgetSpec(ApiModel):
    """The budget."""

    min_available: Optional[IntOrString] = Field(None, description="Pods that must stay available: a count or "
                                                                   "a percentage of the expected pods.")
    max_unavailable: Optional[IntOrString] = Field(None, description="Pods that may be unavailable: a count or "
                                                                     "a percentage of the expected pods.")
    selector: Optional[LabelSelector] = Field(None, description="The pods the budget covers.")
    unhealthy_pod_eviction_policy: Optional[Literal["IfHealthyBudget", "AlwaysAllow"]] = Field(
        None, description="Whether not-Ready pods may be evicted regardless (AlwaysAllow) or only when the "
                          "budget is met (IfHealthyBudget, the default).")


# The types below mirror Kubernetes' own, one per kind: their field declarations look like other
# kinds' (the `duplicates` tool pairs them by shape), but each is a separate API type; no logic to share.
class PdbCondition(ApiModel):
    type: str = Field(description="DisruptionAllowed.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: Optional[str] = Field(None, description="SufficientPods, InsufficientPods, SyncFailed.")
    message: Optional[str] = Field(None, description="Details.")
    last_transition_time: Optional[str] = Field(None, description="When the status last changed.")
    observed_generation: Optional[int] = Field(None, description="The generation this condition is about.")


class PodDisruptionBudgetStatus(ApiModel):
    """What the disruption controller sees."""

    observed_generation: Optional[int] = Field(None, description="The generation observed.")
    disrupted_pods: Optional[dict[str, str]] = Field(None, description="Pods evicted but not yet gone, by name.")
    disruptions_allowed: int = Field(0, description="Pods that may be evicted now.")
    current_healthy: int = Field(0, description="Ready pods.")
    desired_healthy: int = Field(0, description="Ready pods wanted at least.")
    expected_pods: int = Field(0, description="Pods the budget counts.")
    conditions: Optional[list[PdbCondition]] = Field(None, description="DisruptionAllowed.")


class PodDisruptionBudget(Resource):
    """Limits voluntary disruptions (evictions) of a set of pods."""

    api_version: Literal["policy/v1"] = "policy/v1"  # type: ignore[assignment]
    kind: Literal["PodDisruptionBudget"] = "PodDisruptionBudget"
    spec: PodDisruptionBudgetSpec = Field(default_factory=PodDisruptionBudgetSpec, description="The budget.")
    status: Optional[PodDisruptionBudgetStatus] = Field(None, description="Kept by the disruption controller.")

    def validate_semantics(self) -> list[FieldError]:
        spec = self.spec
        errors = []
        if spec.min_available is not None and spec.max_unavailable is not None:
            errors.append(invalid("spec", "", "minAvailable and maxUnavailable cannot be both set"))
        errors += check_int_or_percent(spec.min_available, "spec.minAvailable")
        errors += check_int_or_percent(spec.max_unavailable, "spec.maxUnavailable")
        return errors


register(ResourceInfo(kind="PodDisruptionBudget", plural="poddisruptionbudgets", model=PodDisruptionBudget,
                      group="policy", short_names=("pdb",)))
