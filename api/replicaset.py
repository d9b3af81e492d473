"""ReplicaSet (apps/v1): keeps a number of identical pods running.

The ReplicaSet controller counts the pods its selector matches and creates or
deletes pods from the template to reach spec.replicas. Deployments
(api/deployment.py) own ReplicaSets, one per template revision.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from api.base import ApiModel
from api.limits import MAX_REPLICAS
from api.errors import FieldError
from api.meta import LabelSelector
from api.podstatus import ConditionStatus
from api.podtemplate import PodTemplateSpec, check_selector_and_template
from api.registry import ResourceInfo, register
from api.resource import Resource


class ReplicaSetSpec(ApiModel):
    """The desired state of a ReplicaSet."""

    replicas: int = Field(1, ge=0, le=MAX_REPLICAS, description="Number of pods to run.")
    min_ready_seconds: int = Field(0, ge=0, description="Seconds a pod must be ready before it counts as "
                                                        "available.")
    selector: LabelSelector = Field(description="Label query for the pods the ReplicaSet owns; must match "
                                                "the template's labels.")
    template: PodTemplateSpec = Field(description="The pod to create.")


# The types below mirror Kubernetes' own, one per kind: their field declarations look like other
# kinds' (the `duplicates` tool pairs them by shape), but each is a separate API type; no logic to share.
class ReplicaSetCondition(ApiModel):
    """One aspect of the ReplicaSet's state, e.g. ReplicaFailure."""

    type: str = Field(description="Condition type, e.g. ReplicaFailure.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    last_transition_time: Optional[str] = Field(None, description="When the status last changed (RFC 3339).")
    reason: Optional[str] = Field(None, description="One-word CamelCase reason for the last transition.")
    message: Optional[str] = Field(None, description="Human-readable details of the last transition.")


class ReplicaSetStatus(ApiModel):
    """The observed state of a ReplicaSet."""

    replicas: int = Field(0, description="Number of pods the ReplicaSet has.")
    fully_labeled_replicas: Optional[int] = Field(None, description="Pods whose labels match the template's.")
    ready_replicas: Optional[int] = Field(None, description="Pods that are ready.")
    available_replicas: Optional[int] = Field(None, description="Pods ready for at least minReadySeconds.")
    observed_generation: Optional[int] = Field(None, description="Generation the controller last acted on.")
    conditions: Optional[list[ReplicaSetCondition]] = Field(None, description="Current conditions.")


class ReplicaSet(Resource):
    """Keeps spec.replicas pods matching the selector running."""

    api_version: Literal["apps/v1"] = "apps/v1"  # type: ignore[assignment]
    kind: Literal["ReplicaSet"] = "ReplicaSet"
    spec: ReplicaSetSpec = Field(description="Desired state of the ReplicaSet.")
    status: Optional[ReplicaSetStatus] = Field(None, description="Observed state, written by the controller.")

    def validate_semantics(self) -> list[FieldError]:
        return check_selector_and_template(self.spec.selector, self.spec.template, kind="ReplicaSet")


register(ResourceInfo(kind="ReplicaSet", plural="replicasets", model=ReplicaSet, group="apps",
                      short_names=("rs",)))
