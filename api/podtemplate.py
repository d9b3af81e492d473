"""PodTemplateSpec: the pod a workload stamps out, and the checks every workload shares.

ReplicaSet, Deployment, DaemonSet and Job (api/replicaset.py, ...) each hold a
label selector and a template. `check_selector_and_template` validates both
together: the selector must not be empty and must match the template's
labels (otherwise the controller would never find the pods it creates), the
template's PodSpec must be valid, and its restartPolicy must suit the kind.
"""

from __future__ import annotations

from typing import Optional

from pydantic import Field

from api.base import ApiModel
from api.errors import FieldError, ValidationFailed, forbidden, invalid, unsupported
from api.meta import LabelSelector, ObjectMeta
from api.pod import PodSpec, check_pod_spec


class PodTemplateSpec(ApiModel):
    """The metadata and spec of the pods a workload creates."""

    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Labels and annotations of the pods.")
    spec: PodSpec = Field(description="Spec of the pods.")


def check_selector_and_template(selector: Optional[LabelSelector], template: PodTemplateSpec, *,
                                kind: str, restart_policies: tuple[str, ...] = ("Always",),
                                path: str = "spec") -> list[FieldError]:
    """The checks ReplicaSet, Deployment, DaemonSet and Job share. A None selector is
    allowed (Job fills its own); callers that require one say so before calling."""
    errors = []
    if selector is not None:
        if not selector.match_labels and not selector.match_expressions:
            errors.append(invalid(f"{path}.selector", {}, f"empty selector is invalid for {kind.lower()}"))
        else:
            labels = template.metadata.labels or {}
            try:
                matches = selector.to_selector().matches(labels)
            except ValidationFailed as e:  # already reported by LabelSelector's own validation
                errors += e.prefixed(f"{path}.selector").errors
                matches = True
            if not matches:
                errors.append(invalid(f"{path}.template.metadata.labels", labels,
                                      "selector does not match template labels"))
    spec_path = f"{path}.template.spec"
    errors += check_pod_spec(template.spec, spec_path)
    if template.spec.restart_policy not in restart_policies:
        errors.append(unsupported(f"{spec_path}.restartPolicy", template.spec.restart_policy, restart_policies))
    if kind != "Job" and template.spec.active_deadline_seconds is not None:
        errors.append(forbidden(f"{spec_path}.activeDeadlineSeconds",
                                f"activeDeadlineSeconds in {kind} is not Supported"))
    return errors
