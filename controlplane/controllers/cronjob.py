"""The CronJob controller: create a Job at each scheduled time, as Kubernetes' cronjob controller (v2).

Keys are (namespace, name) of CronJobs, queued when a CronJob or one of its Jobs (by
controller ownerReference) changes, and again at the next scheduled time. A reconcile:

1. reads the CronJob's Jobs from the shared informer: unfinished ones are
   `status.active`; the newest completion is `status.lastSuccessfulTime`;
2. deletes finished Jobs beyond `successfulJobsHistoryLimit` (3) and
   `failedJobsHistoryLimit` (1), oldest first (their pods follow through the GC);
3. unless `suspend`: finds the latest scheduled time after the last one handled
   (`lastScheduleTime`, else the CronJob's creation), in `timeZone` (croniter);
   a time older than `startingDeadlineSeconds` is skipped (event `MissedSchedule`);
4. applies `concurrencyPolicy`: Allow creates another Job, Forbid waits while one is
   active (the time stays due, as Kubernetes does), Replace deletes the active ones first;
5. creates the Job `<name>-<minutes since the epoch>` — a second try at the same time
   finds the name taken and creates nothing — and records `lastScheduleTime`;
6. asks to be woken at the next scheduled time.

The clock is injectable (`clock`), so the unit tests step through minutes without waiting.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Any, Callable

from api.cronjob import job_from_cronjob, job_name, next_run, previous_run
from api.nodelease import parse_time
from controlplane.client import AlreadyExists, NotFound
from controlplane.client.events import NORMAL, WARNING
from controlplane.controllers.manager import Context, QueueController
from controlplane.controllers.owned import controller_of, pod_controller_uid
from controlplane.controllers.settings import ControllerSettings

# Module constants: alike in shape to other controllers' (the `duplicates` tool pairs them), each its own.
log = logging.getLogger(__name__)
Obj = dict[str, Any]
Key = tuple[str, str]
SCHEDULED_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
JOB_BY_CONTROLLER = "job-by-controller-uid"
# A wake-up a little after the scheduled second, so the clock has certainly passed it.
WAKE_SLACK_SECONDS = 0.1


def stamp(seconds: float) -> str:
    """RFC 3339 to the second, as Kubernetes writes lastScheduleTime."""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def finished_as(job: Obj) -> str | None:
    """"Complete" or "Failed" when the Job has finished, else None."""
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return c["type"]
    return None


def _start_order(job: Obj) -> tuple[float, str]:
    """Kubernetes trims history oldest start first, names breaking ties."""
    status, meta = job.get("status") or {}, job.get("metadata") or {}
    return (parse_time(status.get("startTime")) or parse_time(meta.get("creationTimestamp")) or 0.0,
            meta.get("name", ""))


def _finish_time(job: Obj) -> float:
    status = job.get("status") or {}
    return (parse_time(status.get("completionTime")) or parse_time(status.get("startTime"))
            or parse_time((job.get("metadata") or {}).get("creationTimestamp")) or 0.0)


def reference(job: Obj) -> Obj:
    meta = job["metadata"]
    # No resourceVersion: it changes with every write to the Job, and would rewrite the
    # CronJob's status each time for nothing.
    return {"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"], "namespace": meta.get("namespace"),
            "uid": meta.get("uid")}


def due_time(cronjob: Obj, now: float) -> tuple[float | None, bool]:
    """(the scheduled time to run now or None, whether it is past startingDeadlineSeconds)."""
    status = cronjob.get("status") or {}
    earliest = parse_time(status.get("lastScheduleTime")) or parse_time(cronjob["metadata"].get("creationTimestamp"))
    scheduled = previous_run(cronjob, now)
    if scheduled is None or (earliest is not None and scheduled <= earliest):
        return None, False
    deadline = cronjob["spec"].get("startingDeadlineSeconds")
    return scheduled, deadline is not None and scheduled < now - deadline


# The controller pattern (informers in setup, events -> keys, reconcile a key, retry on Conflict):
# alike in shape across controllers by design (the `duplicates` tool pairs them); the rules differ.
class CronJobController(QueueController):
    def __init__(self, settings: ControllerSettings | None = None, *, namespace: str = "",
                 clock: Callable[[], float] = time.time):
        super().__init__(name="cronjob")
        self.namespace = namespace   # "" watches every namespace; tests narrow it to their own
        self.settings = settings or ControllerSettings()
        self.workers = self.settings.workers
        self.clock = clock

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        self.cronjobs = ctx.informers.get("CronJob", namespace=self.namespace)
        self.jobs = ctx.informers.get("Job", namespace=self.namespace)
        self.jobs.add_index(JOB_BY_CONTROLLER, pod_controller_uid)   # any object's controller uid
        self.cronjobs.add_handlers(on_add=self._enqueue, on_update=lambda _o, new: self._enqueue(new),
                                   on_delete=self._enqueue)
        self.jobs.add_handlers(on_add=self._job_event, on_update=lambda _o, new: self._job_event(new),
                               on_delete=self._job_event)

    def _enqueue(self, cronjob: Obj) -> None:
        self.queue.add((cronjob["metadata"].get("namespace", ""), cronjob["metadata"]["name"]))

    def _job_event(self, job: Obj) -> None:
        ref = controller_of(job)
        if ref is not None and ref.get("kind") == "CronJob":
            self.queue.add((job["metadata"].get("namespace", ""), ref.get("name", "")))

    def _jobs_of(self, cronjob: Obj) -> list[Obj]:
        return self.jobs.by_index(JOB_BY_CONTROLLER, cronjob["metadata"].get("uid", ""))

    async def reconcile(self, key: Key) -> float | None:
        return await self.retry_on_conflict(key, self._reconcile)

    async def _reconcile(self, key: Key) -> float | None:
        namespace, name = key
        cronjob = self.cronjobs.get(namespace, name)
        if cronjob is None or cronjob["metadata"].get("deletionTimestamp"):
            return None
        now = self.clock()
        jobs = self._jobs_of(cronjob)
        status = dict(cronjob.get("status") or {})
        active = [j for j in jobs if finished_as(j) is None and not j["metadata"].get("deletionTimestamp")]
        done = [j for j in jobs if finished_as(j) == "Complete"]
        if done:
            newest = max(_finish_time(j) for j in done)
            if newest > (parse_time(status.get("lastSuccessfulTime")) or 0):
                status["lastSuccessfulTime"] = stamp(newest)
        await self._trim_history(cronjob, jobs)

        spec = cronjob["spec"]
        wake = next_run(cronjob, now)
        if not spec.get("suspend"):
            scheduled, too_late = due_time(cronjob, now)
            if scheduled is not None and too_late:
                self.ctx.recorder.event(cronjob, WARNING, "MissedSchedule",
                                        f"Missed scheduled time to start a job: {stamp(scheduled)}")
                status["lastScheduleTime"] = stamp(scheduled)
            elif scheduled is not None:
                policy = spec.get("concurrencyPolicy") or "Allow"
                if policy == "Forbid" and active:
                    # Stays due: the Job is created once the active one finishes (within the deadline).
                    log.debug("cronjob %s/%s: %s due but a job is active (Forbid)", namespace, name, stamp(scheduled))
                    wake = None
                else:
                    if policy == "Replace":
                        for job in active:
                            await self._delete_job(cronjob, job, "Replace")
                        active = []
                    created = await self._create_job(cronjob, scheduled)
                    if created is not None:
                        active.append(created)
                    status["lastScheduleTime"] = stamp(scheduled)
        status["active"] = [reference(j) for j in sorted(active, key=lambda j: j["metadata"]["name"])] or None
        if status.get("active") is None:
            status.pop("active", None)
        if status != (cronjob.get("status") or {}):
            try:
                await self.ctx.client.update_status({**cronjob, "status": status})
            except NotFound:
                return None
        if wake is None:
            return None
        return max(WAKE_SLACK_SECONDS, wake - now + WAKE_SLACK_SECONDS)

    async def _create_job(self, cronjob: Obj, scheduled: float) -> Obj | None:
        name = job_name(cronjob["metadata"]["name"], scheduled)
        job = job_from_cronjob(cronjob, name, annotations={SCHEDULED_ANNOTATION: stamp(scheduled)})
        try:
            created = await self.ctx.client.create(job)
        except AlreadyExists:
            # This time was handled already (a retry after a lost status write): nothing to add.
            return None
        self.ctx.recorder.event(cronjob, NORMAL, "SuccessfulCreate", f"Created job {name}")
        return created

    async def _delete_job(self, cronjob: Obj, job: Obj, why: str) -> None:
        meta = job["metadata"]
        try:
            await self.ctx.client.delete("jobs", meta["name"], meta.get("namespace", ""), propagation="Background")
        except NotFound:
            return
        self.ctx.recorder.event(cronjob, NORMAL, "SuccessfulDelete", f"Deleted job {meta['name']}"
                                + (" (concurrencyPolicy Replace)" if why == "Replace" else ""))

    async def _trim_history(self, cronjob: Obj, jobs: list[Obj]) -> None:
        spec = cronjob["spec"]
        for outcome, limit in (("Complete", spec.get("successfulJobsHistoryLimit", 3)),
                               ("Failed", spec.get("failedJobsHistoryLimit", 1))):
            finished = sorted((j for j in jobs if finished_as(j) == outcome
                               and not j["metadata"].get("deletionTimestamp")), key=_start_order)
            for job in finished[:max(0, len(finished) - (limit if limit is not None else 0))]:
                await self._delete_job(cronjob, job, "history")
