"""Benchmark of the scheduler: 5,000 nodes, 20,000 plain pods — pods bound per second and
create→bound latency.

    .venv/bin/python bench/scheduler.py                           # the figures in docs/PERFORMANCE.md
    .venv/bin/python bench/scheduler.py --nodes 500 --pods 2000   # a quick run (about 30 s)
    .venv/bin/python bench/scheduler.py --profile                 # also sample scheduler and API server (py-spy)
    .venv/bin/python bench/scheduler.py --mode backlog            # create every pod first, then start the scheduler
    .venv/bin/python bench/scheduler.py --workload deployments    # 20 Deployments x 1,000 replicas, controllers on
    .venv/bin/python bench/scheduler.py --workload deployments --controller-manager   # the controllers in their own process
    .venv/bin/python bench/scheduler.py --no-leases               # plain Node objects, no Lease renewals

It starts its own etcd (data on disk) and `skiff-controlplane` without its built-in
scheduler (and, for plain pods, without its controllers; bench/common.py), brings up
the nodes, then runs the scheduler as its own process (`python -m controlplane.scheduler`),
as one would to give it a core of its own.

Nodes (32 cpu, 128Gi, 110 pods, a hostname label and one of --zones zones):
- with leases (default): the project's hollow-node simulator (agent/hollow.py) in a
  process of its own registers them and renews each node's Lease (namespace
  skiff-node-lease) every --lease-seconds (10 s, as kubelets do), spread evenly
  over the interval: 500 renewals/s at 5,000 nodes, through the same API server.
  The hollow nodes leave the pods alone unless --pod-status (then they also report
  each bound pod Running, as a kubelet would: one more write per pod).
  The lease renewals/s achieved during the measured window are reported.
- --no-leases: plain Node objects with capacity in their status, nothing renews
  them (the scheduler does not read Leases).

Workloads:
- plain (default): plain pods, no owner, created by --creator-procs processes.
- deployments: the controllers run inside skiff-controlplane (as by default), and
  the bench creates --deployments Deployments of pods/deployments replicas each
  at once; the Deployment controller makes the ReplicaSets, the ReplicaSet
  controller the pods. "Created" is the moment the bench's watch first sees the
  pod (no per-pod stamp can ride in a template; creationTimestamp has whole
  seconds); pods/s = pods bound / (first Deployment create sent → last bind seen).

Modes:
- burst (default): the pods are created while the scheduler runs, as fast as the
  creator processes can (like a big Deployment scale-up), or at --rate pods/s
  (open loop: pod k is sent at start + k/rate). Latency is create→bound:
  a pod carries the CLOCK_MONOTONIC moment its create was sent (an annotation); the
  bench's watch notes the moment it sees the pod with spec.nodeName.
- backlog: every pod exists before the scheduler starts; the figure is the
  scheduler's drain rate, without creates competing for the API server.
- decide: no servers at all — the scheduler's decisions alone (filter, score,
  assume) in this process, over the same nodes: the ceiling the scheduler's own
  CPU puts on throughput.

"Pods/s" is pods bound over the time from the first create sent (burst) or the
scheduler's start (backlog) to the last bind seen. Every run also reports
create-seen→bound: from the moment the bench's watch first sees a pod to its bind. Results go to
bench/results/scheduler.json and are summarised on stdout.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

import argparse  # noqa: E402
import asyncio  # noqa: E402
import collections  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from typing import Any, Iterator  # noqa: E402

from bench.common import (connect, RESULTS_DIR, SPAWN, Cluster, ControlPlaneProcess, CpuMeter, Profile, StartGate,  # noqa: E402
                          cluster,
                          collect, machine_info, percentiles, stop_process, wait_for, worker_processes,
                          write_results)

GOAL_PODS_PER_SECOND = 1000
DONE_PODS_PER_SECOND = 300
GOAL_DEPLOYMENT_PODS_PER_SECOND = 400
NAMESPACE = "bench"
SENT = "bench.skiff.dev/sent"
ZONE = "topology.kubernetes.io/zone"


@dataclass
class Settings:
    nodes: int = 5000
    pods: int = 20000
    zones: int = 10
    mode: str = "burst"
    workload: str = "plain"              # plain | deployments
    deployments: int = 20                # deployments workload: pods / deployments replicas each
    leases: bool = True                  # hollow nodes renewing Leases (agent/hollow.py); False: plain Node objects
    lease_seconds: float = 10.0          # Lease renewal interval of each node
    pod_status: bool = False             # hollow nodes also report bound pods Running
    node_api_server: bool = False        # the hollow nodes talk to a second API server process (HA-style)
    creator_procs: int = 2
    creator_concurrency: int = 32        # creates in flight per creator process
    rate: float = 0.0                    # burst: pods created per second (0: as fast as possible)
    percentage_of_nodes_to_score: int = 0   # 0: adaptive, as kube-scheduler
    embedded: bool = False               # the scheduler inside skiff-controlplane (the default deployment)
    controller_manager: bool = False     # deployments: the controllers as their own process, not in the API server's
    profile: bool = False
    profile_seconds: float = 20.0
    timeout: float = 600.0


def node_object(i: int, zones: int) -> dict[str, Any]:
    """A hollow node: a Node object with capacity, as an agent would register it."""
    name = f"node-{i:05}"
    allocatable = {"cpu": "32", "memory": "128Gi", "pods": "110"}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, ZONE: f"zone-{i % zones}",
                                                  "kubernetes.io/os": "linux"}},
            "status": {"capacity": allocatable, "allocatable": allocatable}}


def bench_pod(i: int) -> dict[str, Any]:
    """A plain pod: one container with requests, no affinity, no owner."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"pod-{i:06}", "namespace": NAMESPACE, "labels": {"app": "bench"},
                         "annotations": {SENT: "0"}},
            "spec": {"containers": [{"name": "main", "image": "docker.io/library/nginx:1.25",
                                     "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}}


def deployment_name(k: int) -> str:
    return f"bench-{k:02}"


def bench_deployment(k: int, replicas: int) -> dict[str, Any]:
    """A Deployment whose pods are the plain pod's spec (labels app=bench-NN)."""
    name = deployment_name(k)
    spec = bench_pod(0)["spec"]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}


# -- worker processes (spawned: fresh interpreters) -------------------------------------------

def hollow_worker(*, address: str, settings: Settings, registered: Any, stop: Any, results: Any) -> None:
    """The nodes as hollow nodes (agent/hollow.py): register, then renew Leases (and, with
    pod_status, report pods Running) until `stop`; report renewals per second and CPU."""
    async def work() -> dict[str, Any]:
        from agent.hollow import HollowCluster
        async with connect(address, timeout=60) as client:
            # Kubelets renew independently: allow a second's worth of renewals in flight (the
            # simulator's default of 64 capped the rate at 64 / latency: 344/s instead of 500 at 5,000 nodes).
            concurrency = max(64, int(settings.nodes / settings.lease_seconds))
            hollow = HollowCluster(client, settings.nodes, prefix="node", cpu="32", memory="128Gi", pods=110,
                                   zones=settings.zones, lease_renew_seconds=settings.lease_seconds,
                                   report_pods=settings.pod_status, concurrency=concurrency)
            task = asyncio.create_task(hollow.run())
            ready = asyncio.create_task(hollow.registered.wait())
            await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                task.result()   # raises what stopped it
            registered.set()
            while not task.done() and not await asyncio.to_thread(stop.wait, 0.5):
                pass
            if task.done():
                task.result()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return {"nodes": len(hollow.nodes), "renewals_by_second": dict(hollow.renewals_by_second),
                "renewal_failures": hollow.renewal_failures}
    _run(results, work)


def node_worker(*, address: str, first: int, count: int, zones: int, results: Any) -> None:
    """Register nodes first..first+count: create, then write status (create ignores status)."""
    async def work() -> dict[str, Any]:
        async with connect(address, timeout=30) as client:
            gate = asyncio.Semaphore(32)

            async def one(i: int) -> None:
                async with gate:
                    node = node_object(i, zones)
                    status = node.pop("status")
                    created = await client.create(node)
                    created["status"] = status
                    await client.update_status(created)
            await asyncio.gather(*(one(i) for i in range(first, first + count)))
        return {"nodes": count}
    _run(results, work)


def create_worker(*, address: str, indexes: list[int], concurrency: int, gate: StartGate | None,
                  results: Any, rate: float = 0.0) -> None:
    """Create the given pods, each stamped with the monotonic time its create was sent; report
    when each create returned, and the CPU this process used."""
    async def work() -> dict[str, Any]:
        import resource
        from controlplane.client import ApiError
        async with connect(address, timeout=60) as client:
            await client.get("namespaces", NAMESPACE)   # connected and warm
            if gate is not None:
                gate.arrive()
                await gate.wait_for_go()
            cpu0 = resource.getrusage(resource.RUSAGE_SELF)
            todo = collections.deque(indexes)
            errors: collections.Counter[str] = collections.Counter()
            returned: dict[str, float] = {}
            first = last = 0.0
            begin, seq = time.monotonic(), 0

            async def loop() -> None:
                nonlocal first, last, seq
                while todo:
                    pod = bench_pod(todo.popleft())
                    if rate > 0:   # open loop: pod k is due at begin + k/rate, however slow earlier ones are
                        due = begin + seq / rate
                        seq += 1
                        await asyncio.sleep(max(0.0, due - time.monotonic()))
                    sent = time.monotonic()
                    first = first or sent
                    pod["metadata"]["annotations"][SENT] = repr(sent)
                    try:
                        await client.create(pod)
                        returned[pod["metadata"]["name"]] = last = time.monotonic()
                    except ApiError as exc:
                        errors[type(exc).__name__] += 1
            await asyncio.gather(*(loop() for _ in range(concurrency)))
            cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
        return {"created": len(returned), "errors": dict(errors), "first": first, "last": last,
                "returned": returned, "cpu_seconds": cpu}
    _run(results, work)


def _run(results: Any, work: Any) -> None:
    try:
        results.put(asyncio.run(work()))
    except BaseException as exc:  # noqa: BLE001 — the parent reports it
        traceback.print_exc()
        results.put({"error": f"{type(exc).__name__}: {exc}"})


# -- the scheduler process -----------------------------------------------------------------

class SchedulerProcess:
    def __init__(self, work_dir: Path, *, address: str, settings: Settings):
        self.config = work_dir / "scheduler.yaml"
        self.config.write_text(f"seed: 1\npercentageOfNodesToScore: {settings.percentage_of_nodes_to_score}\n")
        self.log_path = work_dir / "scheduler.log"
        self.args = [sys.executable, "-m", "controlplane.scheduler", "--server", address, "--config", str(self.config)]
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> float:
        """Start; return the monotonic time its caches were synced (it logs "started")."""
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                         cwd=Path(__file__).resolve().parent.parent)

        def started() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"scheduler exited with {self.proc.returncode}: {self.log()[-2000:]}")
            return " started: " in self.log()
        wait_for(started, timeout=timeout, what="the scheduler to sync its caches", interval=0.02)
        return time.monotonic()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> dict[str, Any]:
        if self.proc:
            stop_process(self.proc)
        match = re.search(r"stopped: (\{.*\})", self.log())
        return json.loads(match.group(1).replace("'", '"')) if match else {}


