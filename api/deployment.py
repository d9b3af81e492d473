"""Deployment (apps/v1): a replicated pod with rolling updates and rollbacks.

The Deployment controller keeps one ReplicaSet (api/replicaset.py) per
template revision and moves pods from the old ones to the new one, within the
budget of spec.strategy: RollingUpdate (at most maxSurge extra pods, at most
maxUnavailable missing) or Recreate (all old pods go first).
`resolve_int_or_percent` turns a budget like "25%" into a pod count.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from api.base import ApiModel
from api.limits import MAX_REPLICAS
from api.errors import FieldError, invalid
from api.fieldtypes import IntOrString, check_int_or_percent, int_or_percent_value, resolve_int_or_percent
from api.meta import LabelSelector
from api.podstatus import ConditionStatus
from api.podtemplate import PodTemplateSpec, check_selector_and_template
from api.registry import ResourceInfo, register
from api.resource import Resource

__all__ = ["Deployment", "DeploymentSpec", "DeploymentStatus", "DeploymentStrategy", "RollingUpdateDeployment",
           "resolve_int_or_percent", "check_rolling_budget"]


# The types below mirror Kubernetes' own, one per kind: their field declarations look like other
# kinds' (the `duplicates` tool pairs them by shape), but each is a separate API type; no logic to share.
class RollingUpdateDeployment(ApiModel):
    """The budget of a rolling update."""

    max_surge: IntOrString = Field("25%", description="Pods allowed above replicas during the update: a "
                                                      "count or a percentage (rounded up).")
    max_unavailable: IntOrString = Field("25%", description="Pods allowed to be unavailable during the update: "
                                                            "a count or a percentage (rounded down).")


class DeploymentStrategy(ApiModel):
    """How to replace old pods with new ones."""

    type: Literal["RollingUpdate", "Recreate"] = Field("RollingUpdate", description="RollingUpdate or Recreate.")
    rolling_update: Optional[RollingUpdateDeployment] = Field(None, description="Budget of a RollingUpdate; "
                                                                                "only with that type.")

    @model_validator(mode="after")
    def _default_rolling_update(self) -> "DeploymentStrategy":
        if self.type == "RollingUpdate" and self.rolling_update is None:
            self.rolling_update = RollingUpdateDeployment()
        return self


class DeploymentSpec(ApiModel):
    """The desired state of a Deployment."""

    replicas: int = Field(1, ge=0, le=MAX_REPLICAS, description="Number of pods to run.")
    selector: LabelSelector = Field(description="Label query for the Deployment's pods; must match the "
                                                "template's labels.")
    template: PodTemplateSpec = Field(description="The pod to run; a change starts a rollout.")
    strategy: DeploymentStrategy = Field(default_factory=DeploymentStrategy, description="How to replace old "
                                                                                         "pods with new ones.")
    min_ready_seconds: int = Field(0, ge=0, description="Seconds a new pod must be ready before it counts as "
                                                        "available.")
    revision_history_limit: int = Field(10, ge=0, description="Old ReplicaSets to keep for rollback.")
    progress_deadline_seconds: int = Field(600, ge=1, description="Seconds without progress before the "
                                                                  "rollout is reported as failed.")
    paused: Optional[bool] = Field(None, description="Stop rolling out template changes while true.")


class DeploymentCondition(ApiModel):
    """One aspect of the Deployment's state: Available, Progressing, ReplicaFailure."""

    type: str = Field(description="Available, Progressing or ReplicaFailure.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    last_update_time: Optional[str] = Field(None, description="When the condition was last updated (RFC 3339).")
    last_transition_time: Optional[str] = Field(None, description="When the status last changed (RFC 3339).")
    reason: Optional[str] = Field(None, description="One-word CamelCase reason, e.g. NewReplicaSetAvailable.")
    message: Optional[str] = Field(None, description="Human-readable details.")


class DeploymentStatus(ApiModel):
    """The observed state of a Deployment."""

    observed_generation: Optional[int] = Field(None, description="Generation the controller last acted on.")
    replicas: Optional[int] = Field(None, description="Pods of all the Deployment's ReplicaSets.")
    updated_replicas: Optional[int] = Field(None, description="Pods with the current template.")
    ready_replicas: Optional[int] = Field(None, description="Pods that are ready.")
    available_replicas: Optional[int] = Field(None, description="Pods ready for at least minReadySeconds.")
    unavailable_replicas: Optional[int] = Field(None, description="Pods still needed to reach replicas "
                                                                  "available.")
    conditions: Optional[list[DeploymentCondition]] = Field(None, description="Current conditions.")
    collision_count: Optional[int] = Field(None, description="Bumped to make a new ReplicaSet name on a hash "
                                                             "collision.")


class Deployment(Resource):
    """Declarative updates for a replicated pod."""

    api_version: Literal["apps/v1"] = "apps/v1"  # type: ignore[assignment]
    kind: Literal["Deployment"] = "Deployment"
    spec: DeploymentSpec = Field(description="Desired state of the Deployment.")
    status: Optional[DeploymentStatus] = Field(None, description="Observed state, written by the controller.")

    def validate_semantics(self) -> list[FieldError]:
        spec = self.spec
        errors = check_selector_and_template(spec.selector, spec.template, kind="Deployment")
        strategy = spec.strategy
        if strategy.type == "Recreate" and strategy.rolling_update is not None:
            errors.append(FieldError("spec.strategy.rollingUpdate",
                                     "Forbidden: may not be specified when strategy `type` is 'Recreate'"))
        elif strategy.rolling_update is not None:
            errors += check_rolling_budget(max_surge=strategy.rolling_update.max_surge,
                                           max_unavailable=strategy.rolling_update.max_unavailable,
                                           path="spec.strategy.rollingUpdate")
        if spec.progress_deadline_seconds <= spec.min_ready_seconds:
            errors.append(invalid("spec.progressDeadlineSeconds", spec.progress_deadline_seconds,
                                  "must be greater than minReadySeconds"))
        return errors


def check_rolling_budget(*, max_surge: int | str, max_unavailable: int | str, path: str) -> list[FieldError]:
    """maxSurge and maxUnavailable: each a count or percentage, not both zero."""
    errors = (check_int_or_percent(max_surge, f"{path}.maxSurge")
              + check_int_or_percent(max_unavailable, f"{path}.maxUnavailable"))
    if not errors and int_or_percent_value(max_surge) == 0 and int_or_percent_value(max_unavailable) == 0:
        errors.append(invalid(f"{path}.maxUnavailable", max_unavailable, "may not be 0 when maxSurge is 0"))
    return errors


register(ResourceInfo(kind="Deployment", plural="deployments", model=Deployment, group="apps",
                      short_names=("deploy",)))
