"""The work queue: dedup, one worker per key, delayed and rate-limited requeue."""

from __future__ import annotations

import asyncio

from controlplane.client.workqueue import ShutDown, WorkQueue, run_workers


async def test_dedup_before_processing():
    q: WorkQueue[str] = WorkQueue()
    for _ in range(5):
        q.add("a")
    q.add("b")
    assert [await q.get(), await q.get()] == ["a", "b"]
    assert len(q) == 0


async def test_key_added_while_processing_is_queued_again_after_done():
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    key = await q.get()
    q.add("a")                       # arrives while a worker holds it
    assert q._queue.empty()          # not handed to a second worker
    q.done(key)
    assert await asyncio.wait_for(q.get(), 1) == "a"


async def test_one_worker_per_key_at_a_time():
    q: WorkQueue[str] = WorkQueue()
    running: set[str] = set()
    overlaps = []
    seen = []

    async def reconcile(key: str) -> None:
        if key in running:
            overlaps.append(key)
        running.add(key)
        await asyncio.sleep(0.01)
        seen.append(key)
        running.discard(key)
        if len(seen) == 3:
            await q.shut_down()

    for _ in range(3):
        q.add("a")
    workers = asyncio.ensure_future(run_workers(q, reconcile, workers=4))
    await asyncio.sleep(0.005)
    q.add("a")
    await asyncio.sleep(0.02)
    q.add("a")
    await asyncio.wait_for(workers, 2)
    assert not overlaps and seen == ["a", "a", "a"]


async def test_add_after_and_rate_limited_backoff():
    q: WorkQueue[str] = WorkQueue(base_delay=0.01, max_delay=0.04)
    loop = asyncio.get_running_loop()
    start = loop.time()
    q.add_after("x", 0.05)
    assert await asyncio.wait_for(q.get(), 1) == "x"
    assert loop.time() - start >= 0.045
    q.done("x")
    assert [q.add_rate_limited("y") for _ in range(4)] == [0.01, 0.02, 0.04, 0.04]
    q.forget("y")
    assert q.failures("y") == 0


async def test_failures_are_retried_with_backoff():
    q: WorkQueue[str] = WorkQueue(base_delay=0.001)
    attempts = []

    async def reconcile(key: str) -> None:
        attempts.append(key)
        if len(attempts) < 3:
            raise RuntimeError("transient")
        await q.shut_down()

    q.add("k")
    await asyncio.wait_for(run_workers(q, reconcile, workers=1), 2)
    assert attempts == ["k", "k", "k"]


async def test_shutdown_stops_get():
    q: WorkQueue[str] = WorkQueue()
    await q.shut_down()
    try:
        await q.get()
    except ShutDown:
        pass
    else:
        raise AssertionError("get() after shut_down should raise ShutDown")
