"""CronJob (batch/v1): a Job created on a cron schedule.

`schedule` is standard cron syntax (five fields, or a macro such as `@hourly`),
parsed by `croniter`, never by hand; `timeZone` names an IANA zone that this
machine's zoneinfo database knows (unset: the control plane's UTC). The CronJob
controller (controlplane/controllers/cronjob.py) creates a Job from
`jobTemplate` for each scheduled time, named `<cronjob>-<minutes since the
epoch>` as Kubernetes names them, and keeps `successfulJobsHistoryLimit` (3)
finished ones and `failedJobsHistoryLimit` (1) failed ones.

The name may be at most 52 characters: the Job's name adds 11 (`-` and the
minutes), and a Job's pods add more again, as Kubernetes limits it.
"""

from __future__ import annotations

import copy
import math
from datetime import datetime, timezone, tzinfo
from typing import Any, Literal, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import Field

from api.base import ApiModel
from api.errors import FieldError, invalid, required
from api.job import JOB_RESTART_POLICIES, JobSpec
from api.meta import ObjectMeta
from api.podtemplate import check_selector_and_template
from api.registry import ResourceInfo, register
from api.resource import Resource

MAX_NAME_LENGTH = 52
CONCURRENCY_POLICIES = ("Allow", "Forbid", "Replace")


class JobTemplateSpec(ApiModel):
    """The Job a CronJob creates at each scheduled time."""

    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Labels and annotations of the Jobs.")
    spec: JobSpec = Field(description="Spec of the Jobs.")


class CronJobSpec(ApiModel):
    """When to run, and what."""

    schedule: str = Field(description="Cron schedule: five fields (minute hour day-of-month month day-of-week) "
                                      "or a macro such as @hourly.")
    time_zone: Optional[str] = Field(None, description="IANA time zone of the schedule, e.g. Etc/UTC; "
                                                       "default the control plane's (UTC).")
    starting_deadline_seconds: Optional[int] = Field(None, ge=0, description="A run missed by more than this "
                                                                             "many seconds is skipped.")
    concurrency_policy: Literal["Allow", "Forbid", "Replace"] = Field(
        "Allow", description="Allow concurrent Jobs, Forbid a new one while one runs, or Replace the running one.")
    suspend: bool = Field(False, description="While true, no new Jobs are created.")
    job_template: JobTemplateSpec = Field(description="The Job to create.")
    successful_jobs_history_limit: int = Field(3, ge=0, description="Finished Jobs to keep.")
    failed_jobs_history_limit: int = Field(1, ge=0, description="Failed Jobs to keep.")


# The types below mirror Kubernetes' own, one per kind: their field declarations look like other
# kinds' (the `duplicates` tool pairs them by shape), but each is a separate API type; no logic to share.
class ObjectReference(ApiModel):
    """A reference to an object (a CronJob's active Jobs)."""

    api_version: Optional[str] = Field(None, description="apiVersion of the referent.")
    kind: Optional[str] = Field(None, description="Kind of the referent.")
    name: Optional[str] = Field(None, description="Name of the referent.")
    namespace: Optional[str] = Field(None, description="Namespace of the referent.")
    uid: Optional[str] = Field(None, description="UID of the referent.")
    resource_version: Optional[str] = Field(None, description="resourceVersion of the referent.")


class CronJobStatus(ApiModel):
    """What the controller has done."""

    active: Optional[list[ObjectReference]] = Field(None, description="Jobs running now.")
    last_schedule_time: Optional[str] = Field(None, description="When a Job was last scheduled (RFC 3339).")
    last_successful_time: Optional[str] = Field(None, description="When a Job last completed (RFC 3339).")


def schedule_error(schedule: str) -> str | None:
    """Why croniter refuses a schedule, or None when it is valid. Kubernetes also accepts
    the `TZ=`/`CRON_TZ=` prefix but forbids it in favour of timeZone; so does this."""
    text = schedule.strip()
    if not text:
        return "an empty schedule is not valid"
    if text.startswith(("TZ=", "CRON_TZ=")):
        return "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"
    if len(text.split()) not in (1, 5):
        return "a schedule has five fields: minute hour day-of-month month day-of-week"
    try:
        croniter(text, datetime(2000, 1, 1, tzinfo=timezone.utc))
    except Exception as exc:  # croniter raises several error types (CroniterBadCronError, ValueError, KeyError)
        return f"unparseable schedule: {exc}"
    return None


