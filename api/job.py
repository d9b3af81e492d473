"""Job (batch/v1): pods that run to completion.

The Job controller runs up to `parallelism` pods at a time until
`completions` of them have succeeded, retrying failures up to `backoffLimit`
times. With `completions` unset and `parallelism` set, the Job is a work
queue: it is done when any pod succeeds and the rest have stopped.

Defaults follow Kubernetes: when neither is given both become 1; an unset
parallelism becomes 1. The template's restartPolicy must be OnFailure or Never.

Selector: Kubernetes' API server generates a `controller-uid` selector and
template label. Here a Job may be created without a selector; the API server
or the Job controller fills one in from the Job's uid. A selector given in the
manifest must match the template's labels, as for the other workloads.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from api.base import ApiModel
from api.errors import FieldError, required
from api.meta import LabelSelector
from api.podstatus import ConditionStatus
from api.podtemplate import PodTemplateSpec, check_selector_and_template
from api.registry import ResourceInfo, register
from api.resource import Resource

JOB_RESTART_POLICIES = ("OnFailure", "Never")


class JobSpec(ApiModel):
    """The desired state of a Job."""

    parallelism: Optional[int] = Field(None, ge=0, description="Most pods to run at once; default 1.")
    completions: Optional[int] = Field(None, ge=0, description="Successful pods needed; unset with "
                                                               "parallelism set means a work queue.")
    backoff_limit: int = Field(6, ge=0, description="Retries before the Job is marked failed.")
    active_deadline_seconds: Optional[int] = Field(None, ge=1, description="Seconds the Job may run before it "
                                                                           "is failed.")
    ttl_seconds_after_finished: Optional[int] = Field(None, ge=0, description="Delete the Job this many seconds "
                                                                              "after it finishes.")
    completion_mode: Literal["NonIndexed", "Indexed"] = Field("NonIndexed", description="NonIndexed, or "
                                                              "Indexed to give each pod a completion index.")
    suspend: Optional[bool] = Field(None, description="While true, no pods are created and running pods stop.")
    selector: Optional[LabelSelector] = Field(None, description="Label query for the Job's pods; filled in "
                                                                "from the Job's uid when absent.")
    manual_selector: Optional[bool] = Field(None, description="Use the given selector as is.")
    template: PodTemplateSpec = Field(description="The pod to run; restartPolicy OnFailure or Never.")

    @model_validator(mode="after")
    def _defaults(self) -> "JobSpec":
        if self.completions is None and self.parallelism is None:
            self.completions = 1
        if self.parallelism is None:
            self.parallelism = 1
        return self


# The types below mirror Kubernetes' own, one per kind: their field declarations look like other
# kinds' (the `duplicates` tool pairs them by shape), but each is a separate API type; no logic to share.
class JobCondition(ApiModel):
    """A terminal or notable state of the Job."""

    type: Literal["Complete", "Failed", "Suspended", "FailureTarget", "SuccessCriteriaMet"] = Field(
        description="Complete, Failed or Suspended.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    last_probe_time: Optional[str] = Field(None, description="When the condition was last checked (RFC 3339).")
    last_transition_time: Optional[str] = Field(None, description="When the status last changed (RFC 3339).")
    reason: Optional[str] = Field(None, description="One-word CamelCase reason, e.g. BackoffLimitExceeded.")
    message: Optional[str] = Field(None, description="Human-readable details.")


class JobStatus(ApiModel):
    """The observed state of a Job."""

    active: Optional[int] = Field(None, description="Pods pending or running.")
    succeeded: Optional[int] = Field(None, description="Pods that succeeded.")
    failed: Optional[int] = Field(None, description="Pods that failed.")
    ready: Optional[int] = Field(None, description="Active pods that are ready.")
    start_time: Optional[str] = Field(None, description="When the controller started the Job (RFC 3339).")
    completion_time: Optional[str] = Field(None, description="When the Job completed (RFC 3339).")
    completed_indexes: Optional[str] = Field(None, description="Completed indexes of an Indexed Job, e.g. "
                                                               "1,3-5.")
    conditions: Optional[list[JobCondition]] = Field(None, description="Current conditions.")


class Job(Resource):
    """Runs pods until a number of them succeed."""

    api_version: Literal["batch/v1"] = "batch/v1"  # type: ignore[assignment]
    kind: Literal["Job"] = "Job"
    spec: JobSpec = Field(description="Desired state of the Job.")
    status: Optional[JobStatus] = Field(None, description="Observed state, written by the controller.")

    def validate_semantics(self) -> list[FieldError]:
        spec = self.spec
        errors = check_selector_and_template(spec.selector, spec.template, kind="Job",
                                             restart_policies=JOB_RESTART_POLICIES)
        if spec.completion_mode == "Indexed" and spec.completions is None:
            errors.append(required("spec.completions", "when completion mode is Indexed"))
        return errors


register(ResourceInfo(kind="Job", plural="jobs", model=Job, group="batch", short_names=("job",)))
