"""The Job controller: run pods until enough succeed, or give up by the Job's limits.

Keys are (namespace, name) of Jobs, queued when a Job or one of its pods (by
controller ownerReference) changes. A reconcile:

1. gives a Job without a selector one from its uid — selector
   `controller-uid=<uid>` and template labels `controller-uid`, `job-name` —
   by updating the Job once (Kubernetes' API server does this at create);
2. leaves finished Jobs alone (deleting them ttlSecondsAfterFinished later);
3. counts the pods (job_rules.count) and fails the Job — condition Failed,
   reason BackoffLimitExceeded or DeadlineExceeded, active pods deleted — or
   completes it — condition Complete, completionTime, leftover pods deleted;
4. otherwise starts or stops pods to have `wanted_active` running, waiting
   `job_backoff_seconds` (doubling per failure) before replacing failed ones;
5. writes status: active, ready, succeeded, failed, startTime, completionTime,
   completedIndexes, conditions.

Finished pods are kept (they are the record of the Job's work, and `ctl logs`
wants them); the garbage collector removes them with the Job.
"""

from __future__ import annotations

import copy
import logging
import time
from typing import Any, Callable

from api.nodelease import now_micro, parse_time
from controlplane.client import Conflict, NotFound
from controlplane.client.events import NORMAL, WARNING
from controlplane.controllers import job_rules as rules
from controlplane.controllers.manager import Context
from controlplane.controllers.owned import (
    POD_BY_CONTROLLER,
    is_ready,
    owner_reference,
)
from controlplane.controllers.podcontrol import PodOwnerController, create_pods, delete_pods
from controlplane.controllers.settings import ControllerSettings

log = logging.getLogger(__name__)
Obj = dict[str, Any]
Key = tuple[str, str]


def _condition(job: Obj, type_: str) -> dict[str, Any] | None:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_ and c.get("status") == "True":
            return c
    return None


def new_pod(job: Obj, index: int | None) -> dict[str, Any]:
    meta, template = job["metadata"], job["spec"]["template"]
    tmeta = template.get("metadata") or {}
    spec = copy.deepcopy(template.get("spec") or {})
    pod_meta: dict[str, Any] = {"generateName": f"{meta['name']}-", "namespace": meta.get("namespace"),
                                "labels": dict(tmeta.get("labels") or {}), "ownerReferences": [owner_reference(job)]}
    annotations = dict(tmeta.get("annotations") or {})
    if index is not None:
        pod_meta["generateName"] = f"{meta['name']}-{index}-"
        annotations[rules.INDEX_ANNOTATION] = str(index)
        pod_meta["labels"][rules.INDEX_ANNOTATION] = str(index)
        spec.setdefault("hostname", f"{meta['name']}-{index}")
        for container in spec.get("containers") or []:
            container.setdefault("env", []).append({"name": "JOB_COMPLETION_INDEX", "value": str(index)})
    if annotations:
        pod_meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}


def _newest_first(pod: Obj) -> float:
    return -(parse_time(pod["metadata"].get("creationTimestamp")) or 0.0)


