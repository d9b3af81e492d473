"""Job with hollow nodes: completions and parallelism, backoffLimit, activeDeadlineSeconds, work
queues, Indexed jobs, and the selector filled in from the Job's uid."""

from __future__ import annotations

import uuid
from typing import Any, AsyncIterator

import pytest

from agent.hollow_status import EXIT_AFTER, EXIT_CODE
from controlplane.client import Client
from controlplane.controllers.job import JobController
from controlplane.controllers.settings import ControllerSettings
from hollow_harness import controllers, hollow_nodes, scheduling, until

SETTINGS = ControllerSettings(job_backoff_seconds=0.2)


@pytest.fixture
async def ns(c) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    await c.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


@pytest.fixture
async def cluster(c) -> AsyncIterator[Any]:
    async with hollow_nodes(c, 2, prefix=f"job{uuid.uuid4().hex[:4]}") as nodes, \
            controllers(c, [JobController(SETTINGS)], SETTINGS), scheduling(c):
        yield nodes


def job(ns: str, name: str, *, annotations: dict[str, str] | None = None, **spec: Any) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": ns},
            "spec": {**spec, "template": {"metadata": {"annotations": annotations or {}},
                                          "spec": {"restartPolicy": "Never",
                                                   "containers": [{"name": "c", "image": "busybox"}]}}}}


async def condition(c: Client, ns: str, name: str) -> tuple[str, str] | None:
    status = (await c.get("jobs", name, ns)).get("status") or {}
    for cond in status.get("conditions") or []:
        if cond["type"] in ("Complete", "Failed") and cond["status"] == "True":
            return cond["type"], cond.get("reason", "")
    return None


async def test_job_completes_with_completions_and_parallelism(c, ns, cluster):
    await c.create(job(ns, "batch", annotations={EXIT_AFTER: "0.5"}, completions=3, parallelism=2))
    most_active = 0

    async def done():
        nonlocal most_active
        status = (await c.get("jobs", "batch", ns)).get("status") or {}
        most_active = max(most_active, status.get("active") or 0)
        return await condition(c, ns, "batch")
    assert await until(done, timeout=30, what="the Job to finish") == ("Complete", "CompletionsReached")
    finished = await c.get("jobs", "batch", ns)
    status = finished["status"]
    assert status["succeeded"] == 3 and status["active"] == 0 and status["completionTime"]
    assert most_active <= 2
    assert finished["spec"]["selector"] == {"matchLabels": {"controller-uid": finished["metadata"]["uid"]}}
    pods = (await c.list("pods", ns, label_selector="job-name=batch")).items
    assert sorted(p["status"]["phase"] for p in pods) == ["Succeeded"] * 3


async def test_job_fails_after_backoff_limit(c, ns, cluster):
    await c.create(job(ns, "flaky", annotations={EXIT_AFTER: "0.2", EXIT_CODE: "1"}, backoffLimit=1))
    assert await until(lambda: condition(c, ns, "flaky"), timeout=30, what="the Job to fail") == \
        ("Failed", "BackoffLimitExceeded")
    status = (await c.get("jobs", "flaky", ns))["status"]
    assert status["failed"] == 2 and status["active"] == 0
    events = (await c.list("events", ns)).items
    assert any(e["reason"] == "BackoffLimitExceeded" for e in events)


async def test_job_fails_after_active_deadline(c, ns, cluster):
    await c.create(job(ns, "slow", completions=1, parallelism=1, activeDeadlineSeconds=1))
    assert await until(lambda: condition(c, ns, "slow"), timeout=20, what="the deadline to pass") == \
        ("Failed", "DeadlineExceeded")

    async def no_pods_left():
        pods = (await c.list("pods", ns, label_selector="job-name=slow")).items
        return not pods
    await until(no_pods_left, what="the running pod deleted")


async def test_work_queue_job_completes_when_one_succeeds(c, ns, cluster):
    await c.create(job(ns, "queue", annotations={EXIT_AFTER: "0.3"}, parallelism=2))
    assert await until(lambda: condition(c, ns, "queue"), timeout=20, what="the work queue Job") == \
        ("Complete", "CompletionsReached")
    status = (await c.get("jobs", "queue", ns))["status"]
    assert status["succeeded"] >= 1 and status["active"] == 0


async def test_indexed_job_runs_each_index_once(c, ns, cluster):
    await c.create(job(ns, "indexed", annotations={EXIT_AFTER: "0.3"}, completions=3, parallelism=3,
                       completionMode="Indexed"))
    assert await until(lambda: condition(c, ns, "indexed"), timeout=20, what="the Indexed Job") == \
        ("Complete", "CompletionsReached")
    status = (await c.get("jobs", "indexed", ns))["status"]
    assert status["completedIndexes"] == "0-2" and status["succeeded"] == 3
    pods = (await c.list("pods", ns, label_selector="job-name=indexed")).items
    indexes = sorted(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] for p in pods)
    assert indexes == ["0", "1", "2"]
