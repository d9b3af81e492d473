"""The scheduler loop: watch pods and nodes, decide, assume, bind (kube-scheduler's schedule_one.go).

    informers ──▶ cache (nodes, bound pods)        queue (pods to schedule)
                     │                                 │ pop
                     └──────── snapshot ──▶ decide (algorithm.py, synchronous)
                                                 │
                       FitError ◀────────────────┴──────────▶ assume on node (cache)
                          │                                        │
     PodScheduled=False, Unschedulable,                 Bind (async, many in flight)
     "0/3 nodes are available: ...",                      ok: Scheduled event with the score
     FailedScheduling event; queue waits                  failed: forget, back off, retry
     for a cluster change                                (the event is written with the bind)

Decisions happen one at a time on a snapshot; binds run concurrently, and leave
for the API server in batches (one BindMany request for the binds decided while
the previous requests were in flight; binder.py). The API
server's Bind is a compare-and-swap that also checks the node's capacity, so two
schedulers racing never overfill a node: the loser gets FAILED_PRECONDITION
("Insufficient cpu") or ABORTED, forgets its assumption and retries after backoff.

The chosen node's score breakdown goes into the `Scheduled` event's message
(`ctl describe pod` shows events), so explaining a placement costs no extra write:
the API server writes that event in the bind's own etcd transaction (BindRequest's
scheduled_event_message), not as a Create of its own.

Pods are ours when spec.schedulerName is the configured name (default-scheduler),
spec.nodeName is empty, and they are neither being deleted nor finished.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, Awaitable, Callable, Mapping

from api.timestamps import rfc3339
from api.volumebinding import claim_names
from controlplane.client import ApiError, Client, Conflict, FailedPrecondition, NotFound
from controlplane.client.events import WARNING, EventRecorder
from controlplane.client.informer import Informer
from controlplane.scheduler.algorithm import ScheduleResult, SchedulingAlgorithm
from controlplane.scheduler.binder import BatchBinder
from controlplane.scheduler.cache import Cache, VolumeFacts, is_terminal
from controlplane.scheduler.config import SchedulerConfig
from controlplane.scheduler.framework import FitError
from controlplane.scheduler.nodeinfo import Key, PodInfo
from controlplane.scheduler.queue import QueueClosed, QueuedPod, SchedulingQueue

log = logging.getLogger(__name__)
COMPONENT = "default-scheduler"
BIND_ATTEMPTS = 3


def _key(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "default", meta.get("name") or ""


def _assigned(pod: Mapping[str, Any]) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName"))


def _node_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Could the change make a pod fit? (Heartbeats and condition updates cannot.)"""
    def facts(node: Mapping[str, Any]) -> tuple:
        status = node.get("status") or {}
        return ((node.get("metadata") or {}).get("labels"), node.get("spec"), status.get("allocatable"),
                status.get("capacity"), status.get("images"))
    return facts(old) != facts(new)