# The controller pattern (informers in setup, events -> keys, reconcile a key, retry on Conflict):
# alike in shape across controllers by design (the `duplicates` tool pairs them); the rules differ.
class JobController(PodOwnerController):
    owner_kind = "Job"

    def __init__(self, settings: ControllerSettings | None = None, *, clock: Callable[[], float] = time.time):
        super().__init__("job", settings, clock=clock)

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        self.jobs = ctx.informers.get("Job")
        self.jobs.add_handlers(on_add=self._job_event, on_update=lambda _o, new: self._job_event(new),
                               on_delete=self._job_event)

    def _job_event(self, job: Obj) -> None:
        self.queue.add((job["metadata"].get("namespace", ""), job["metadata"]["name"]))

    # -- reconcile ---------------------------------------------------------------------

    async def reconcile(self, key: Key) -> float | None:
        return await self.retry_on_conflict(key, self._reconcile)

    async def _reconcile(self, key: Key) -> float | None:
        namespace, name = key
        job = self.jobs.get(namespace, name)
        if job is None or job["metadata"].get("deletionTimestamp"):
            self.expectations.forget(key)
            return None
        if not job["spec"].get("selector"):
            await self._default_selector(job)
            return None
        now = self.clock()
        if _condition(job, "Complete") or _condition(job, "Failed"):
            return await self._after_finish(job, now)
        pods = [p for p in self.pods.by_index(POD_BY_CONTROLLER, job["metadata"]["uid"])
                if p["metadata"].get("namespace") == namespace]
        counts = rules.count(job, pods)
        status = dict(job.get("status") or {})
        suspended = bool(job["spec"].get("suspend"))
        if not status.get("startTime") and not suspended:
            status["startTime"] = now_micro(now)
        start = parse_time(status.get("startTime")) or now
        requeue: list[float] = []

        failed = None if suspended else rules.failure(job, counts, now=now, start=start)
        if failed is not None:
            reason, message = failed
            await delete_pods(self.ctx, job, key, self.expectations, counts.active)
            counts.active = []
            self._set_condition(status, "Failed", reason, message, now)
            self.ctx.recorder.event(job, WARNING, reason, message)
        elif rules.is_complete(job, counts):
            await delete_pods(self.ctx, job, key, self.expectations, counts.active)
            counts.active = []
            self._set_condition(status, "Complete", "CompletionsReached", "Reached expected number of succeeded "
                                                                          "pods", now)
            status["completionTime"] = now_micro(now)
            self.ctx.recorder.event(job, NORMAL, "Completed", "Job completed")
        else:
            if self.expectations.satisfied(key):
                wait = await self._manage(job, key, counts, now)
                if wait:
                    requeue.append(wait)
            deadline = job["spec"].get("activeDeadlineSeconds")
            if deadline is not None and not suspended:
                requeue.append(max(0.05, start + deadline - now))
            self._set_suspended(status, suspended, now)

        status.update(active=len(counts.active), ready=sum(is_ready(p) for p in counts.active),
                      succeeded=counts.succeeded, failed=counts.failed)
        if job["spec"].get("completionMode") == "Indexed":
            status["completedIndexes"] = rules.format_indexes(counts.succeeded_indexes)
        await self._write_status(job, status)
        if failed is not None or status.get("completionTime"):
            return await self._after_finish({**job, "status": status}, now)
        return min(requeue) if requeue else None

    async def _default_selector(self, job: Obj) -> None:
        uid, name = job["metadata"]["uid"], job["metadata"]["name"]
        updated = copy.deepcopy(job)
        updated["spec"]["selector"] = {"matchLabels": {"controller-uid": uid}}
        tmeta = updated["spec"]["template"].setdefault("metadata", {})
        tmeta["labels"] = {**(tmeta.get("labels") or {}), "controller-uid": uid, "job-name": name}
        await self.ctx.client.update(updated)

    async def _manage(self, job: Obj, key: Key, counts: rules.Counts, now: float) -> float | None:
        """Start or stop pods to reach the wanted number; returns seconds to wait for backoff."""
        want = rules.wanted_active(job, counts)
        have = len(counts.active)
        if have > want:
            # Stop the least valuable first: not yet bound, not ready, newest.
            ranked = sorted(counts.active, key=lambda p: (bool(p["spec"].get("nodeName")), is_ready(p),
                                                          _newest_first(p)))
            await delete_pods(self.ctx, job, key, self.expectations, ranked[:have - want])
            return None
        if have == want:
            return None
        if counts.failed and counts.last_failure is not None:
            delay = rules.backoff_delay(counts.failed, base=self.settings.job_backoff_seconds,
                                        maximum=self.settings.job_backoff_max_seconds)
            if now < counts.last_failure + delay:
                return counts.last_failure + delay - now
        indexed = job["spec"].get("completionMode") == "Indexed"
        indexes: list[int | None] = list(rules.next_indexes(job, counts, want - have)) if indexed \
            else [None] * (want - have)
        await create_pods(self.ctx, job, key, self.expectations, [new_pod(job, i) for i in indexes], what="job pods")
        return None

    @staticmethod
    def _set_condition(status: dict[str, Any], type_: str, reason: str, message: str, now: float) -> None:
        stamp = now_micro(now)
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != type_]
        conditions.append({"type": type_, "status": "True", "reason": reason, "message": message,
                           "lastProbeTime": stamp, "lastTransitionTime": stamp})
        status["conditions"] = conditions

    def _set_suspended(self, status: dict[str, Any], suspended: bool, now: float) -> None:
        current = next((c for c in status.get("conditions") or [] if c.get("type") == "Suspended"), None)
        if suspended and (current is None or current.get("status") != "True"):
            self._set_condition(status, "Suspended", "JobSuspended", "Job suspended", now)
        elif not suspended and current is not None and current.get("status") == "True":
            self._set_condition(status, "Suspended", "JobResumed", "Job resumed", now)
            status["conditions"][-1]["status"] = "False"

    async def _write_status(self, job: Obj, status: dict[str, Any]) -> None:
        if status == (job.get("status") or {}):
            return
        try:
            await self.ctx.client.update_status({**job, "status": status})
        except Conflict:
            raise  # stale cache: retry with the fresh Job
        except NotFound:
            pass

    async def _after_finish(self, job: Obj, now: float) -> float | None:
        """ttlSecondsAfterFinished: delete the finished Job (its pods follow through the GC)."""
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        if ttl is None:
            return None
        finished = [parse_time(c.get("lastTransitionTime")) for c in (job.get("status") or {}).get("conditions") or []
                    if c.get("type") in ("Complete", "Failed") and c.get("status") == "True"]
        at = (max(t for t in finished if t is not None) if any(finished) else now) + ttl
        if now < at:
            return at - now
        meta = job["metadata"]
        log.info("deleting job %s/%s: finished %ss ago (ttlSecondsAfterFinished)", meta.get("namespace"),
                 meta["name"], ttl)
        try:
            await self.ctx.client.delete("jobs", meta["name"], meta.get("namespace", ""), propagation="Background")
        except NotFound:
            pass
        return None
