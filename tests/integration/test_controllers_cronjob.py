"""The CronJob controller against the session API server, on an injected clock: Jobs at each
scheduled minute named `<cronjob>-<minutes since the epoch>`, concurrencyPolicy Allow / Forbid /
Replace, suspend, startingDeadlineSeconds, and the history limits. The Jobs' outcomes are
written here as the Job controller would write them (this test is about the CronJob
controller). The real-time "every minute" run is tests/integration/test_ctl_cronjob.py."""

from __future__ import annotations

import math
import time
from typing import Any

from api.nodelease import parse_time
from controlplane.client import Client
from controlplane.controllers.cronjob import CronJobController
from controllers_support import running, until as _until

Obj = dict[str, Any]


async def until(condition: Any, *, message: str = "", timeout: float = 30.0) -> Any:
    """The shared poll, with room for a loaded machine."""
    return await _until(condition, timeout=timeout, message=message)


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def cronjob(ns: str, name: str, **spec: Any) -> Obj:
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name, "namespace": ns},
            "spec": {"schedule": "* * * * *", **spec,
                     "jobTemplate": {"spec": {"template": {"spec": {
                         "restartPolicy": "OnFailure",
                         "containers": [{"name": "hello", "image": "busybox:1.28",
                                         "command": ["/bin/sh", "-c", "date; echo Hello"]}]}}}}}}


async def jobs_of(c: Client, ns: str) -> list[str]:
    return sorted(j["metadata"]["name"] for j in (await c.list("jobs", ns)).items)


async def finish(c: Client, ns: str, name: str, outcome: str = "Complete") -> None:
    job = await c.get("jobs", name, ns)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    job["status"] = {"startTime": stamp, "conditions": [{"type": outcome, "status": "True",
                                                         "lastTransitionTime": stamp}]}
    if outcome == "Complete":
        job["status"]["completionTime"] = stamp
    await c.update_status(job)


async def setup(c: Client, ns: str, name: str, **spec: Any) -> tuple[Clock, float]:
    """Create the CronJob; a clock at the first whole minute after its creation (+1 s)."""
    created = await c.create(cronjob(ns, name, **spec))
    born = parse_time(created["metadata"]["creationTimestamp"])
    assert born is not None
    first = math.floor(born / 60) * 60 + 60
    return Clock(first + 1), first


async def tick(ctrl: CronJobController, clock: Clock, ns: str, name: str, to: float) -> None:
    clock.now = to
    ctrl.queue.add((ns, name))


async def test_creates_a_job_each_minute_named_by_the_minute(client, namespace):
    ctrl = CronJobController(namespace=namespace, clock=Clock(0))
    clock, first = await setup(client, namespace, "hello")
    ctrl.clock = clock
    async with running(client, ctrl):
        await until(lambda: _has(client, namespace, [f"hello-{int(first) // 60}"]), message="first Job")
        cj = await client.get("cronjobs", "hello", namespace)
        assert cj["status"]["lastScheduleTime"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(first))
        assert [a["name"] for a in cj["status"]["active"]] == [f"hello-{int(first) // 60}"]
        job = await client.get("jobs", f"hello-{int(first) // 60}", namespace)
        ref = job["metadata"]["ownerReferences"][0]
        assert (ref["kind"], ref["name"], ref["controller"]) == ("CronJob", "hello", True)
        # Nothing new within the same minute, however often it looks.
        await tick(ctrl, clock, namespace, "hello", first + 30)
        await tick(ctrl, clock, namespace, "hello", first + 59)
        await tick(ctrl, clock, namespace, "hello", first + 61)
        want = [f"hello-{int(first) // 60}", f"hello-{int(first) // 60 + 1}"]
        await until(lambda: _has(client, namespace, want), message="second Job")
        assert await jobs_of(client, namespace) == want


async def _has(c: Client, ns: str, names: list[str]) -> bool:
    return await jobs_of(c, ns) == sorted(names)


async def test_forbid_waits_for_the_active_job_and_replace_replaces_it(client, namespace):
    ctrl = CronJobController(namespace=namespace, clock=Clock(0))
    clock, first = await setup(client, namespace, "forbid", concurrencyPolicy="Forbid")
    m = int(first) // 60
    ctrl.clock = clock
    async with running(client, ctrl):
        await until(lambda: _has(client, namespace, [f"forbid-{m}"]))
        await tick(ctrl, clock, namespace, "forbid", first + 61)
        await tick(ctrl, clock, namespace, "forbid", first + 62)
        assert await jobs_of(client, namespace) == [f"forbid-{m}"]
        await finish(client, namespace, f"forbid-{m}")
        # Still due within the minute: created once the active Job finished.
        await until(lambda: _has(client, namespace, [f"forbid-{m}", f"forbid-{m + 1}"]), message="after finish")

        await client.create(cronjob(namespace, "replace", concurrencyPolicy="Replace"))
        await tick(ctrl, clock, namespace, "replace", first + 121)
        await until(lambda: _named(client, namespace, f"replace-{m + 2}"))
        await tick(ctrl, clock, namespace, "replace", first + 181)

        async def replaced() -> bool:
            names = [n for n in await jobs_of(client, namespace) if n.startswith("replace-")]
            return names == [f"replace-{m + 3}"]
        await until(replaced, message="Replace to delete the running Job")


async def _named(c: Client, ns: str, name: str) -> bool:
    return name in await jobs_of(c, ns)


async def test_suspend_and_starting_deadline(client, namespace):
    ctrl = CronJobController(namespace=namespace, clock=Clock(0))
    clock, first = await setup(client, namespace, "paused", suspend=True)
    ctrl.clock = clock
    await client.create(cronjob(namespace, "late", startingDeadlineSeconds=10))
    async with running(client, ctrl):
        # "late" is looked at 50 s after its minute: past its 10 s deadline.
        await tick(ctrl, clock, namespace, "late", first + 50)
        await tick(ctrl, clock, namespace, "paused", first + 50)

        async def missed() -> bool:
            events = (await client.list("events", namespace)).items
            return any(e.get("reason") == "MissedSchedule" and e["involvedObject"]["name"] == "late" for e in events)
        await until(missed, message="a MissedSchedule event")
        assert await jobs_of(client, namespace) == []
        # Within the deadline at the next minute: created. Suspended: never.
        await tick(ctrl, clock, namespace, "late", first + 65)
        await until(lambda: _named(client, namespace, f"late-{int(first) // 60 + 1}"))
        assert not [n for n in await jobs_of(client, namespace) if n.startswith("paused")]


async def test_history_limits_keep_the_newest_finished_jobs(client, namespace):
    ctrl = CronJobController(namespace=namespace, clock=Clock(0))
    clock, first = await setup(client, namespace, "hist", successfulJobsHistoryLimit=2, failedJobsHistoryLimit=1)
    m = int(first) // 60
    ctrl.clock = clock
    async with running(client, ctrl):
        for i in range(5):
            await tick(ctrl, clock, namespace, "hist", first + 60 * i + 1)
            await until(lambda: _named(client, namespace, f"hist-{m + i}"), message=f"job {i}")
            await finish(client, namespace, f"hist-{m + i}", "Failed" if i in (0, 1) else "Complete")
        want = [f"hist-{m + 1}", f"hist-{m + 3}", f"hist-{m + 4}"]
        await until(lambda: _has(client, namespace, want), message="history trimmed to 2 complete + 1 failed")
        cj = await client.get("cronjobs", "hist", namespace)
        assert cj["status"].get("lastSuccessfulTime") and not cj["status"].get("active")