def zone_error(name: str) -> str | None:
    if not name or name != name.strip() or name.startswith("/") or ".." in name:
        return "unknown time zone"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {name}"
    return None


class CronJob(Resource):
    """Creates Jobs on a repeating schedule."""

    api_version: Literal["batch/v1"] = "batch/v1"  # type: ignore[assignment]
    kind: Literal["CronJob"] = "CronJob"
    spec: CronJobSpec = Field(description="Desired behaviour of the CronJob.")
    status: Optional[CronJobStatus] = Field(None, description="Observed state, written by the controller.")

    def validate_semantics(self) -> list[FieldError]:
        spec = self.spec
        errors: list[FieldError] = []
        if len(self.name) > MAX_NAME_LENGTH:
            errors.append(invalid("metadata.name", self.name, f"must be no more than {MAX_NAME_LENGTH} characters"))
        if (message := schedule_error(spec.schedule)) is not None:
            errors.append(invalid("spec.schedule", spec.schedule, message))
        if spec.time_zone is not None and (message := zone_error(spec.time_zone)) is not None:
            errors.append(invalid("spec.timeZone", spec.time_zone, message))
        job = spec.job_template.spec
        errors += check_selector_and_template(job.selector, job.template, kind="Job",
                                              restart_policies=JOB_RESTART_POLICIES, path="spec.jobTemplate.spec")
        if job.completion_mode == "Indexed" and job.completions is None:
            errors.append(required("spec.jobTemplate.spec.completions", "when completion mode is Indexed"))
        return errors


def zone_of(cronjob: dict[str, Any]) -> tzinfo:
    """The zone a CronJob's schedule is read in (UTC when unset)."""
    name = (cronjob.get("spec") or {}).get("timeZone")
    return ZoneInfo(name) if name else timezone.utc


def previous_run(cronjob: dict[str, Any], now: float) -> float | None:
    """The latest scheduled time at or before `now` (seconds since the epoch)."""
    # croniter's get_prev is strictly before its start; cron times are whole minutes, so
    # starting one second past `now` (rounded down) includes a run at exactly `now`.
    moment = datetime.fromtimestamp(math.floor(now) + 1, zone_of(cronjob))
    try:
        prev = croniter(cronjob["spec"]["schedule"], moment).get_prev(datetime)
    except Exception:  # croniter raises several error types for a schedule it cannot follow
        return None
    return float(prev.timestamp())


def next_run(cronjob: dict[str, Any], now: float) -> float | None:
    """The first scheduled time strictly after `now`."""
    try:
        return float(croniter(cronjob["spec"]["schedule"], datetime.fromtimestamp(now, zone_of(cronjob))).get_next(
            datetime).timestamp())
    except Exception:
        return None


def job_name(cronjob_name: str, scheduled: float) -> str:
    """Kubernetes' name for the Job of a scheduled time: `<cronjob>-<minutes since the epoch>`."""
    return f"{cronjob_name}-{int(scheduled) // 60}"


def job_from_cronjob(cronjob: dict[str, Any], name: str, *, annotations: dict[str, str] | None = None
                     ) -> dict[str, Any]:
    """A Job from a CronJob's jobTemplate, owned by the CronJob (the controller, and
    `ctl create job NAME --from=cronjob/CJ`, which adds `cronjob.kubernetes.io/instantiate: manual`)."""
    meta = cronjob.get("metadata") or {}
    template = copy.deepcopy((cronjob.get("spec") or {}).get("jobTemplate") or {})
    tmeta = template.get("metadata") or {}
    job_meta: dict[str, Any] = {"name": name, "namespace": meta.get("namespace"),
                                "labels": dict(tmeta.get("labels") or {}),
                                "annotations": {**(tmeta.get("annotations") or {}), **(annotations or {})},
                                "ownerReferences": [{"apiVersion": cronjob.get("apiVersion", "batch/v1"),
                                                     "kind": "CronJob", "name": meta.get("name"),
                                                     "uid": meta.get("uid"), "controller": True,
                                                     "blockOwnerDeletion": True}]}
    if not job_meta["labels"]:
        del job_meta["labels"]
    if not job_meta["annotations"]:
        del job_meta["annotations"]
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": job_meta, "spec": template.get("spec") or {}}


__all__ = ["CronJob", "CronJobSpec", "JobTemplateSpec", "schedule_error", "zone_error", "previous_run",
           "next_run", "job_name", "job_from_cronjob"]

register(ResourceInfo(kind="CronJob", plural="cronjobs", model=CronJob, group="batch", short_names=("cj",)))