@contextlib.contextmanager
def controllers_process(work_dir: Path, *, address: str) -> Iterator[int]:
    """`python -m controlplane.controllers` (the controller manager on its own); yields its pid."""
    log_path = work_dir / "controllers.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "controlplane.controllers", "--server", address,
                                 "--cluster-cidr", "10.0.0.0/8"], stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL, cwd=Path(__file__).resolve().parent.parent)
    try:
        yield proc.pid
    finally:
        stop_process(proc)
        if proc.returncode not in (0, -15):
            print(f"controller manager exited with {proc.returncode}: "
                  f"{log_path.read_text(errors='replace')[-1000:]}", file=sys.stderr)


# -- the parent's watch --------------------------------------------------------------------

# The bench's own watch reads a few fields with regexes on the raw JSON instead of decoding
# every event: the observer should cost the machine as little as it can.
NODE_NAME = re.compile(rb'"nodeName":"')
POD_NAME = re.compile(rb'"name":"(pod-[0-9]+)"')
# a Deployment's pod: bench-NN-<template hash>-<5 chars> (its ReplicaSet owner, bench-NN-<hash>, has no third part)
DEPLOYMENT_POD_NAME = re.compile(rb'"name":"(bench-[0-9]+-[a-z0-9]+-[a-z0-9]+)"')
SENT_AT = re.compile(rb'"bench\.skiff\.dev/sent":"([0-9.]+)"')


