"""HorizontalPodAutoscaler (autoscaling/v2): replicas that follow CPU or memory use.

`scaleTargetRef` names a Deployment (or ReplicaSet); `metrics` are `Resource` metrics
(`cpu`, `memory`) with a `Utilization` target — average use as a percentage of the
pods' requests — or an `AverageValue`. The HPA controller
(controlplane/controllers/podautoscaler.py) reads the pods' usage from the agents, the
numbers `ctl top pods` shows, and scales with Kubernetes' rule
`desired = ceil(current × utilisation / target)`, within `minReplicas`..`maxReplicas`,
ignoring changes within 10 %, and scaling down only to the highest recommendation of
the last `behavior.scaleDown.stabilizationWindowSeconds` (300 s by default).
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from api.base import ApiModel
from api.errors import FieldError, invalid, required
from api.fieldtypes import Quantity
from api.podstatus import ConditionStatus
from api.registry import ResourceInfo, register
from api.resource import Resource

DEFAULT_SCALE_DOWN_WINDOW = 300
MAX_WINDOW = 3600


class CrossVersionObjectReference(ApiModel):
    """The object to scale."""

    api_version: Optional[str] = Field(None, description="apiVersion of the target, e.g. apps/v1.")
    kind: str = Field(description="Deployment or ReplicaSet.")
    name: str = Field(description="Name of the target.")


class MetricTarget(ApiModel):
    type: Literal["Utilization", "AverageValue", "Value"] = Field(description="Utilization or AverageValue.")
    average_utilization: Optional[int] = Field(None, ge=1, description="Percentage of the pods' requests.")
    average_value: Optional[Quantity] = Field(None, description="Average per pod, e.g. 100m or 64Mi.")
    value: Optional[Quantity] = Field(None, description="Total (not supported for resource metrics).")


class ResourceMetricSource(ApiModel):
    name: Literal["cpu", "memory"] = Field(description="cpu or memory.")
    target: MetricTarget = Field(description="The target value.")


class MetricSpec(ApiModel):
    type: Literal["Resource", "ContainerResource", "Pods", "Object", "External"] = Field(
        description="Resource (the only type served).")
    resource: Optional[ResourceMetricSource] = Field(None, description="A resource metric.")


class ScalingPolicy(ApiModel):
    type: Literal["Pods", "Percent"] = Field(description="Pods or Percent.")
    value: int = Field(gt=0, description="Amount of change allowed per period.")
    period_seconds: int = Field(gt=0, le=1800, description="The period.")


class ScalingRules(ApiModel):
    stabilization_window_seconds: Optional[int] = Field(None, ge=0, le=MAX_WINDOW,
                                                        description="Seconds of past recommendations to consider.")
    select_policy: Optional[Literal["Max", "Min", "Disabled"]] = Field(None, description="Max, Min or Disabled.")
    policies: Optional[list[ScalingPolicy]] = Field(None, description="Rate limits of scaling.")


class HorizontalPodAutoscalerBehavior(ApiModel):
    scale_up: Optional[ScalingRules] = Field(None, description="Rules for scaling up (window 0 by default).")
    scale_down: Optional[ScalingRules] = Field(None, description="Rules for scaling down (window 300 s by default).")


# The types below mirror Kubernetes' own, one per kind: their field declarations look like other
# kinds' (the `duplicates` tool pairs them by shape), but each is a separate API type; no logic to share.
class HorizontalPodAutoscalerSpec(ApiModel):
    scale_target_ref: CrossVersionObjectReference = Field(description="The workload to scale.")
    min_replicas: int = Field(1, ge=1, description="Fewest replicas.")
    max_replicas: int = Field(ge=1, description="Most replicas.")
    metrics: Optional[list[MetricSpec]] = Field(None, description="What to follow; default 80 % CPU utilisation.")
    behavior: Optional[HorizontalPodAutoscalerBehavior] = Field(None, description="Scaling rates and windows.")


class MetricValueStatus(ApiModel):
    average_utilization: Optional[int] = Field(None, description="Current percentage of requests.")
    average_value: Optional[Quantity] = Field(None, description="Current average per pod.")
    value: Optional[Quantity] = Field(None, description="Current total.")


class ResourceMetricStatus(ApiModel):
    name: str = Field(description="cpu or memory.")
    current: MetricValueStatus = Field(description="Current value.")


class MetricStatus(ApiModel):
    type: str = Field(description="Resource.")
    resource: Optional[ResourceMetricStatus] = Field(None, description="A resource metric's current value.")


class HorizontalPodAutoscalerCondition(ApiModel):
    type: str = Field(description="AbleToScale, ScalingActive or ScalingLimited.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: Optional[str] = Field(None, description="Why.")
    message: Optional[str] = Field(None, description="Details.")
    last_transition_time: Optional[str] = Field(None, description="When the status last changed.")


class HorizontalPodAutoscalerStatus(ApiModel):
    observed_generation: Optional[int] = Field(None, description="The generation observed.")
    last_scale_time: Optional[str] = Field(None, description="When the controller last changed the replicas.")
    current_replicas: int = Field(0, description="Replicas the target has.")
    desired_replicas: int = Field(0, description="Replicas the controller wants.")
    current_metrics: Optional[list[MetricStatus]] = Field(None, description="The metrics as last read.")
    conditions: Optional[list[HorizontalPodAutoscalerCondition]] = Field(None, description="Conditions.")


class HorizontalPodAutoscaler(Resource):
    """Scales a workload's replicas to keep its pods' CPU or memory use near a target."""

    api_version: Literal["autoscaling/v2"] = "autoscaling/v2"  # type: ignore[assignment]
    kind: Literal["HorizontalPodAutoscaler"] = "HorizontalPodAutoscaler"
    spec: HorizontalPodAutoscalerSpec = Field(description="What to scale and how.")
    status: Optional[HorizontalPodAutoscalerStatus] = Field(None, description="Kept by the HPA controller.")

    def validate_semantics(self) -> list[FieldError]:
        spec = self.spec
        errors = []
        if spec.max_replicas < spec.min_replicas:
            errors.append(invalid("spec.maxReplicas", spec.max_replicas,
                                  "must be greater than or equal to `minReplicas`"))
        if spec.scale_target_ref.kind not in ("Deployment", "ReplicaSet"):
            errors.append(invalid("spec.scaleTargetRef.kind", spec.scale_target_ref.kind,
                                  "only Deployment and ReplicaSet can be scaled"))
        for i, metric in enumerate(spec.metrics or []):
            path = f"spec.metrics[{i}]"
            if metric.type != "Resource":
                errors.append(invalid(f"{path}.type", metric.type, "only Resource metrics are served"))
                continue
            if metric.resource is None:
                errors.append(required(f"{path}.resource", "when type is Resource"))
                continue
            target = metric.resource.target
            if target.type == "Utilization" and target.average_utilization is None:
                errors.append(required(f"{path}.resource.target.averageUtilization", "when type is Utilization"))
            elif target.type == "AverageValue" and target.average_value is None:
                errors.append(required(f"{path}.resource.target.averageValue", "when type is AverageValue"))
            elif target.type == "Value":
                errors.append(invalid(f"{path}.resource.target.type", "Value",
                                      "must be either Utilization or AverageValue for resource metrics"))
        return errors


register(ResourceInfo(kind="HorizontalPodAutoscaler", plural="horizontalpodautoscalers",
                      model=HorizontalPodAutoscaler, group="autoscaling", version="v2", short_names=("hpa",)))
