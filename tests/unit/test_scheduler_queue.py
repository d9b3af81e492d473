"""The scheduling queue: priority-then-age order, per-pod backoff 1 s -> 10 s, unschedulable
pods retried when the cluster changes. A fake clock drives time; nothing sleeps."""

from __future__ import annotations

import asyncio

import pytest

from controlplane.scheduler.queue import ACTIVE, BACKOFF, IN_FLIGHT, UNSCHEDULABLE, SchedulingQueue


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def qpod(name: str, *, priority: int | None = None, created: str = "2024-01-01T00:00:00Z",
         labels: dict | None = None, **spec: object) -> dict:
    s: dict = {"containers": [{"name": "c", "image": "busybox"}], **spec}
    if priority is not None:
        s["priority"] = priority
    return {"metadata": {"name": name, "namespace": "default", "creationTimestamp": created, "labels": labels or {}},
            "spec": s}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(clock: Clock) -> SchedulingQueue:
    return SchedulingQueue(initial_backoff=1.0, max_backoff=10.0, max_unschedulable=300.0, clock=clock)


def names(queue: SchedulingQueue) -> list[str]:
    out = []
    while (qp := queue.pop_nowait()) is not None:
        out.append(qp.key[1])
    return out


def test_order_is_priority_then_age(queue):
    queue.add(qpod("late-low", created="2024-01-01T00:00:09Z"))
    queue.add(qpod("early-low", created="2024-01-01T00:00:01Z"))
    queue.add(qpod("late-high", priority=100, created="2024-01-01T00:00:09Z"))
    queue.add(qpod("early-high", priority=100, created="2024-01-01T00:00:05Z"))
    queue.add(qpod("negative", priority=-5, created="2024-01-01T00:00:00Z"))
    queue.add(qpod("same-second", created="2024-01-01T00:00:09Z"))   # ties keep arrival order
    assert names(queue) == ["early-high", "late-high", "early-low", "late-low", "same-second", "negative"]


@pytest.mark.parametrize("attempts, expected", [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (9, 10.0)])
def test_backoff_doubles_from_one_second_to_ten(queue, attempts, expected):
    assert queue.backoff_duration(attempts) == expected


def test_failed_pod_waits_out_its_backoff(queue, clock):
    queue.add(qpod("p"))
    for attempt, wait in enumerate([1.0, 2.0, 4.0, 8.0, 10.0, 10.0], start=1):
        qp = queue.pop_nowait()
        assert qp.attempts == attempt
        queue.add_backoff(qp)
        assert queue.where(qp.key) == BACKOFF
        clock.now += wait - 0.01
        assert queue.pop_nowait() is None
        clock.now += 0.01
    assert queue.pop_nowait().key == ("default", "p")


def test_unschedulable_pods_wait_for_a_cluster_change(queue, clock):
    queue.add(qpod("p"))
    qp = queue.pop_nowait()
    queue.add_unschedulable(qp)
    assert queue.where(qp.key) == UNSCHEDULABLE
    clock.now += 60
    assert queue.pop_nowait() is None            # backoff is over, but nothing changed
    assert queue.move_all_to_active_or_backoff() == 1
    assert queue.where(qp.key) == ACTIVE
    assert queue.pop_nowait() is qp


def test_a_change_during_backoff_still_waits_out_the_backoff(queue, clock):
    queue.add(qpod("p"))
    queue.add_unschedulable(queue.pop_nowait())
    queue.move_all_to_active_or_backoff()
    assert queue.where(("default", "p")) == BACKOFF
    clock.now += 1.0
    assert queue.pop_nowait().key == ("default", "p")


def test_a_change_while_in_flight_sends_a_failure_to_backoff_not_unschedulable(queue, clock):
    queue.add(qpod("p"))
    qp = queue.pop_nowait()
    queue.move_all_to_active_or_backoff()        # e.g. a node was added while deciding
    queue.add_unschedulable(qp)
    assert queue.where(qp.key) == BACKOFF
    # the next attempt, with no change meanwhile, does wait for one
    clock.now += 1.0
    qp = queue.pop_nowait()
    queue.add_unschedulable(qp)
    assert queue.where(qp.key) == UNSCHEDULABLE


def test_unschedulable_pods_are_retried_after_a_while_anyway(queue, clock):
    queue.add(qpod("p"))
    queue.add_unschedulable(queue.pop_nowait())
    clock.now += 299
    assert queue.pop_nowait() is None
    clock.now += 1
    assert queue.pop_nowait().key == ("default", "p")


def test_updates_move_unschedulable_pods_only_when_the_spec_or_labels_change(queue, clock):
    queue.add(qpod("p"))
    queue.add_unschedulable(queue.pop_nowait())
    clock.now += 5
    queue.add({**qpod("p"), "status": {"conditions": [{"type": "PodScheduled", "status": "False"}]}})
    assert queue.where(("default", "p")) == UNSCHEDULABLE
    queue.add(qpod("p", tolerations=[{"operator": "Exists"}]))
    assert queue.where(("default", "p")) == ACTIVE
    qp = queue.pop_nowait()
    assert qp.pod_info().tolerations == [{"operator": "Exists"}]   # the newest version is scheduled


def test_an_update_while_in_flight_is_not_lost(queue):
    queue.add(qpod("p"))
    qp = queue.pop_nowait()
    queue.add(qpod("p", labels={"new": "label"}))
    assert queue.where(qp.key) == IN_FLIGHT        # not queued twice
    queue.add_unschedulable(qp)
    assert queue.where(qp.key) == BACKOFF          # retried, as the update may have fixed it


def test_delete_and_done_forget_the_pod(queue):
    queue.add(qpod("a"))
    queue.add(qpod("b"))
    queue.delete(("default", "a"))
    qp = queue.pop_nowait()
    assert qp.key == ("default", "b")
    queue.done(qp.key)
    assert len(queue) == 0 and queue.pop_nowait() is None
    # a deleted in-flight pod is not put back
    queue.add(qpod("c"))
    qp = queue.pop_nowait()
    queue.delete(qp.key)
    queue.add_backoff(qp)
    assert len(queue) == 0


def test_counts(queue):
    for name in "abc":
        queue.add(qpod(name))
    queue.add_unschedulable(queue.pop_nowait())
    queue.add_backoff(queue.pop_nowait())
    assert queue.counts() == {ACTIVE: 1, BACKOFF: 1, UNSCHEDULABLE: 1, IN_FLIGHT: 0}


async def test_pop_waits_for_a_pod():
    queue = SchedulingQueue()
    waiter = asyncio.create_task(queue.pop())
    await asyncio.sleep(0)
    assert not waiter.done()
    queue.add(qpod("p"))
    qp = await asyncio.wait_for(waiter, 2)
    assert qp.key == ("default", "p")


async def test_pop_wakes_when_a_backoff_ends():
    queue = SchedulingQueue(initial_backoff=0.05, max_backoff=0.05)
    queue.add(qpod("p"))
    queue.add_backoff(await queue.pop())
    qp = await asyncio.wait_for(queue.pop(), 2)
    assert qp.attempts == 2