async def watch_binds(address: str, total: int, *, timeout: float, ready: asyncio.Event,
                      workload: str = "plain", seen: dict[str, float] | None = None) -> dict[str, tuple]:
    """{pod name: (sent, seen bound)} for every pod seen with spec.nodeName, until `total` or timeout.
    `seen` gets {pod name: the moment the watch first saw it}; for Deployments' pods, which
    carry no send stamp, "sent" is that moment too."""
    from protos import skiff_pb2 as pb
    bound: dict[str, tuple] = {}
    seen = {} if seen is None else seen
    plain = workload == "plain"
    name_pattern = POD_NAME if plain else DEPLOYMENT_POD_NAME
    async with connect(address, timeout=60) as client:
        listed = await client.list("pods", NAMESPACE)
        for pod in listed.items:   # backlog mode: already there
            name = pod["metadata"]["name"]
            seen[name] = now = time.monotonic()
            if pod["spec"].get("nodeName"):
                bound[name] = (float(pod["metadata"]["annotations"][SENT]) if plain else now, now)
        ready.set()

        async def follow() -> None:
            call = client.stub.Watch(pb.WatchRequest(kind="pods", namespace=NAMESPACE, allow_batching=True,
                                                     resource_version=listed.resource_version))
            try:
                async for message in call:
                    now = time.monotonic()
                    for event in (message, *message.more):
                        raw = event.object
                        if event.type not in ("ADDED", "MODIFIED"):
                            continue
                        match = name_pattern.search(raw)
                        if match is None:
                            continue
                        name = match.group(1).decode()
                        first = seen.setdefault(name, now)
                        if name not in bound and NODE_NAME.search(raw):
                            bound[name] = (float(SENT_AT.search(raw).group(1)) if plain else first, now)
                            if len(bound) >= total:
                                return
            finally:
                call.cancel()
        try:
            await asyncio.wait_for(follow(), timeout)
        except asyncio.TimeoutError:
            pass
    return bound


