"""StatefulSet (apps/v1) and ControllerRevision (apps/v1): pods with stable names and storage.

A StatefulSet runs `replicas` pods named `<name>-0`, `<name>-1`, ..., each with the
hostname of its name and the subdomain `serviceName` (so a headless Service of that
name gives each pod a DNS name, `web-0.nginx.<ns>.svc.cluster.local`), and for each
`volumeClaimTemplates` entry a PersistentVolumeClaim `<template>-<pod>` that outlives
the pod. Pods start in ordinal order and go in reverse (OrderedReady) or all at once
(Parallel); template changes roll out from the highest ordinal down to `partition`
(RollingUpdate) or wait for pods to be deleted (OnDelete). Each template is kept as a
ControllerRevision, the history `ctl rollout history|undo` reads. The controller is
controlplane/controllers/statefulset.py.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field, model_validator

from api.base import ApiModel
from api.errors import FieldError, forbidden, invalid
from api.meta import LabelSelector, ObjectMeta
from api.names import check_dns1123_label
from api.podstatus import ConditionStatus
from api.podtemplate import PodTemplateSpec, check_selector_and_template
from api.registry import ResourceInfo, register
from api.resource import Resource
from api.storage import PersistentVolumeClaimSpec, check_claim_spec
from api.volumes import Volume


# The types below mirror Kubernetes' own, one per kind: their field declarations look like other
# kinds' (the `duplicates` tool pairs them by shape), but each is a separate API type; no logic to share.
class RollingUpdateStatefulSetStrategy(ApiModel):
    """The budget of a StatefulSet rolling update."""

    partition: int = Field(0, ge=0, description="Pods with an ordinal below this keep the old template.")
    max_unavailable: Optional[int] = Field(None, ge=1, description="Accepted for compatibility; Skiff updates "
                                                                   "one pod at a time.")


class StatefulSetUpdateStrategy(ApiModel):
    """How to replace the pods of an old template."""

    type: Literal["RollingUpdate", "OnDelete"] = Field("RollingUpdate", description="RollingUpdate or OnDelete.")
    rolling_update: Optional[RollingUpdateStatefulSetStrategy] = Field(None, description="Only with "
                                                                                          "RollingUpdate.")

    @model_validator(mode="after")
    def _default_rolling_update(self) -> "StatefulSetUpdateStrategy":
        if self.type == "RollingUpdate" and self.rolling_update is None:
            self.rolling_update = RollingUpdateStatefulSetStrategy()
        return self


class PersistentVolumeClaimTemplate(ApiModel):
    """A claim stamped out once per ordinal."""

    api_version: Optional[str] = Field(None, alias="apiVersion", description="v1 (optional).")
    kind: Optional[str] = Field(None, description="PersistentVolumeClaim (optional).")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="The claim's name (required) and labels.")
    spec: PersistentVolumeClaimSpec = Field(description="The claim's spec.")


class RetentionPolicy(ApiModel):
    """What happens to the claims when the StatefulSet is deleted or scaled down."""

    when_deleted: Literal["Retain", "Delete"] = Field("Retain", description="Retain (default) or Delete.")
    when_scaled: Literal["Retain", "Delete"] = Field("Retain", description="Retain (default) or Delete.")


class StatefulSetSpec(ApiModel):
    """The desired state of a StatefulSet."""

    replicas: int = Field(1, ge=0, description="Number of pods.")
    selector: LabelSelector = Field(description="Label query for the pods; must match the template's labels; "
                                                "immutable.")
    template: PodTemplateSpec = Field(description="The pod to create for each ordinal.")
    volume_claim_templates: Optional[list[PersistentVolumeClaimTemplate]] = Field(
        None, description="Claims made for each pod, named <template>-<pod>, mounted as the volume of the "
                          "template's name.")
    service_name: Optional[str] = Field(None, description="The headless Service giving the pods DNS names "
                                                          "(<pod>.<serviceName>).")
    pod_management_policy: Literal["OrderedReady", "Parallel"] = Field(
        "OrderedReady", description="OrderedReady: one at a time, in order; Parallel: all at once.")
    update_strategy: StatefulSetUpdateStrategy = Field(default_factory=StatefulSetUpdateStrategy,
                                                       description="How to replace old pods.")
    revision_history_limit: int = Field(10, ge=0, description="Old ControllerRevisions to keep.")
    min_ready_seconds: int = Field(0, ge=0, description="Seconds a pod must be ready to count as available.")
    persistent_volume_claim_retention_policy: Optional[RetentionPolicy] = Field(
        None, description="Whether the claims go with the StatefulSet (only Retain is supported).")


class StatefulSetCondition(ApiModel):
    type: str = Field(description="Condition type.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    last_transition_time: Optional[str] = Field(None, description="When the status last changed.")
    reason: Optional[str] = Field(None, description="One-word reason.")
    message: Optional[str] = Field(None, description="Details.")


class StatefulSetStatus(ApiModel):
    """The observed state of a StatefulSet."""

    observed_generation: Optional[int] = Field(None, description="Generation the controller last acted on.")
    replicas: int = Field(0, description="Pods the StatefulSet has.")
    ready_replicas: Optional[int] = Field(None, description="Pods that are ready.")
    current_replicas: Optional[int] = Field(None, description="Pods of currentRevision.")
    updated_replicas: Optional[int] = Field(None, description="Pods of updateRevision.")
    available_replicas: Optional[int] = Field(None, description="Pods ready for minReadySeconds.")
    current_revision: Optional[str] = Field(None, description="The revision the pods below the partition run.")
    update_revision: Optional[str] = Field(None, description="The revision of the current template.")
    collision_count: Optional[int] = Field(None, description="Unused by Skiff.")
    conditions: Optional[list[StatefulSetCondition]] = Field(None, description="Current conditions.")


class StatefulSet(Resource):
    """Pods with stable names, DNS names and storage, started and updated in order."""

    api_version: Literal["apps/v1"] = "apps/v1"  # type: ignore[assignment]
    kind: Literal["StatefulSet"] = "StatefulSet"
    spec: StatefulSetSpec = Field(description="Desired state of the StatefulSet.")
    status: Optional[StatefulSetStatus] = Field(None, description="Observed state, written by the controller.")

    def validate_semantics(self) -> list[FieldError]:
        spec = self.spec
        # The pods mount each claim template as a volume of its name (statefulset_plan.new_pod).
        template = spec.template.model_copy(deep=True)
        template.spec.volumes = [*(template.spec.volumes or []), *(
            Volume.model_validate({"name": c.metadata.name, "persistentVolumeClaim": {
                "claimName": f"{c.metadata.name}-{self.name or 'pod'}-0"}})
            for c in spec.volume_claim_templates or [] if c.metadata.name)]
        errors = check_selector_and_template(spec.selector, template, kind="StatefulSet")
        if spec.service_name and (msg := check_dns1123_label(spec.service_name)):
            errors.append(invalid("spec.serviceName", spec.service_name, msg))
        strategy = spec.update_strategy
        if strategy.type == "OnDelete" and strategy.rolling_update is not None:
            errors.append(forbidden("spec.updateStrategy.rollingUpdate",
                                    "only allowed for updateStrategy 'RollingUpdate'"))
        policy = spec.persistent_volume_claim_retention_policy
        if policy is not None and "Delete" in (policy.when_deleted, policy.when_scaled):
            errors.append(forbidden("spec.persistentVolumeClaimRetentionPolicy",
                                    "only Retain is supported by Skiff"))
        volume_names = {v.name for v in spec.template.spec.volumes or []}
        seen: set[str] = set()
        for i, claim in enumerate(spec.volume_claim_templates or []):
            path = f"spec.volumeClaimTemplates[{i}]"
            name = claim.metadata.name or ""
            if not name:
                errors.append(FieldError(f"{path}.metadata.name", "Required value"))
            elif msg := check_dns1123_label(name):
                errors.append(invalid(f"{path}.metadata.name", name, msg))
            elif name in seen:
                errors.append(FieldError(f"{path}.metadata.name", f'Duplicate value: "{name}"'))
            elif name in volume_names:
                errors.append(invalid(f"{path}.metadata.name", name, "a volume of the pod template has this "
                                                                     "name already"))
            seen.add(name)
            errors += check_claim_spec(claim.spec, f"{path}.spec")
        return errors


class ControllerRevision(Resource):
    """One saved state of a workload's template (a StatefulSet's), numbered for rollbacks."""

    api_version: Literal["apps/v1"] = "apps/v1"  # type: ignore[assignment]
    kind: Literal["ControllerRevision"] = "ControllerRevision"
    data: Optional[dict[str, Any]] = Field(None, description="The saved state: {spec: {template: ...}}.")
    revision: int = Field(description="The revision number, increasing.")


register(ResourceInfo(kind="StatefulSet", plural="statefulsets", model=StatefulSet, group="apps",
                      short_names=("sts",)))
register(ResourceInfo(kind="ControllerRevision", plural="controllerrevisions", model=ControllerRevision,
                      group="apps", has_status=False, spec_fields=("data", "revision")))
