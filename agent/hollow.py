"""Hollow nodes: a simulator of many nodes in one process, for tests, benchmarks and learning.

    python -m agent.hollow --server 127.0.0.1:6443 --nodes 100      (command line: agent/hollow_cli.py)

A hollow node never runs a process. As kubemark runs the real kubelet on a fake
runtime, each hollow node runs the agent's real pod logic - `PodSyncer`
(agent/podsync.py: admission, init containers, restart policy and CrashLoopBackOff,
graceful termination, the pod status it writes, its events) - on a `FakeRuntime`
(agent/fakeruntime.py) whose containers are records in memory, so figures measured
with hollow nodes exercise the agent's code, not a copy of it. What lies outside the
pod logic is simulated: images are always present (FakeImages), volumes are named but
never made, pod IPs come from 198.19.0.0/16, probes answer at once (Ready, unless the
pod says otherwise), and no ServiceAccount token is requested. Through the API it:

- registers a Node (capacity, allocatable, Ready condition, an InternalIP from
  198.18.0.0/16, nodeInfo.containerRuntimeVersion `hollow://0.1`, label
  skiff.io/hollow=true);
- renews a Lease per node in namespace skiff-node-lease (its own batched loop below, with the
  rules of api/nodelease.py the agent shares; not agent/node.py's one-loop-per-node code, which
  would be 5,000 timers);
- syncs the pods bound to it with PodSyncer; their containers exit when the pod's
  annotations ask for it (agent/hollow_status.py), init containers at once;
- can be killed (`kill(name)`: stops renewing and reporting — a dead machine),
  revived, told to report NotReady, and nodes can join and leave.

Cheap enough for 5,000 nodes on a 2-core machine:
- ONE pods watch for all its nodes (all bound pods, filtered by node name in the
  process), not one watch per node; ONE nodes watch;
- Lease renewals are spread evenly over the interval (node i renews at phase
  i/N), driven by one timer loop, with at most `concurrency` requests in flight;
- the interval adapts to the cluster size when not given: max(2 s, nodes/50)
  (see api/nodelease.py; Nomad's rule), i.e. at most 50
  renewals a second; 5,000 nodes renew every 100 s;
- node status is written only when it changes (kubelets also post it rarely
  once Leases carry the heartbeat).

For benchmarks: `zones=N` labels node i with topology.kubernetes.io/zone=zone-(i % N);
`report_pods=False` leaves the pods alone (Leases and node status only: no pods
watch, no pod status writes); `renewals_by_second` counts the Lease renewals that
succeeded in each whole second of CLOCK_MONOTONIC (`renewal_failures` the others).
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import logging
import time
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Hashable

from agent.config import AgentConfig
from agent.fakeruntime import FakeImages, FakeRuntime, Program
from agent.hollow_status import exit_plan, node_conditions, node_ip, node_object, pod_ip, wants_ready
from agent.podstate import PodState
from agent.podsync import DONE, PodSyncer
from agent.runtime.specs import ContainerSpec, Mount
from controlplane.client import AlreadyExists, ApiError, Client, Conflict, NotFound
from controlplane.client.events import EventRecorder
from controlplane.client.informer import Informer
from controlplane.client.workqueue import WorkQueue, run_workers
from api.timestamps import rfc3339
from api.nodelease import (LEASE_NAMESPACE, lease_duration_seconds, lease_renew_interval,
                                               now_micro)
from api.tasks import cancel_and_wait

log = logging.getLogger(__name__)
Obj = dict[str, Any]
ZONE_LABEL = "topology.kubernetes.io/zone"


@dataclass
class HollowNode:
    name: str
    index: int
    ip: str
    alive: bool = True
    ready: bool = True
    lease: Obj | None = None
    registered: bool = False
    syncer: PodSyncer | None = None    # the agent's pod logic for this node, on its own FakeRuntime


class HollowVolumes:
    """Volumes on a hollow node: named, never made (no process would read them)."""

    ROOT = Path("/nonexistent/skiff-hollow-volumes")

    async def setup(self, pod: Obj, **_: Any) -> dict[str, Path]:
        uid = pod["metadata"].get("uid", "")
        return {v["name"]: self.ROOT / uid / v["name"] for v in (pod.get("spec") or {}).get("volumes") or []}

    async def setup_files(self, pod: Obj, name: str, files: dict[str, bytes]) -> Path:
        return self.ROOT / pod["metadata"].get("uid", "") / name

    def mounts_for(self, container: Obj, volume_paths: dict[str, Path]) -> list[Mount]:
        return []

    async def teardown(self, pod_uid: str) -> None:
        return None

    def list_pod_dirs(self) -> list[str]:
        return []


class HollowNetwork:
    """Pod addresses from 198.19.0.0/16 (agent/hollow_status.py), one per pod, kept until it is gone."""

    def __init__(self) -> None:
        self._next = 0
        self.ips: dict[str, str] = {}

    async def attach(self, pod: Obj, netns_path: Path) -> str:
        uid = pod["metadata"].get("uid", "")
        if uid not in self.ips:
            self.ips[uid] = pod_ip(self._next)
            self._next += 1
        return self.ips[uid]

    async def detach(self, pod_uid: str) -> None:
        self.ips.pop(pod_uid, None)


class HollowProbes:
    """Probes on a hollow node answer at once: ready, unless the pod's annotation says
    `hollow.skiff.io/ready: "false"`; hooks succeed."""

    def start(self, pod: Obj, container: Obj, cid: str, state: PodState) -> None:
        state.ready[container["name"]] = wants_ready(pod)
        state.started[container["name"]] = True

    async def run_hook(self, hook: Obj, **_: Any) -> tuple[bool, str]:
        return True, ""


# Dataclass fields: alike in shape to other classes' (the `duplicates` tool pairs them), nothing to share.
@dataclass
class HollowCluster:
    client: Client
    count: int
    prefix: str = "hollow"
    cpu: str = "4"
    memory: str = "16Gi"
    pods: int = 110
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, Any]] = field(default_factory=list)
    lease_renew_seconds: float | None = None   # None: lease_renew_interval(number of nodes)
    start_index: int = 0                       # first node number (names and IPs); for several simulators
    concurrency: int = 64
    workers: int = 8
    zones: int = 0                             # >0: node i gets topology.kubernetes.io/zone=zone-(i % zones)
    report_pods: bool = True                   # False: Leases and node status only, pods left alone

    def __post_init__(self) -> None:
        self.nodes: dict[str, HollowNode] = {}
        self.pods_by_uid: dict[str, Obj] = {}      # the pods bound to these nodes
        self.pod_nodes: dict[str, str] = {}        # pod uid -> node it runs on (also after the pod is gone)
        self.registered = asyncio.Event()
        self._next_index = self.start_index
        self.images = FakeImages()
        self.network = HollowNetwork()
        self.probes = HollowProbes()
        self.volumes = HollowVolumes()
        self.recorder = EventRecorder(self.client, component="skiff-agent", host=self.prefix)
        self._renewals: list[tuple[float, str]] = []   # heap of (loop time due, node)
        self._wake = asyncio.Event()
        self._limit = asyncio.Semaphore(self.concurrency)
        self.renewals_by_second: collections.Counter[int] = collections.Counter()   # int(monotonic) -> renewals
        self.renewal_failures = 0
        self.queue: WorkQueue[Hashable] = WorkQueue(name=f"hollow-{self.prefix}")
        self.pod_informer = Informer(self.client, "pods", field_selector="spec.nodeName!=")
        self.node_informer = Informer(self.client, "nodes")
        if self.report_pods:
            self.pod_informer.add_handlers(on_add=self._pod_event, on_update=lambda _o, new: self._pod_event(new),
                                           on_delete=self._pod_deleted)
        self.node_informer.add_handlers(on_add=self._node_event, on_update=lambda _o, new: self._node_event(new))

    @property
    def interval(self) -> float:
        return self.lease_renew_seconds or lease_renew_interval(len(self.nodes) or self.count)

    @property
    def node_names(self) -> list[str]:
        return list(self.nodes)

    # -- running ---------------------------------------------------------------------

    async def run(self) -> None:
        """Register the nodes, then renew Leases and report pods until cancelled."""
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(self.node_informer.run(), name="hollow-nodes-watch")]
        if self.report_pods:
            tasks.append(loop.create_task(self.pod_informer.run(), name="hollow-pods-watch"))
        try:
            await self.add_nodes(self.count)
            await asyncio.gather(*([self.pod_informer.wait_synced()] if self.report_pods else []),
                                 self.node_informer.wait_synced())
            self.registered.set()
            log.info("%d hollow nodes registered; renewing Leases every %.1fs", len(self.nodes), self.interval)
            tasks.append(loop.create_task(self._renew_loop(), name="hollow-leases"))
            tasks.append(loop.create_task(run_workers(self.queue, self._reconcile, workers=self.workers),
                                          name="hollow-workers"))
            for name in self.nodes:
                self._queue_pods(name)
            await asyncio.gather(*tasks)
        finally:
            await self.queue.shut_down()
            await cancel_and_wait(tasks)

    async def add_nodes(self, count: int) -> list[str]:
        """Register `count` more nodes (nodes joining the cluster); returns their names."""
        new = []
        for _ in range(count):
            index = self._next_index
            self._next_index += 1
            node = HollowNode(name=f"{self.prefix}-{index}", index=index, ip=node_ip(index))
            node.syncer = self._syncer(node)
            self.nodes[node.name] = node
            new.append(node)
        await asyncio.gather(*(self._register(n) for n in new))
        now = asyncio.get_running_loop().time()
        for i, node in enumerate(new):  # spread first renewals evenly over one interval
            heapq.heappush(self._renewals, (now + self.interval * (i + 1) / len(new), node.name))
        self._wake.set()
        return [n.name for n in new]

    async def remove_node(self, name: str) -> None:
        """A node leaves: it stops, and its Node and Lease are deleted."""
        self.kill(name)
        self.nodes.pop(name, None)
        for kind, namespace in (("nodes", ""), ("leases", LEASE_NAMESPACE)):
            try:
                await self.client.delete(kind, name, namespace)
            except NotFound:
                pass

    async def deregister(self) -> None:
        """Delete every Node and Lease this simulator registered (tidy shutdown)."""
        await asyncio.gather(*(self._limited(self.remove_node(name)) for name in list(self.nodes)))

    def kill(self, name: str) -> None:
        """The node dies: no more Lease renewals, no more pod reports. Its objects stay."""
        node = self.nodes[name]
        node.alive = False
        log.info("hollow node %s killed", name)

    def revive(self, name: str) -> None:
        node = self.nodes[name]
        node.alive = True
        heapq.heappush(self._renewals, (asyncio.get_running_loop().time(), name))
        self._wake.set()
        self.queue.add(("node", name))
        self._queue_pods(name)

    def set_ready(self, name: str, ready: bool) -> None:
        """Make the node report Ready=True or Ready=False (its Lease keeps being renewed)."""
        self.nodes[name].ready = ready
        self.queue.add(("node", name))

    async def _limited(self, coro: Any) -> Any:
        async with self._limit:
            return await coro

    # -- registration and Leases --------------------------------------------------------

    def node_labels(self, node: HollowNode) -> dict[str, str]:
        if self.zones > 0:
            return {ZONE_LABEL: f"zone-{node.index % self.zones}", **self.labels}
        return dict(self.labels)

    async def _register(self, node: HollowNode) -> None:
        obj = node_object(node.name, ip=node.ip, cpu=self.cpu, memory=self.memory, pods=self.pods,
                          labels=self.node_labels(node), taints=self.taints, now=rfc3339())
        async with self._limit:
            try:
                await self.client.create(obj)
            except AlreadyExists:  # a restarted simulator takes its nodes over
                current = await self.client.get("nodes", node.name)
                current["status"] = obj["status"]
                await self.client.update_status(current)
            await self._write_lease(node)
        node.registered = True

    def _lease_object(self, node: HollowNode) -> Obj:
        stamp = now_micro()
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": node.name, "namespace": LEASE_NAMESPACE},
                "spec": {"holderIdentity": node.name, "leaseDurationSeconds": lease_duration_seconds(self.interval),
                         "acquireTime": stamp, "renewTime": stamp}}

    async def _write_lease(self, node: HollowNode) -> None:
        if node.lease is not None:
            lease = dict(node.lease)
            lease["spec"] = {**lease.get("spec", {}), "renewTime": now_micro(),
                             "leaseDurationSeconds": lease_duration_seconds(self.interval)}
            try:
                node.lease = await self.client.update(lease)
                return
            except Conflict:
                lease = await self.client.get("leases", node.name, LEASE_NAMESPACE)
                lease["spec"] = {**lease.get("spec", {}), "renewTime": now_micro(), "holderIdentity": node.name}
                node.lease = await self.client.update(lease)
                return
            except NotFound:
                node.lease = None
        try:
            node.lease = await self.client.create(self._lease_object(node))
        except AlreadyExists:
            lease = await self.client.get("leases", node.name, LEASE_NAMESPACE)
            lease["spec"] = {**lease.get("spec", {}), "renewTime": now_micro(), "holderIdentity": node.name}
            node.lease = await self.client.update(lease)

    async def _renew(self, node: HollowNode) -> None:
        async with self._limit:
            if not node.alive or node.name not in self.nodes:
                return
            try:
                await self._write_lease(node)
                self.renewals_by_second[int(time.monotonic())] += 1
            except ApiError as exc:
                self.renewal_failures += 1
                log.warning("hollow node %s: lease renewal failed: %s", node.name, exc.message)

    async def _renew_loop(self) -> None:
        """Start each node's renewal when it is due, each on its own, as each kubelet renews on
        its own: a slow renewal delays only its node, not the ones due after it. A node whose
        previous renewal is still running skips its turn (a kubelet does not renew twice at once)."""
        loop = asyncio.get_running_loop()
        renewing: dict[str, asyncio.Task[None]] = {}
        try:
            while True:
                now = loop.time()
                while self._renewals and self._renewals[0][0] <= now:
                    when, name = heapq.heappop(self._renewals)
                    node = self.nodes.get(name)
                    if node is None or not node.alive:
                        continue  # dead nodes leave the schedule; revive() puts them back
                    heapq.heappush(self._renewals, (max(when + self.interval, now + self.interval / 2), name))
                    if name not in renewing:
                        task = renewing[name] = loop.create_task(self._renew(node))
                        task.add_done_callback(lambda _task, name=name: renewing.pop(name, None))
                wait = min(1.0, self._renewals[0][0] - now) if self._renewals else 1.0
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), max(0.0, wait))
                except asyncio.TimeoutError:
                    pass
        finally:
            await cancel_and_wait(list(renewing.values()))

    # -- the pods: the agent's PodSyncer on a FakeRuntime ---------------------------------

    def _syncer(self, node: HollowNode) -> PodSyncer:
        config = AgentConfig(node_name=node.name, node_ip=node.ip, max_pods=self.pods, network=False,
                             state_dir=Path("/nonexistent/skiff-hollow") / node.name)
        return PodSyncer(client=self.client, config=config, runtime=FakeRuntime(program=self._program),
                         images=self.images, volumes=self.volumes, recorder=self.recorder,  # type: ignore[arg-type]
                         node_ip=node.ip, pod_lookup=self.pods_by_uid.get, trigger=self._trigger,
                         network=self.network, probes=self.probes, service_account_tokens=False)

    def _program(self, spec: ContainerSpec) -> Program:
        """What a container on a hollow node does: init containers finish at once; the others run
        until stopped, or exit as the pod's annotations say (agent/hollow_status.py)."""
        pod = self.pods_by_uid.get(spec.pod_uid) or {}
        if any(c.get("name") == spec.name for c in (pod.get("spec") or {}).get("initContainers") or []):
            return Program(exit_after=0.0)
        plan = exit_plan(pod)
        return Program() if plan is None else Program(exit_after=plan.after_seconds, exit_code=plan.code)

    def _trigger(self, uid: str) -> None:
        self.queue.add(("pod", uid))

    def _pod_event(self, pod: Obj) -> None:
        if (pod.get("spec") or {}).get("nodeName") in self.nodes:
            uid = pod["metadata"]["uid"]
            self.pods_by_uid[uid] = pod
            self.pod_nodes[uid] = pod["spec"]["nodeName"]
            self._trigger(uid)

    def _pod_deleted(self, pod: Obj) -> None:
        uid = (pod.get("metadata") or {}).get("uid", "")
        if self.pods_by_uid.pop(uid, None) is not None:
            self._trigger(uid)

    def _node_event(self, node: Obj) -> None:
        if node["metadata"]["name"] in self.nodes:
            self.queue.add(("node", node["metadata"]["name"]))

    def _queue_pods(self, node_name: str) -> None:
        if not self.report_pods:
            return
        for uid, name in list(self.pod_nodes.items()):
            if name == node_name:
                self._trigger(uid)

    async def _reconcile(self, key: Hashable) -> float | None:
        assert isinstance(key, tuple)
        if key[0] == "node":
            return await self._sync_node(key[1])
        return await self._sync_pod(key[1])

    async def _sync_node(self, name: str) -> float | None:
        """Post Ready=True (or False, if told so) when the Node says otherwise, e.g. after
        the node lifecycle controller marked it Unknown while it was dead."""
        node = self.nodes.get(name)
        obj = self.node_informer.get("", name)
        if node is None or not node.alive or obj is None:
            return None
        want = "True" if node.ready else "False"
        conditions = (obj.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Ready" and c.get("status") == want for c in conditions):
            return None
        updated = {**obj, "status": {**obj.get("status", {}), "conditions": node_conditions(node.ready, rfc3339())}}
        try:
            await self.client.update_status(updated)
        except Conflict:
            return 0.05
        except NotFound:
            pass
        return None

    async def _sync_pod(self, uid: str) -> float | None:
        """One sync of the pod by its node's PodSyncer (the queue never runs one key twice at once,
        as the agent's pod workers never do). A dead node does nothing."""
        node = self.nodes.get(self.pod_nodes.get(uid, ""))
        if node is None or node.syncer is None or not node.alive:
            return None
        result = await node.syncer.sync(uid)
        if result == DONE:
            self.pod_nodes.pop(uid, None)
            return None
        return float(result) if isinstance(result, (int, float)) else None


# -- command line: agent/hollow_cli.py --------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    from agent.hollow_cli import main as cli_main
    cli_main(argv)


if __name__ == "__main__":
    main()