# -- the run --------------------------------------------------------------------------------

def renewal_rate(by_second: dict[int, int], start: float, end: float) -> dict[str, Any]:
    """Lease renewals per second over the whole seconds inside [start, end]."""
    lo, hi = int(start) + 1, int(end)
    if hi <= lo:
        return {"renewals": 0, "seconds": 0, "per_second": 0.0}
    per = [by_second.get(sec, 0) for sec in range(lo, hi)]
    return {"renewals": sum(per), "seconds": hi - lo, "per_second": round(sum(per) / (hi - lo), 1),
            "min_second": min(per), "max_second": max(per)}


def register_nodes(c: Cluster, settings: Settings) -> float:
    t0 = time.monotonic()
    procs_n = 2
    per = -(-settings.nodes // procs_n)
    results = SPAWN.Queue()
    kwargs = [{"address": c.api.address, "first": i * per, "count": max(0, min(per, settings.nodes - i * per)),
               "zones": settings.zones, "results": results} for i in range(procs_n)]
    with worker_processes(node_worker, kwargs) as procs:
        collect(results, procs_n, timeout=settings.timeout, procs=procs, what="registering nodes")
    return time.monotonic() - t0


async def create_namespace(address: str) -> None:
    async with connect(address) as client:
        await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})


def creator_kwargs(c: Cluster, settings: Settings, gate: StartGate | None, results: Any) -> list[dict[str, Any]]:
    n = settings.creator_procs
    rate = settings.rate / n if settings.mode == "burst" else 0.0
    return [{"address": c.api.address, "indexes": list(range(i, settings.pods, n)),
             "concurrency": settings.creator_concurrency, "gate": gate, "results": results, "rate": rate}
            for i in range(n)]


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return ""


def run(settings: Settings) -> dict[str, Any]:
    nodes = (f"hollow nodes (agent/hollow.py, own process) renewing Leases every {settings.lease_seconds:g} s"
             + (" and reporting pods Running" if settings.pod_status else ", pods left alone")
             if settings.leases else "nodes are plain Node objects (no agents, no Leases)")
    controllers = ("controllers on (Deployment, ReplicaSet, node lifecycle, ...) in the API server's process"
                   if settings.workload == "deployments" else "no controllers")
    out: dict[str, Any] = {"benchmark": "scheduler", "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                           "command": "python bench/scheduler.py " + " ".join(sys.argv[1:]),
                           "machine": machine_info(), "settings": asdict(settings), "loadavg_start": loadavg(),
                           "notes": f"etcd data on disk; API server without its scheduler, {controllers}; the "
                                    f"scheduler as its own process; {nodes}; pod creators, hollow nodes and the "
                                    "bench's watch are separate processes on the same 2 cores"}
    if settings.embedded:
        out["notes"] = out["notes"].replace("API server without its scheduler, ", "the scheduler inside the API "
                                            "server's process (skiff-controlplane's default), ").replace(
                                            "; the scheduler as its own process", "")
    extra_args = [] if settings.embedded else ["--no-scheduler"]
    if settings.workload == "deployments":
        extra_args += ["--cluster-cidr", "10.0.0.0/8"]   # a /24 podCIDR for each of 5,000 nodes
        if settings.controller_manager:
            extra_args += ["--no-controllers"]
    else:
        extra_args += ["--no-controllers"]
    with cluster(extra_args=extra_args) as c, contextlib.ExitStack() as stack:
        extra_pids: dict[str, int] = {}
        if settings.workload == "deployments" and settings.controller_manager:
            extra_pids["controllers"] = stack.enter_context(controllers_process(c.work_dir, address=c.api.address))
            out["notes"] = out["notes"].replace("controllers on (Deployment, ReplicaSet, node lifecycle, ...) in the "
                                                "API server's process", "controllers on, as their own process "
                                                "(python -m controlplane.controllers)")
        if not settings.leases:
            out["register_nodes_seconds"] = round(register_nodes(c, settings), 1)
            out.update(run_with_nodes(c, settings, extra_pids=extra_pids))
            out["loadavg_end"] = loadavg()
            return out
        registered, stop, hollow_results = SPAWN.Event(), SPAWN.Event(), SPAWN.Queue()
        # As in a highly available control plane (several skiff-controlplane processes on one
        # etcd, every one serving the API), the nodes may talk to an API server of their own:
        # their Lease renewals then no longer share one Python process with the pod traffic.
        node_api = contextlib.nullcontext(c.api)
        if settings.node_api_server:
            node_api = ControlPlaneProcess(c.work_dir / "controlplane-nodes", etcd_endpoint=c.etcd.endpoint,
                                           extra_args=["--no-scheduler", "--no-controllers"],
                                           share_ca_with=c.api).start()
            out["notes"] += ("; the hollow nodes talk to a second API server process (no scheduler, no "
                             "controllers) on the same etcd, as nodes behind a load balancer would")
        t0 = time.monotonic()
        with node_api as api_for_nodes, worker_processes(hollow_worker, [{"address": api_for_nodes.address, "settings": settings,
                                               "registered": registered, "stop": stop,
                                               "results": hollow_results}]) as hollow_procs:
            def hollow_up() -> bool:
                if hollow_procs[0].exitcode is not None:
                    raise RuntimeError(f"hollow nodes exited with {hollow_procs[0].exitcode}")
                return registered.is_set()
            wait_for(hollow_up, timeout=settings.timeout, what="hollow nodes to register", interval=0.1)
            out["register_nodes_seconds"] = round(time.monotonic() - t0, 1)
            try:
                out.update(run_with_nodes(c, settings, hollow_pid=hollow_procs[0].pid,
                                          node_api_pid=api_for_nodes.pid if settings.node_api_server else None,
                                          extra_pids=extra_pids))
            finally:
                stop.set()
                hollow = collect(hollow_results, 1, timeout=60, procs=hollow_procs, what="hollow nodes' report")[0]
        if "window" in out:
            out["leases"] = {"interval_seconds": settings.lease_seconds, "nodes": hollow.get("nodes"),
                             "expected_per_second": round(settings.nodes / settings.lease_seconds, 1),
                             "renewal_failures": hollow.get("renewal_failures"),
                             **renewal_rate({int(k): v for k, v in hollow.get("renewals_by_second", {}).items()},
                                            *out["window"])}
    out["loadavg_end"] = loadavg()
    return out


