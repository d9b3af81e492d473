"""The node lifecycle controller: notices dead nodes, taints them, and evicts their pods.

Heartbeats. Every agent renews a Lease per node (namespace skiff-node-lease;
see api/nodelease.py for the interval). Like Kubernetes, the controller does not
trust the renewTime written by the agent's clock: it records *when it saw* the
Lease change (its own clock), so clock skew between machines cannot kill a
node. A node whose Lease has not changed for the grace period (the larger of
`node_monitor_grace_seconds` and the Lease's leaseDurationSeconds) is marked:

1. NotReady — its conditions become Unknown (reason NodeStatusUnknown, "Kubelet
   stopped posting node status."), its pods' Ready condition False, and an Event
   NodeNotReady is recorded;
2. tainted — `node.kubernetes.io/unreachable` as NoSchedule (no new pods) and
   NoExecute (with timeAdded). An agent that reports Ready=False itself gets the
   `node.kubernetes.io/not-ready` pair instead. When the node is Ready again the
   taints go away (the agent posts Ready=True; this controller never does).
3. evicted — the NoExecute taint manager: each pod on the node that does not
   tolerate a NoExecute taint is deleted when its time is up. A pod without a
   toleration for not-ready/unreachable gets `pod_eviction_seconds` (default 0:
   evicted when the taint appears, as Kubernetes' taint manager evicts a pod
   that does not tolerate it; Kubernetes adds a 300 s toleration at admission
   instead); a toleration's tolerationSeconds overrides that; a toleration without seconds keeps the pod
   there forever (DaemonSet pods have one). The clock starts at the taint's
   timeAdded, so a newly elected leader continues where the old one stopped.

Pods on an *unreachable* node are deleted with grace 0: their agent is gone and
cannot finish a graceful deletion, so a graceful delete would leave them
Terminating forever and their ReplicaSet waiting. (Kubernetes reaches the same
end through its pod garbage collector's force deletion.) On a not-ready node
the agent is alive, so the deletion is graceful. The ReplicaSet controller then
creates replacements and the scheduler binds them to other nodes.

Full disruption. When every node is unreachable at once, nothing is evicted
(Kubernetes does the same for a fully disrupted zone): the likelier story is
that the control plane lost its network, and there would be nowhere to go.

Orphans. Pods bound to a Node that no longer exists are force-deleted after a
short quarantine (Kubernetes' PodGC does this after 20 s).

Timing with defaults (renew 2 s, grace 8 s, eviction 0 s): a node is NotReady
8 s after the last renewal the controller saw, 6-8 s after it died, and its
pods are deleted in the same pass, right after the taints are written: the
scheduler hears of the NoSchedule taint before the replacements exist, and a
replacement bound there anyway (its watch lagging) is evicted in turn. Each node's
next deadline is a timer on the work queue, so detection is exact rather than
rounded to a polling period; a sweep every `node_monitor_period_seconds` is a
safety net.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from controlplane.client import Conflict, NotFound
from controlplane.client.events import NORMAL
from controlplane.controllers.manager import Context, QueueController
from api.nodelease import LEASE_NAMESPACE, now_micro, parse_time
from controlplane.controllers.owned import POD_BY_NODE, add_pod_indexes, is_finished, is_terminating
from controlplane.controllers.settings import ControllerSettings
from api.taints import CONDITION_TAINT_KEYS, NO_EXECUTE, UNREACHABLE, condition_taints, \
    eviction_time

log = logging.getLogger(__name__)
CONFLICT_RETRY_SECONDS = 0.05

ORPHAN_QUARANTINE_SECONDS = 2.0
UNKNOWN_REASON = "NodeStatusUnknown"
UNKNOWN_MESSAGE = "Kubelet stopped posting node status."
NEVER_REASON = "NodeStatusNeverUpdated"
NEVER_MESSAGE = "Kubelet never posted node status."
Obj = dict[str, Any]


@dataclass
class NodeHealth:
    """What the controller knows about one node's heartbeat (its own clock)."""

    observed_at: float              # when the Lease last changed, as seen here
    renew_time: str = ""            # the Lease's renewTime at that moment
    duration: float = 0.0           # the Lease's leaseDurationSeconds
    ready: str | None = None        # last Ready status seen, for NodeReady/NodeNotReady events
    missing_since: float | None = None  # the Node object vanished (orphan pods)


def ready_status(node: Obj) -> str | None:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status")
    return None


