"""DaemonSet (apps/v1): one pod on every eligible node.

The DaemonSet controller creates a pod from the template for each node that
the template's nodeSelector, affinity and tolerations allow, and deletes pods
from nodes that no longer qualify. Updates roll node by node (RollingUpdate)
or wait for pods to be deleted by hand (OnDelete).
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from api.base import ApiModel
from api.deployment import check_rolling_budget
from api.errors import FieldError, invalid
from api.fieldtypes import IntOrString, int_or_percent_value
from api.meta import LabelSelector
from api.podstatus import ConditionStatus
from api.podtemplate import PodTemplateSpec, check_selector_and_template
from api.registry import ResourceInfo, register
from api.resource import Resource


# The types below mirror Kubernetes' own, one per kind: their field declarations look like other
# kinds' (the `duplicates` tool pairs them by shape), but each is a separate API type; no logic to share.
class RollingUpdateDaemonSet(ApiModel):
    """The budget of a DaemonSet rolling update."""

    max_unavailable: IntOrString = Field(1, description="Nodes whose pod may be unavailable during the update: "
                                                        "a count or a percentage.")
    max_surge: IntOrString = Field(0, description="Nodes that may run an old and a new pod at once: a count or "
                                                  "a percentage; only when maxUnavailable is 0.")


class DaemonSetUpdateStrategy(ApiModel):
    """How to replace old daemon pods."""

    type: Literal["RollingUpdate", "OnDelete"] = Field("RollingUpdate", description="RollingUpdate or OnDelete.")
    rolling_update: Optional[RollingUpdateDaemonSet] = Field(None, description="Budget of a RollingUpdate; "
                                                                               "only with that type.")

    @model_validator(mode="after")
    def _default_rolling_update(self) -> "DaemonSetUpdateStrategy":
        if self.type == "RollingUpdate" and self.rolling_update is None:
            self.rolling_update = RollingUpdateDaemonSet()
        return self


class DaemonSetSpec(ApiModel):
    """The desired state of a DaemonSet."""

    selector: LabelSelector = Field(description="Label query for the daemon pods; must match the template's "
                                                "labels.")
    template: PodTemplateSpec = Field(description="The pod to run on each node.")
    update_strategy: DaemonSetUpdateStrategy = Field(default_factory=DaemonSetUpdateStrategy,
                                                     description="How to replace old pods.")
    min_ready_seconds: int = Field(0, ge=0, description="Seconds a new pod must be ready before it counts as "
                                                        "available.")
    revision_history_limit: int = Field(10, ge=0, description="Old revisions to keep for rollback.")


class DaemonSetCondition(ApiModel):
    """One aspect of the DaemonSet's state."""

    type: str = Field(description="Condition type.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    last_transition_time: Optional[str] = Field(None, description="When the status last changed (RFC 3339).")
    reason: Optional[str] = Field(None, description="One-word CamelCase reason for the last transition.")
    message: Optional[str] = Field(None, description="Human-readable details.")


class DaemonSetStatus(ApiModel):
    """The observed state of a DaemonSet."""

    current_number_scheduled: int = Field(0, description="Nodes running a daemon pod that should.")
    number_misscheduled: int = Field(0, description="Nodes running a daemon pod that should not.")
    desired_number_scheduled: int = Field(0, description="Nodes that should run a daemon pod.")
    number_ready: int = Field(0, description="Nodes whose daemon pod is ready.")
    observed_generation: Optional[int] = Field(None, description="Generation the controller last acted on.")
    updated_number_scheduled: Optional[int] = Field(None, description="Nodes running the current template.")
    number_available: Optional[int] = Field(None, description="Nodes whose daemon pod is available.")
    number_unavailable: Optional[int] = Field(None, description="Nodes that should run an available daemon pod "
                                                                "and do not.")
    collision_count: Optional[int] = Field(None, description="Bumped to make a new revision name on a hash "
                                                             "collision.")
    conditions: Optional[list[DaemonSetCondition]] = Field(None, description="Current conditions.")


class DaemonSet(Resource):
    """Runs a copy of a pod on each eligible node."""

    api_version: Literal["apps/v1"] = "apps/v1"  # type: ignore[assignment]
    kind: Literal["DaemonSet"] = "DaemonSet"
    spec: DaemonSetSpec = Field(description="Desired state of the DaemonSet.")
    status: Optional[DaemonSetStatus] = Field(None, description="Observed state, written by the controller.")

    def validate_semantics(self) -> list[FieldError]:
        spec = self.spec
        errors = check_selector_and_template(spec.selector, spec.template, kind="DaemonSet")
        strategy = spec.update_strategy
        path = "spec.updateStrategy.rollingUpdate"
        if strategy.type == "OnDelete" and strategy.rolling_update is not None:
            errors.append(FieldError(path, "Forbidden: may not be specified when strategy `type` is 'OnDelete'"))
        elif strategy.rolling_update is not None:
            budget = strategy.rolling_update
            budget_errors = check_rolling_budget(max_surge=budget.max_surge, max_unavailable=budget.max_unavailable,
                                                 path=path)
            if not budget_errors and int_or_percent_value(budget.max_surge) and \
                    int_or_percent_value(budget.max_unavailable):
                budget_errors.append(invalid(f"{path}.maxSurge", budget.max_surge,
                                             "may not be set when maxUnavailable is non-zero"))
            errors += budget_errors
        return errors


register(ResourceInfo(kind="DaemonSet", plural="daemonsets", model=DaemonSet, group="apps",
                      short_names=("ds",)))