def run_with_nodes(c: Cluster, settings: Settings, hollow_pid: int | None = None,
                   node_api_pid: int | None = None, extra_pids: dict[str, int] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    asyncio.run(create_namespace(c.api.address))
    results = SPAWN.Queue()
    if settings.mode == "backlog":
        t0 = time.monotonic()
        with worker_processes(create_worker, creator_kwargs(c, settings, None, results)) as procs:
            collect(results, settings.creator_procs, timeout=settings.timeout, procs=procs, what="creating pods")
        out["backlog_create_seconds"] = round(time.monotonic() - t0, 1)
    if settings.embedded:
        wait_for(lambda: " started: " in c.api.log_path.read_text(errors="replace"), timeout=60,
                 what="the embedded scheduler to start")
        out.update(asyncio.run(measure(c, settings, None, time.monotonic(), results, hollow_pid, node_api_pid, extra_pids)))
        return out
    scheduler = SchedulerProcess(c.work_dir, address=c.api.address, settings=settings)
    synced_at = scheduler.start()
    try:
        out.update(asyncio.run(measure(c, settings, scheduler, synced_at, results, hollow_pid, node_api_pid, extra_pids)))
    finally:
        out["scheduler_stats"] = scheduler.stop()
    out["scheduler_log_tail"] = [line for line in scheduler.log().splitlines()
                                 if "WARNING" in line or "ERROR" in line][-5:]
    return out


async def create_deployments(address: str, settings: Settings) -> dict[str, Any]:
    replicas = settings.pods // settings.deployments
    async with connect(address, timeout=60) as client:
        await client.get("namespaces", NAMESPACE)   # connected and warm
        sent = time.monotonic()
        await asyncio.gather(*(client.create(bench_deployment(k, replicas)) for k in range(settings.deployments)))
        return {"sent": sent, "returned": time.monotonic()}


async def measure(c: Cluster, settings: Settings, scheduler: SchedulerProcess | None, synced_at: float,
                  results: Any, hollow_pid: int | None = None, node_api_pid: int | None = None,
                  extra_pids: dict[str, int] | None = None) -> dict[str, Any]:
    ready = asyncio.Event()
    seen: dict[str, float] = {}
    watcher = asyncio.create_task(watch_binds(c.api.address, settings.pods, timeout=settings.timeout, ready=ready,
                                              workload=settings.workload, seen=seen))
    await ready.wait()
    pids = {"api-server": c.api.pid, "etcd": c.etcd.proc.pid}
    if scheduler is not None:
        pids["scheduler"] = scheduler.proc.pid
    if hollow_pid is not None:
        pids["hollow-nodes"] = hollow_pid
    if node_api_pid is not None:
        pids["nodes-api-server"] = node_api_pid
    pids.update(extra_pids or {})
    meter = CpuMeter(dict(pids))
    profiles = []
    if settings.profile:
        for name in ("scheduler", "api-server"):
            if name in pids:
                profiles.append((name, Profile(pids[name], c.work_dir / f"profile-{name}.txt",
                                               seconds=settings.profile_seconds)))
    creators: dict[str, Any] = {}
    returned: dict[str, float] = {}
    start = synced_at
    deployments = settings.workload == "deployments"
    if deployments:
        meter.start()
        for _, profile in profiles:
            profile.start()
        made_deployments = await create_deployments(c.api.address, settings)
        start = made_deployments["sent"]
        bound = await watcher
    elif settings.mode == "burst":
        gate = StartGate(settings.creator_procs)
        with worker_processes(create_worker, creator_kwargs(c, settings, gate, results)) as procs:
            await asyncio.to_thread(gate.wait_ready, procs, timeout=60, what="pod creators to connect")
            meter.start()
            for _, profile in profiles:
                profile.start()
            start = time.monotonic()
            gate.go()
            made = await asyncio.to_thread(collect, results, settings.creator_procs, timeout=settings.timeout,
                                           procs=procs, what="creating pods")
            returned = {name: t for m in made for name, t in m["returned"].items()}
            last_create = max(m["last"] for m in made)
            creators = {"created": len(returned),
                        "errors": dict(sum((collections.Counter(m["errors"]) for m in made), collections.Counter())),
                        "creates_per_second": round(len(returned) / max(last_create - start, 1e-6), 1),
                        "cpu_percent_of_a_core": round(sum(m["cpu_seconds"] for m in made)
                                                       / max(last_create - start, 1e-6) * 100, 1)}
            bound = await watcher
    else:
        meter.start()
        for _, profile in profiles:
            profile.start()
        bound = await watcher
    cpu = meter.stop()
    out: dict[str, Any] = {"creators": creators} if creators else {}
    times = sorted(t for _, t in bound.values())
    end = times[-1] if times else start
    out["window"] = [start, end]
    if deployments:
        firsts = sorted(seen.values())
        out["deployments"] = {"count": settings.deployments, "replicas": settings.pods // settings.deployments,
                              "create_calls_ms": round((made_deployments["returned"] - start) * 1000, 1),
                              "pods_seen": len(seen),
                              "first_pod_seen_s": round(firsts[0] - start, 2) if firsts else None,
                              "last_pod_seen_s": round(firsts[-1] - start, 2) if firsts else None,
                              "pods_created_per_second": round(len(firsts) / max(firsts[-1] - start, 1e-6), 1)
                              if firsts else 0.0}
    elapsed = max(end - start, 1e-6)
    rate = len(bound) / elapsed
    burst = settings.mode == "burst" and not deployments
    goal = GOAL_DEPLOYMENT_PODS_PER_SECOND if deployments else GOAL_PODS_PER_SECOND
    out["result"] = {
        "pods_bound": len(bound), "pods": settings.pods, "seconds": round(elapsed, 2),
        "pods_bound_per_second": round(rate, 1),
        "steady_pods_per_second": steady_rate(times),
        "goal_pods_per_second": goal, "goal_met": rate >= goal}
    if not deployments:
        out["result"].update({"done_pods_per_second": DONE_PODS_PER_SECOND, "done_met": rate >= DONE_PODS_PER_SECOND})
    # from the moment the bench's watch first saw the pod to the moment it saw the bind
    out["result"]["seen_created_to_bound_ms"] = percentiles([t - seen[n] for n, (_, t) in bound.items() if n in seen])
    if deployments:   # no per-pod send stamp: create→bound is from the watch's first sight of the pod
        out["result"]["create_to_bound_ms"] = out["result"]["seen_created_to_bound_ms"]
        out["result"]["deployment_create_to_bound_ms"] = percentiles([t - start for _, t in bound.values()])
    elif burst:
        out["result"]["create_to_bound_ms"] = percentiles([t - s for s, t in bound.values()])
        # the two halves: the create call itself, and from its reply until the bind is seen
        out["result"]["create_call_ms"] = percentiles([returned[n] - s for n, (s, _) in bound.items() if n in returned])
        out["result"]["created_to_bound_ms"] = percentiles([t - returned[n] for n, (_, t) in bound.items()
                                                            if n in returned])
    else:
        out["result"]["start_to_bound_ms"] = percentiles([t - start for _, t in bound.values()])
    out["cpu_percent_of_a_core"] = cpu
    if profiles:
        out["profiles"] = {name: profile.finish(timeout=settings.profile_seconds + 60) for name, profile in profiles}
        if "scheduler" in out["profiles"]:
            by_module(out["profiles"]["scheduler"])
    return out


def steady_rate(times: list[float]) -> float:
    """Binds per second between the 10th and the 90th percentile bind (ramp-up and tail left out)."""
    if len(times) < 10:
        return 0.0
    lo, hi = times[len(times) // 10], times[len(times) * 9 // 10]
    return round((len(times) * 8 // 10) / max(hi - lo, 1e-6), 1)


# Where a scheduler sample is spent, by the innermost frame of the project's own code.
SCHEDULER_AREAS = (("plugins (filter and score)", "controlplane/scheduler/plugins/"),
                   ("framework and sampling (framework.py, algorithm.py)", "controlplane/scheduler/framework.py"),
                   ("framework and sampling (framework.py, algorithm.py)", "controlplane/scheduler/algorithm.py"),
                   ("pod and node parsing (nodeinfo.py, api/)", "controlplane/scheduler/nodeinfo.py"),
                   ("pod and node parsing (nodeinfo.py, api/)", "api/"),
                   ("cache and queue", "controlplane/scheduler/cache.py"),
                   ("cache and queue", "controlplane/scheduler/queue.py"),
                   ("scheduler loop, binds, status updates (scheduler.py)", "controlplane/scheduler/scheduler.py"),
                   ("informers: applying watch events", "controlplane/client/informer.py"),
                   ("events (EventRecorder)", "controlplane/client/events.py"),
                   ("client: gRPC calls and JSON", "controlplane/client/client.py"))


def by_module(profile: dict[str, Any]) -> dict[str, Any]:
    """Add to the scheduler's profile its time by the project's innermost module (what our code spends).
    (Profile's own `by_area` is made for the API server: it files every controlplane/ frame together.)"""
    path = Path(profile.get("file", ""))
    if not path.exists():
        return profile
    areas: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = stack.split(";")
        area = "outside the project (event loop idle, gRPC threads)"
        for frame in reversed(frames):
            hit = next((a for a, needle in SCHEDULER_AREAS if needle in frame), None)
            if hit:
                area = hit
                break
        areas[area] += count
    profile["by_project_module"] = [{"area": a, "percent": round(c / max(samples, 1) * 100, 1)}
                                    for a, c in areas.most_common()]
    return profile


def decide_only(settings: Settings) -> dict[str, Any]:
    """Decisions without servers: Cache with the nodes, then schedule + assume each pod."""
    import random
    from controlplane.scheduler.algorithm import SchedulingAlgorithm, num_feasible_nodes_to_find
    from controlplane.scheduler.cache import Cache
    from controlplane.scheduler.config import SchedulerConfig
    from controlplane.scheduler.nodeinfo import PodInfo
    cache = Cache.from_objects(nodes=[node_object(i, settings.zones) for i in range(settings.nodes)])
    config = SchedulerConfig(seed=1, percentage_of_nodes_to_score=settings.percentage_of_nodes_to_score)
    algorithm = SchedulingAlgorithm(config.build_framework(), rng=random.Random(1),
                                    percentage_of_nodes_to_score=config.percentage_of_nodes_to_score)
    pods = [{**bench_pod(i), "metadata": {**bench_pod(i)["metadata"], "uid": str(i)}} for i in range(settings.pods)]
    t0, cpu0 = time.monotonic(), time.process_time()
    for pod in pods:
        info = PodInfo(pod)
        cache.assume_pod(info, algorithm.schedule(cache, info).node)
    wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    per_node = [len(n.pods) for n in cache.node_list()]
    return {"result": {"pods": settings.pods, "seconds": round(wall, 2),
                       "decisions_per_second": round(settings.pods / wall, 1),
                       "cpu_ms_per_decision": round(cpu / settings.pods * 1000, 3),
                       "nodes_scored_per_pod": num_feasible_nodes_to_find(settings.nodes,
                                                                          settings.percentage_of_nodes_to_score),
                       "pods_per_node_min_max": [min(per_node), max(per_node)]}}


def print_summary(out: dict[str, Any]) -> None:
    if out["settings"]["mode"] == "decide":
        r = out["result"]
        print(f"\nscheduler decisions only: {out['settings']['nodes']} nodes, {r['pods']} pods: "
              f"{r['decisions_per_second']} decisions/s, {r['cpu_ms_per_decision']} ms CPU each, "
              f"{r['nodes_scored_per_pod']} nodes scored per pod; pods per node {r['pods_per_node_min_max']}")
        return
    r = out.get("result", {})
    s = out["settings"]
    where = "inside the API server" if s["embedded"] else "own process"
    nodes = f"hollow nodes renewing Leases every {s['lease_seconds']:g} s" if s["leases"] else "no Leases"
    print(f"\nscheduler bench ({s['workload']}, {s['mode']}, scheduler {where}, {nodes}): "
          f"{s['nodes']} nodes, {s['pods']} pods")
    print(f"  load average at start {out.get('loadavg_start')}, at end {out.get('loadavg_end')}")
    done = (f", resolved at {DONE_PODS_PER_SECOND} {'met' if r.get('done_met') else 'not met'}"
            if "done_met" in r else "")
    print(f"  bound {r.get('pods_bound')}/{s['pods']} in {r.get('seconds')} s: {r.get('pods_bound_per_second')} pods/s "
          f"(steady {r.get('steady_pods_per_second')}); goal {r.get('goal_pods_per_second')} "
          f"{'met' if r.get('goal_met') else 'not met'}{done}")
    if out.get("leases"):
        lz = out["leases"]
        print(f"  lease renewals: {lz['per_second']}/s over {lz['seconds']} s (expected {lz['expected_per_second']}/s; "
              f"slowest second {lz.get('min_second')}, failures {lz['renewal_failures']})")
    if out.get("deployments"):
        d = out["deployments"]
        print(f"  deployments: {d['count']} x {d['replicas']}; pods seen {d['pods_seen']}, first after "
              f"{d['first_pod_seen_s']} s, last after {d['last_pod_seen_s']} s ({d['pods_created_per_second']} created/s)")
    for key in ("create_to_bound_ms", "seen_created_to_bound_ms", "create_call_ms", "created_to_bound_ms",
                "start_to_bound_ms", "deployment_create_to_bound_ms"):
        if key in r:
            print(f"  {key[:-3].replace('_', ' ')}: p50 {r[key].get('p50')} ms, p99 {r[key].get('p99')} ms")
    if out.get("creators"):
        print(f"  creates/s {out['creators']['creates_per_second']} "
              f"(creators used {out['creators']['cpu_percent_of_a_core']}% of a core)")
    print(f"  CPU (% of a core): {out.get('cpu_percent_of_a_core')}")
    for name, p in (out.get("profiles") or {}).items():
        print(f"  profile {name}:")
        rows = p.get("by_project_module") or [{"area": r["function"], "percent": r["percent"]}
                                              for r in p.get("by_area") or []]
        for row in rows[:7]:
            print(f"    {row['percent']:5.1f}%  {row['area']}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=Settings.nodes)
    p.add_argument("--pods", type=int, default=Settings.pods)
    p.add_argument("--zones", type=int, default=Settings.zones)
    p.add_argument("--mode", choices=("burst", "backlog", "decide"), default=Settings.mode)
    p.add_argument("--workload", choices=("plain", "deployments"), default=Settings.workload,
                   help="plain pods from creator processes, or Deployments (controllers on) making the pods")
    p.add_argument("--deployments", type=int, default=Settings.deployments,
                   help="deployments workload: this many Deployments of pods/deployments replicas each")
    p.add_argument("--leases", action=argparse.BooleanOptionalAction, default=Settings.leases,
                   help="hollow nodes renewing Leases (default) or plain Node objects with none (--no-leases)")
    p.add_argument("--lease-seconds", type=float, default=Settings.lease_seconds,
                   help="Lease renewal interval of each hollow node")
    p.add_argument("--node-api-server", action="store_true",
                   help="the hollow nodes talk to a second API server process on the same etcd")
    p.add_argument("--pod-status", action="store_true",
                   help="hollow nodes also report each bound pod Running (one more write per pod)")
    p.add_argument("--percentage-of-nodes-to-score", type=int, default=0)
    p.add_argument("--rate", type=float, default=0.0,
                   help="burst mode: create pods at this many per second (open loop) instead of flat out")
    p.add_argument("--creator-procs", type=int, default=Settings.creator_procs)
    p.add_argument("--controller-manager", action="store_true",
                   help="deployments: run the controllers as their own process (python -m controlplane.controllers)")
    p.add_argument("--embedded", action="store_true",
                   help="run the scheduler inside skiff-controlplane (its default) instead of as its own process")
    p.add_argument("--profile", action="store_true", help="sample scheduler and API server with py-spy")
    p.add_argument("--profile-seconds", type=float, default=Settings.profile_seconds)
    p.add_argument("--output", type=Path, default=None, help="default: bench/results/scheduler[-MODE].json")
    args = p.parse_args()
    if args.workload == "deployments" and args.mode != "burst":
        p.error("--workload deployments runs in burst mode only")
    if args.workload == "deployments" and not args.leases:
        p.error("--workload deployments needs --leases: the node lifecycle controller would taint nodes without")
    if args.workload == "deployments":
        args.pods = args.pods // args.deployments * args.deployments
    settings = Settings(nodes=args.nodes, pods=args.pods, zones=args.zones, mode=args.mode,
                        percentage_of_nodes_to_score=args.percentage_of_nodes_to_score,
                        creator_procs=args.creator_procs, rate=args.rate, embedded=args.embedded, profile=args.profile,
                        controller_manager=args.controller_manager,
                        profile_seconds=args.profile_seconds, workload=args.workload, deployments=args.deployments,
                        leases=args.leases, lease_seconds=args.lease_seconds, pod_status=args.pod_status,
                        node_api_server=args.node_api_server)
    if settings.mode == "decide":
        out = {"benchmark": "scheduler-decide", "command": "python bench/scheduler.py " + " ".join(sys.argv[1:]),
               "machine": machine_info(), "settings": asdict(settings), **decide_only(settings)}
    else:
        out = run(settings)
    suffix = (("" if settings.mode == "burst" else f"-{settings.mode}")
              + ("-deployments" if settings.workload == "deployments" else "")
              + ("" if settings.leases or settings.mode == "decide" else "-noleases")
              + ("-embedded" if settings.embedded else ""))
    path = write_results(args.output or RESULTS_DIR / f"scheduler{suffix}.json", out)
    print(json.dumps(out.get("result"), indent=2))
    print_summary(out)
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