class Scheduler:
    def __init__(self, client: Client, config: SchedulerConfig | None = None):
        self.client = client
        self.config = config or SchedulerConfig()
        self.seed = self.config.seed if self.config.seed is not None else random.SystemRandom().randrange(2 ** 32)
        self.framework = self.config.build_framework()
        self.algorithm = SchedulingAlgorithm(self.framework,
                                             percentage_of_nodes_to_score=self.config.percentage_of_nodes_to_score,
                                             rng=random.Random(self.seed))
        self.cache = Cache()
        self.queue = SchedulingQueue(initial_backoff=self.config.pod_initial_backoff_seconds,
                                     max_backoff=self.config.pod_max_backoff_seconds,
                                     max_unschedulable=self.config.max_unschedulable_seconds)
        self.nodes = Informer(client, "nodes")
        self.pods = Informer(client, "pods")
        self.namespaces = Informer(client, "namespaces")
        self.storage = [Informer(client, plural) for plural in VolumeFacts.PLURALS]   # VolumeBinding's
        self.recorder = EventRecorder(client, component=COMPONENT)  # drops events beyond 1000 pending, as
        # kube-scheduler's broadcaster does: events are best effort, binds are not
        self.stats = {"scheduled": 0, "unschedulable": 0, "bind_failures": 0}
        self._bind_slots = asyncio.Semaphore(self.config.parallel_binds)
        self.binder = BatchBinder(client)   # binds leave in BindMany batches (binder.py)
        self._tasks: set[asyncio.Task] = set()
        self._informer_tasks: list[asyncio.Task] = []

    # -- running ---------------------------------------------------------------------

    async def run(self) -> None:
        """Start the informers, then schedule until cancelled."""
        try:
            await self.start()
            await self.schedule_loop()
        finally:
            await self.stop()

    async def start(self, timeout: float = 60.0) -> None:
        self.nodes.add_handlers(on_add=self._on_node_add, on_update=self._on_node_update,
                                on_delete=self._on_node_delete)
        self.namespaces.add_handlers(on_add=self.cache.set_namespace, on_update=self._on_namespace_update,
                                     on_delete=lambda ns: self.cache.remove_namespace(_key(ns)[1]))
        self.pods.add_handlers(on_add=self._on_pod_add, on_update=self._on_pod_update, on_delete=self._on_pod_delete)
        for informer in self.storage:
            self._watch_storage(informer)
        for informer in (self.namespaces, self.nodes, self.pods, *self.storage):
            self._informer_tasks.append(self._spawn(informer.run(), f"scheduler-informer-{informer.kind}"))
        for informer in (self.namespaces, self.nodes, self.pods, *self.storage):
            await informer.wait_synced(timeout)
        log.info("scheduler %s started: %d nodes, %d pods to schedule, seed %d (set `seed` in the config to replay)",
                 self.config.scheduler_name, len(self.cache.node_list()), len(self.queue), self.seed)

    async def schedule_loop(self) -> None:
        while True:
            await self._bind_slots.acquire()
            try:
                qp = await self.queue.pop()
            except QueueClosed:
                self._bind_slots.release()
                return
            except asyncio.CancelledError:
                self._bind_slots.release()
                raise
            binding = False
            try:
                binding = self.schedule_one(qp)
            finally:
                if not binding:
                    self._bind_slots.release()
            await asyncio.sleep(0)  # let watch events and bind replies in between decisions

    async def stop(self) -> None:
        self.queue.close()
        for task in self._informer_tasks:
            task.cancel()
        await asyncio.gather(*self._informer_tasks, return_exceptions=True)
        self._informer_tasks.clear()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        await self.recorder.flush()

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task:
        """Every background task goes through here: named, referenced, failures logged."""
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro, name=name)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed", task.get_name(), exc_info=task.exception())

    # -- one pod -----------------------------------------------------------------------

    def responsible_for(self, pod: Mapping[str, Any]) -> bool:
        spec = pod.get("spec") or {}
        return ((spec.get("schedulerName") or "default-scheduler") == self.config.scheduler_name
                and not spec.get("nodeName") and not (pod.get("metadata") or {}).get("deletionTimestamp")
                and not is_terminal(pod))

    def schedule_one(self, qp: QueuedPod) -> bool:
        """Decide for one popped pod; returns True when a bind was started."""
        pod = self.pods.get(*qp.key)
        if pod is None or not self.responsible_for(pod) or self.cache.pod(qp.key) is not None:
            self.queue.done(qp.key)
            return False
        if pod is not qp.pod:  # changed while its bind was in flight: decide on the newest version
            qp.pod, qp.info = pod, None
        info = qp.pod_info()
        try:
            result = self.algorithm.schedule(self.cache, info)
        except FitError as err:
            self.stats["unschedulable"] += 1
            log.debug("pod %s/%s is unschedulable: %s", *qp.key, err.message)
            self.queue.add_unschedulable(qp)
            self._report_unschedulable(pod, err.message)
            return False
        except Exception:
            log.exception("scheduling %s/%s failed; retrying after backoff", *qp.key)
            self.queue.add_backoff(qp)
            return False
        self.cache.assume_pod(info, result.node)
        self._spawn(self._bind(qp, info, result), f"bind-{qp.key[0]}/{qp.key[1]}")
        return True

    async def _bind(self, qp: QueuedPod, info: PodInfo, result: ScheduleResult) -> None:
        namespace, name = qp.key
        message = f"Successfully assigned {namespace}/{name} to {result.node}; {result.summary()}"
        try:
            await self._bind_call(namespace, name, result.node, info.uid, message)
        except NotFound:  # deleted meanwhile
            self.cache.forget_pod(qp.key)
            self.queue.done(qp.key)
            self.queue.move_all_to_active_or_backoff()
        except (FailedPrecondition, Conflict) as exc:
            # Another scheduler (or a lagging cache) filled the node first, or the pod changed.
            self.stats["bind_failures"] += 1
            log.info("binding %s/%s to %s rejected: %s; retrying", namespace, name, result.node, exc.message)
            self._forget(qp)
            if isinstance(exc, FailedPrecondition):
                self.recorder.event(dict(info.pod), WARNING, "FailedScheduling", f"Binding rejected: {exc.message}")
        except ApiError as exc:
            self.stats["bind_failures"] += 1
            log.warning("binding %s/%s to %s failed: %s; retrying", namespace, name, result.node, exc.message)
            self._forget(qp)
        except asyncio.CancelledError:
            self.cache.forget_pod(qp.key)
            raise
        else:
            self.stats["scheduled"] += 1
            self.stats["bind_requests"] = self.binder.requests
            self.cache.finish_binding(qp.key)
            self.queue.done(qp.key)
        finally:
            self._bind_slots.release()

    def _forget(self, qp: QueuedPod) -> None:
        """Undo the assumption after a failed bind, and retry the pod after its backoff. Like a
        pod deletion, forgetting frees room in the cache: pods that found no room may now fit."""
        self.cache.forget_pod(qp.key)
        self.queue.add_backoff(qp)
        self.queue.move_all_to_active_or_backoff()

    async def _bind_call(self, namespace: str, name: str, node: str, uid: str, message: str) -> None:
        """Bind, trying again at once when the server's compare-and-swap lost a race with another
        bind to the same node (ABORTED): the node may well still have room. A full node answers
        FAILED_PRECONDITION instead, which is not retried here. The pod's `Scheduled` event, with
        `message`, is written by the server in the bind's own transaction."""
        for attempt in range(BIND_ATTEMPTS):
            try:
                await self.binder.bind(namespace, name, node, uid=uid, scheduled_event=message,
                                       event_source=COMPONENT)
                return
            except Conflict:
                if attempt == BIND_ATTEMPTS - 1:
                    raise

    # -- explaining failure ------------------------------------------------------------

    def _report_unschedulable(self, pod: Mapping[str, Any], message: str) -> None:
        self.recorder.event(dict(pod), WARNING, "FailedScheduling", message)
        current = next((c for c in (pod.get("status") or {}).get("conditions") or ()
                        if c.get("type") == "PodScheduled"), None)
        if current and current.get("status") == "False" and current.get("message") == message:
            return
        self._spawn(self._set_unschedulable(_key(pod), message), f"condition-{pod['metadata']['name']}")

    async def _set_unschedulable(self, key: Key, message: str) -> None:
        """PodScheduled=False, reason Unschedulable, with the message; retried on conflicts."""
        pod = self.pods.get(*key)
        for _ in range(3):
            if pod is None or _assigned(pod):
                return
            status = dict(pod.get("status") or {})
            conditions = list(status.get("conditions") or [])
            old = next((c for c in conditions if c.get("type") == "PodScheduled"), None)
            condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
                         "lastProbeTime": None,
                         "lastTransitionTime": old.get("lastTransitionTime") if old and old.get("status") == "False"
                         else rfc3339()}
            condition = {k: v for k, v in condition.items() if v is not None}
            status["conditions"] = [c for c in conditions if c.get("type") != "PodScheduled"] + [condition]
            try:
                await self.client.update_status({**pod, "status": status})
                return
            except Conflict:
                try:
                    pod = await self.client.get("pods", key[1], key[0])
                except NotFound:
                    return
            except NotFound:
                return
            except ApiError as exc:
                log.warning("could not set PodScheduled=False on %s/%s: %s", *key, exc.message)
                return

    # -- informer handlers: they only update the cache and the queue ---------------------

    def _on_pod_add(self, pod: dict[str, Any]) -> None:
        if _assigned(pod):
            key = _key(pod)
            self.cache.set_pod(pod)
            self.queue.delete(key)
            info = self.cache.pod(key)
            if info is not None and info.has_affinity and self.queue.has_unschedulable:
                # A newly placed pod may be what someone's pod affinity waits for.
                self.queue.move_all_to_active_or_backoff(lambda qp: bool(qp.pod_info().affinity))
        elif self.responsible_for(pod):
            if self.cache.pod(_key(pod)) is None:  # not one we have just bound, seen late
                self.queue.add(pod)
        else:
            self.queue.delete(_key(pod))

    def _on_pod_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if _assigned(new) and is_terminal(new) and not is_terminal(old):
            self.cache.set_pod(new)  # drops it: its resources are free again
            self.queue.move_all_to_active_or_backoff()
            return
        self._on_pod_add(new)

    def _on_pod_delete(self, pod: dict[str, Any]) -> None:
        key = _key(pod)
        if self.cache.pod(key) is not None:
            self.cache.remove_pod(key)
            self.queue.move_all_to_active_or_backoff()
        self.queue.delete(key)

    def _on_node_add(self, node: dict[str, Any]) -> None:
        self.cache.set_node(node)
        self.queue.move_all_to_active_or_backoff()

    def _on_node_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self.cache.set_node(new)
        if _node_changed(old, new):
            self.queue.move_all_to_active_or_backoff()

    def _on_node_delete(self, node: dict[str, Any]) -> None:
        self.cache.remove_node(_key(node)[1])

    def _watch_storage(self, informer: Informer) -> None:
        changed = self._storage_event(informer.kind)

        def on_update(_old: dict[str, Any], new: dict[str, Any]) -> None:
            changed(new)

        def on_delete(obj: dict[str, Any]) -> None:
            self.cache.volume_facts.remove(informer.kind, obj)
        informer.add_handlers(on_add=changed, on_update=on_update, on_delete=on_delete)

    def _storage_event(self, plural: str) -> Callable[[dict[str, Any]], None]:
        """A claim, volume or class changed: note it; pods waiting on volumes may fit now."""
        def handle(obj: dict[str, Any]) -> None:
            self.cache.volume_facts.set(plural, obj)
            if self.queue.has_unschedulable:
                self.queue.move_all_to_active_or_backoff(lambda qp: bool(claim_names(qp.pod)))
        return handle

    def _on_namespace_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self.cache.set_namespace(new)
        if (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels"):
            self.queue.move_all_to_active_or_backoff()