class NodeLifecycleController(QueueController):
    def __init__(self, settings: ControllerSettings | None = None, *, clock: Callable[[], float] = time.time):
        super().__init__(name="nodelifecycle")
        self.settings = settings or ControllerSettings()
        self.workers = self.settings.workers
        self.clock = clock
        self.health: dict[str, NodeHealth] = {}
        self._disruption_logged = False

    # -- wiring ----------------------------------------------------------------------

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        self.nodes = ctx.informers.get("Node")
        self.leases = ctx.informers.get("Lease", namespace=LEASE_NAMESPACE)
        self.pods = ctx.informers.get("Pod")
        add_pod_indexes(self.pods)
        self.nodes.add_handlers(on_add=self._node_changed, on_update=lambda _old, new: self._node_changed(new),
                                on_delete=self._node_changed)
        self.leases.add_handlers(on_add=self._lease_changed, on_update=lambda _old, new: self._lease_changed(new))
        self.pods.add_handlers(on_add=self._pod_changed, on_update=lambda _old, new: self._pod_changed(new))

    def _node_changed(self, node: Obj) -> None:
        self.queue.add(node["metadata"]["name"])

    def _lease_changed(self, lease: Obj) -> None:
        name = lease["metadata"]["name"]
        spec = lease.get("spec") or {}
        renew = spec.get("renewTime") or ""
        health = self.health.get(name)
        if health is None:
            self.health[name] = NodeHealth(self.clock(), renew, float(spec.get("leaseDurationSeconds") or 0))
            self.queue.add(name)
            return
        if renew != health.renew_time:
            health.observed_at = self.clock()
            health.renew_time = renew
            health.duration = float(spec.get("leaseDurationSeconds") or 0)
            node = self.nodes.get("", name)
            if node is not None and (ready_status(node) not in ("True", None) or _condition_tainted(node)):
                self.queue.add(name)  # a node coming back: act now, not at the next timer

    def _pod_changed(self, pod: Obj) -> None:
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            return
        node = self.nodes.get("", node_name)
        if node is None or any(t.get("effect") == NO_EXECUTE for t in (node.get("spec") or {}).get("taints") or []):
            self.queue.add(node_name)

    async def run(self) -> None:
        sweep = asyncio.create_task(self._sweep(), name="nodelifecycle-sweep")
        try:
            await super().run()
        finally:
            sweep.cancel()
            await asyncio.gather(sweep, return_exceptions=True)

    async def _sweep(self) -> None:
        """Safety net behind the per-node timers: queue every node past its deadline."""
        while True:
            await asyncio.sleep(self.settings.node_monitor_period_seconds)
            now = self.clock()
            for name, health in list(self.health.items()):
                if now - health.observed_at >= self._grace(health):
                    node = self.nodes.get("", name)
                    if node is not None and ready_status(node) != "Unknown":
                        self.queue.add(name)

    def _grace(self, health: NodeHealth) -> float:
        return max(self.settings.node_monitor_grace_seconds, health.duration)

    # -- reconcile ---------------------------------------------------------------------

    async def reconcile(self, name: str) -> float | None:
        try:
            return await self._reconcile(name)
        except Conflict:
            # Our cache has not caught up with a write (often our own): look again shortly.
            log.debug("%s: %s changed meanwhile; retrying", self.name, name)
            return CONFLICT_RETRY_SECONDS

    async def _reconcile(self, name: str) -> float | None:
        now = self.clock()
        node = self.nodes.get("", name)
        if node is None:
            return await self._collect_orphans(name, now)
        health = self.health.setdefault(name, NodeHealth(now))
        health.missing_since = None
        delays: list[float] = []
        expires = health.observed_at + self._grace(health)
        if now >= expires:
            if ready_status(node) != "Unknown":
                node = await self._mark_unknown(node, now)
        else:
            delays.append(expires - now)
        self._record_transition(node, health)
        node = await self._sync_taints(node, now)
        next_eviction = await self._evict(node, now)
        if next_eviction is not None:
            delays.append(max(0.0, next_eviction - now))
        return min(delays) if delays else None

    def _record_transition(self, node: Obj, health: NodeHealth) -> None:
        status = ready_status(node)
        if status == health.ready:
            return
        if health.ready is not None or status != "True":
            reason = "NodeReady" if status == "True" else "NodeNotReady"
            self.ctx.recorder.event(node, NORMAL, reason, f"Node {node['metadata']['name']} status is now: {reason}")
        health.ready = status

    async def _mark_unknown(self, node: Obj, now: float) -> Obj:
        """Set the node's conditions to Unknown (the agent stopped reporting) and its pods NotReady."""
        name = node["metadata"]["name"]
        log.info("node %s: no heartbeat for %.1fs; marking it NotReady", name, now - self.health[name].observed_at)
        updated = copy.deepcopy(node)
        status = updated.setdefault("status", {})
        conditions = status.setdefault("conditions", [])
        stamp = now_micro(now)
        if not any(c.get("type") == "Ready" for c in conditions):
            conditions.append({"type": "Ready", "status": "Unknown", "reason": NEVER_REASON,
                               "message": NEVER_MESSAGE, "lastTransitionTime": stamp})
        for c in conditions:
            if c.get("status") != "Unknown":
                c.update(status="Unknown", reason=UNKNOWN_REASON, message=UNKNOWN_MESSAGE, lastTransitionTime=stamp)
        written = await self.ctx.client.update_status(updated)
        await self._mark_pods_not_ready(name, stamp)
        return written

    async def _mark_pods_not_ready(self, node_name: str, stamp: str) -> None:
        for pod in self.pods.by_index(POD_BY_NODE, node_name):
            if is_finished(pod):
                continue
            conditions = (pod.get("status") or {}).get("conditions") or []
            if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
                continue
            updated = copy.deepcopy(pod)
            for c in updated["status"]["conditions"]:
                if c.get("type") == "Ready":
                    c.update(status="False", reason="NodeNotReady", lastTransitionTime=stamp)
            try:
                await self.ctx.client.update_status(updated)
            except (Conflict, NotFound):
                pass  # changed or gone meanwhile; not worth a retry

    async def _sync_taints(self, node: Obj, now: float) -> Obj:
        current = (node.get("spec") or {}).get("taints") or []
        wanted = condition_taints(current, ready_status(node), now=now_micro(now))
        if _taint_set(wanted) == _taint_set(current):
            return node
        updated = copy.deepcopy(node)
        updated.setdefault("spec", {})["taints"] = wanted or None
        if not wanted:
            updated["spec"].pop("taints", None)
        added = _taint_set(wanted) - _taint_set(current)
        removed = _taint_set(current) - _taint_set(wanted)
        log.info("node %s: taints %s%s", node["metadata"]["name"],
                 " ".join(f"+{k}:{e}" for k, e in sorted(added)), " ".join(f" -{k}:{e}" for k, e in sorted(removed)))
        return await self.ctx.client.update(updated)

    async def _evict(self, node: Obj, now: float) -> float | None:
        """Delete the pods whose time on this NoExecute-tainted node is up; return the next deadline."""
        taints = [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") == NO_EXECUTE]
        if not taints:
            return None
        unreachable = any(t.get("key") == UNREACHABLE for t in taints)
        if unreachable and self._fully_disrupted():
            return now + self.settings.node_monitor_period_seconds  # look again; see _fully_disrupted
        added_at = {(t.get("key", ""), NO_EXECUTE): parse_time(t.get("timeAdded")) or now for t in taints}
        next_time: float | None = None
        for pod in self.pods.by_index(POD_BY_NODE, node["metadata"]["name"]):
            if is_finished(pod):
                continue
            if is_terminating(pod):
                if not unreachable:
                    continue  # the agent is alive and finishes it
                when = parse_time(pod["metadata"]["deletionTimestamp"]) or now
            else:
                when = eviction_time(pod, taints, default_seconds=self.settings.pod_eviction_seconds,
                                     added_at=added_at)
            if when is None:
                continue
            if when <= now:
                await self._evict_pod(pod, force=unreachable)
            elif next_time is None or when < next_time:
                next_time = when
        return next_time

    def _fully_disrupted(self) -> bool:
        """Every node is unreachable: more likely this controller (or the API server) is cut off
        than every machine dead at once, and evicting everything would help no one. Like
        Kubernetes in a fully disrupted zone, evict nothing until some node is reachable."""
        nodes = self.nodes.store.values()
        if all(ready_status(n) == "Unknown" for n in nodes):
            if not self._disruption_logged:
                log.warning("all %d nodes are unreachable; not evicting pods until one is back", len(nodes))
                self._disruption_logged = True
            return True
        self._disruption_logged = False
        return False

    async def _evict_pod(self, pod: Obj, *, force: bool) -> None:
        meta = pod["metadata"]
        if not is_terminating(pod):
            self.ctx.recorder.event(pod, NORMAL, "TaintManagerEviction",
                                    f"Marking for deletion Pod {meta.get('namespace')}/{meta['name']}")
        log.info("evicting pod %s/%s from node %s%s", meta.get("namespace"), meta["name"],
                 pod["spec"].get("nodeName"), " (grace 0: the node is unreachable)" if force else "")
        try:
            await self.ctx.client.delete("pods", meta["name"], meta.get("namespace", ""),
                                         grace_seconds=0 if force else None,
                                         resource_version=meta.get("resourceVersion", ""))
        except NotFound:
            pass  # gone already; a Conflict (changed meanwhile) goes up and the node is looked at again

    async def _collect_orphans(self, name: str, now: float) -> float | None:
        """The Node is gone: force-delete pods still bound to it, after a quarantine."""
        pods = self.pods.by_index(POD_BY_NODE, name)
        health = self.health.get(name)
        if not pods:
            self.health.pop(name, None)
            return None
        if health is None:
            health = self.health[name] = NodeHealth(now)
        if health.missing_since is None:
            health.missing_since = now
        waited = now - health.missing_since
        if waited < ORPHAN_QUARANTINE_SECONDS:
            return ORPHAN_QUARANTINE_SECONDS - waited
        try:
            await self.ctx.client.get("nodes", name)
            return None  # it exists after all; our cache is behind
        except NotFound:
            pass
        for pod in pods:
            meta = pod["metadata"]
            log.info("deleting pod %s/%s: its node %s no longer exists", meta.get("namespace"), meta["name"], name)
            try:
                await self.ctx.client.delete("pods", meta["name"], meta.get("namespace", ""), grace_seconds=0)
            except NotFound:
                pass
        self.health.pop(name, None)
        return None


def _taint_set(taints: list[Obj]) -> set[tuple[str, str]]:
    return {(t.get("key", ""), t.get("effect", "")) for t in taints}


def _condition_tainted(node: Obj) -> bool:
    return any(t.get("key") in CONDITION_TAINT_KEYS for t in (node.get("spec") or {}).get("taints") or [])
