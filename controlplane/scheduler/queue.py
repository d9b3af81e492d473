"""The scheduling queue: which pod to schedule next, and when to try again (kube-scheduler's
PriorityQueue, pkg/scheduler/internal/queue).

A pod waiting to be scheduled is in exactly one of three places, or in flight:

- active         ready now; ordered by spec.priority (highest first), then creation time;
- backoff        failed recently; waits 1 s, 2 s, 4 s ... up to 10 s after its last
                 attempt (per pod, doubling with each attempt) before going back to active;
- unschedulable  no node fits; waits for the cluster to change (a node added or
                 updated, a pod deleted: `move_all_to_active_or_backoff`), or at the
                 latest `max_unschedulable` seconds.
- in flight      popped by the scheduler and not yet `done` (decided and bound) or
                 put back (`add_unschedulable`, `add_backoff`).

If the cluster changed while a pod was in flight, a failed attempt goes to backoff,
not to unschedulable: the change it was waiting for may already have happened.

Time comes from an injectable clock so tests drive backoff without sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Any, Callable, Mapping

from controlplane.scheduler.nodeinfo import Key, PodInfo

ACTIVE, BACKOFF, UNSCHEDULABLE, IN_FLIGHT = "active", "backoff", "unschedulable", "in-flight"


class QueueClosed(Exception):
    pass


class QueuedPod:
    """A pod in the queue: its latest version and its scheduling history."""

    __slots__ = ("key", "pod", "info", "priority", "created", "seq", "attempts", "last_attempt",
                 "backoff_until", "unschedulable_since", "cycle", "updated_in_flight", "where")

    def __init__(self, key: Key, pod: Mapping[str, Any]):
        self.key = key
        self.pod = pod
        self.info: PodInfo | None = None
        spec = pod.get("spec") or {}
        self.priority = int(spec.get("priority") or 0)
        self.created = (pod.get("metadata") or {}).get("creationTimestamp") or ""
        self.seq = 0
        self.attempts = 0
        self.last_attempt = 0.0
        self.backoff_until = 0.0
        self.unschedulable_since = 0.0
        self.cycle = 0
        self.updated_in_flight = False
        self.where = ""

    def pod_info(self) -> PodInfo:
        """The parsed pod, computed once per pod version."""
        if self.info is None:
            self.info = PodInfo(self.pod)
        return self.info

    def __repr__(self) -> str:
        return f"QueuedPod({self.key[0]}/{self.key[1]}, {self.where}, attempts={self.attempts})"


def _changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Did anything that scheduling reads change? (Not status, not resourceVersion.)"""
    return (old.get("spec") != new.get("spec")
            or (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels"))


class SchedulingQueue:
    def __init__(self, *, initial_backoff: float = 1.0, max_backoff: float = 10.0,
                 max_unschedulable: float = 300.0, clock: Callable[[], float] = time.monotonic):
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_unschedulable = max_unschedulable
        self.clock = clock
        self._pods: dict[Key, QueuedPod] = {}
        self._active: list[tuple[int, str, int, Key]] = []   # heap: (-priority, created, seq, key)
        self._backoff: list[tuple[float, int, Key]] = []     # heap: (until, seq, key)
        self._unschedulable: dict[Key, QueuedPod] = {}
        self._seq = itertools.count(1)
        self.scheduling_cycle = 0
        self.move_request_cycle = -1
        self._wakeup: asyncio.Event | None = None
        self._closed = False
        self._last_leftover_check = clock()

    # -- what is where ----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._pods)

    def __contains__(self, key: Key) -> bool:
        return key in self._pods

    def where(self, key: Key) -> str:
        qp = self._pods.get(key)
        return qp.where if qp else ""

    @property
    def has_unschedulable(self) -> bool:
        return bool(self._unschedulable)

    def counts(self) -> dict[str, int]:
        counts = {ACTIVE: 0, BACKOFF: 0, UNSCHEDULABLE: 0, IN_FLIGHT: 0}
        for qp in self._pods.values():
            counts[qp.where] += 1
        return counts

    def backoff_duration(self, attempts: int) -> float:
        """1 s after the first failed attempt, doubling, at most max_backoff."""
        if attempts <= 0:
            return 0.0
        return min(self.initial_backoff * 2 ** (attempts - 1), self.max_backoff)

    # -- informer events --------------------------------------------------------------

    def add(self, pod: Mapping[str, Any]) -> None:
        """A new or updated pod that waits to be scheduled."""
        meta = pod.get("metadata") or {}
        key = (meta.get("namespace") or "default", meta.get("name") or "")
        qp = self._pods.get(key)
        if qp is None:
            qp = self._pods[key] = QueuedPod(key, pod)
            self._push_active(qp)
            return
        changed = _changed(qp.pod, pod)
        qp.pod = pod
        if not changed:
            return
        qp.info = None
        if qp.where == IN_FLIGHT:
            qp.updated_in_flight = True
        elif qp.where == UNSCHEDULABLE:
            self._move(qp)

    def delete(self, key: Key) -> None:
        """The pod is gone, or no longer ours to schedule. Heap entries are dropped lazily."""
        qp = self._pods.pop(key, None)
        if qp is not None:
            self._unschedulable.pop(key, None)
            qp.where = ""

    def move_all_to_active_or_backoff(self, predicate: Callable[[QueuedPod], bool] | None = None) -> int:
        """The cluster changed: give unschedulable pods another try (those still backing off
        wait out their backoff first). Returns how many moved."""
        self.move_request_cycle = self.scheduling_cycle
        moved = 0
        for qp in list(self._unschedulable.values()):
            if predicate is None or predicate(qp):
                self._move(qp)
                moved += 1
        return moved

    # -- the scheduler's side ---------------------------------------------------------

    def pop_nowait(self) -> QueuedPod | None:
        """The next pod to schedule, now in flight; None when nothing is ready."""
        self.flush()
        while self._active:
            _, _, seq, key = heapq.heappop(self._active)
            qp = self._pods.get(key)
            if qp is None or qp.where != ACTIVE or qp.seq != seq:
                continue  # deleted or moved since it was pushed
            qp.where = IN_FLIGHT
            qp.attempts += 1
            qp.last_attempt = self.clock()
            self.scheduling_cycle += 1
            qp.cycle = self.scheduling_cycle
            qp.updated_in_flight = False
            return qp
        return None

    async def pop(self) -> QueuedPod:
        """Wait for the next pod to schedule."""
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
        while True:
            if self._closed:
                raise QueueClosed()
            qp = self.pop_nowait()
            if qp is not None:
                return qp
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), self._next_deadline())
            except asyncio.TimeoutError:
                pass

    def done(self, key: Key) -> None:
        """The in-flight pod is finished with (bound, or found not to need scheduling)."""
        qp = self._pods.get(key)
        if qp is not None and qp.where == IN_FLIGHT:
            del self._pods[key]
            qp.where = ""

    def add_unschedulable(self, qp: QueuedPod) -> None:
        """No node fits the in-flight pod: wait for a cluster change (or back off, if one came)."""
        if self._pods.get(qp.key) is not qp:
            return  # deleted (or recreated) meanwhile
        qp.backoff_until = qp.last_attempt + self.backoff_duration(qp.attempts)
        if self.move_request_cycle >= qp.cycle or qp.updated_in_flight:
            self._push_backoff(qp)
        else:
            qp.where = UNSCHEDULABLE
            qp.unschedulable_since = self.clock()
            self._unschedulable[qp.key] = qp

    def add_backoff(self, qp: QueuedPod) -> None:
        """The in-flight pod failed for another reason (a bind conflict, an API error): retry after backoff."""
        if self._pods.get(qp.key) is not qp:
            return
        qp.backoff_until = qp.last_attempt + self.backoff_duration(qp.attempts)
        self._push_backoff(qp)

    def flush(self) -> None:
        """Move pods whose backoff is over to active, and long-unschedulable pods out."""
        now = self.clock()
        while self._backoff and self._backoff[0][0] <= now:
            _, seq, key = heapq.heappop(self._backoff)
            qp = self._pods.get(key)
            if qp is not None and qp.where == BACKOFF and qp.seq == seq:
                self._push_active(qp)
        if self._unschedulable and now - self._last_leftover_check >= min(1.0, self.max_unschedulable):
            self._last_leftover_check = now
            for qp in list(self._unschedulable.values()):
                if now - qp.unschedulable_since >= self.max_unschedulable:
                    self._move(qp)

    def close(self) -> None:
        self._closed = True
        if self._wakeup is not None:
            self._wakeup.set()

    # -- internals -------------------------------------------------------------------

    def _move(self, qp: QueuedPod) -> None:
        self._unschedulable.pop(qp.key, None)
        if self.clock() < qp.backoff_until:
            self._push_backoff(qp)
        else:
            self._push_active(qp)

    def _push_active(self, qp: QueuedPod) -> None:
        self._unschedulable.pop(qp.key, None)
        qp.where = ACTIVE
        qp.seq = next(self._seq)
        heapq.heappush(self._active, (-qp.priority, qp.created, qp.seq, qp.key))
        if self._wakeup is not None:
            self._wakeup.set()

    def _push_backoff(self, qp: QueuedPod) -> None:
        self._unschedulable.pop(qp.key, None)
        qp.where = BACKOFF
        qp.seq = next(self._seq)
        heapq.heappush(self._backoff, (qp.backoff_until, qp.seq, qp.key))
        if self._wakeup is not None:
            self._wakeup.set()  # pop() recomputes how long to sleep

    def _next_deadline(self) -> float:
        """Seconds until something could become ready without an event (at most 1 s)."""
        now = self.clock()
        deadline = 1.0
        if self._backoff:
            deadline = min(deadline, max(self._backoff[0][0] - now, 0.0))
        return max(deadline, 0.001)
