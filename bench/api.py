"""Benchmark of the API server: create throughput, latency under a mixed load, watch fan-out.

    .venv/bin/python bench/api.py              # the figures in docs/PERFORMANCE.md (about 2 minutes)
    .venv/bin/python bench/api.py --profile    # also sample the API server with py-spy during scenario 1
    .venv/bin/python bench/api.py --quick      # 1 s per scenario, 50 watchers: checks the script works
    .venv/bin/python bench/api.py --only create --only mixed --compare-insecure --as-editor --rounds 2
                                               # the cost of TLS and RBAC: the same two scenarios against
                                               # a second API server run with --insecure, both up
                                               # throughout, alternating which goes first each round
    .venv/bin/python bench/api.py --only rest  # creates/s through the Kubernetes REST API vs gRPC

It starts its own etcd (data in a temp dir on disk) and its own `skiff-controlplane`
without scheduler and controllers, so only the API server is measured; see
bench/common.py. The server speaks TLS and the load authenticates with the admin's client
certificate, as users run it (`--insecure`: plain text throughout). The load comes from separate processes:

1. Create throughput: 50 clients (asyncio tasks over a few gRPC channels, split
   over --load-procs processes), each creating small, realistic Pods back to back.
2. Mixed load: a fixed arrival rate (open loop: request k is due at start + k/rate
   and its latency counts from then, so a slow server cannot slow the load down and
   hide its own delay — "coordinated omission"), 1/3 create, 1/3 update (of a pod
   created earlier, with the resourceVersion its last write returned), 1/3 get.
3. Watch fan-out, two shapes:
   - kubelet: 5,000 watchers, each watching pods with `spec.nodeName=node-<i>`
     as every agent does, while pods bound to random nodes are created and
     updated at 100 events/s; each event reaches one watcher.
   - broadcast: 50 watchers of every pod in a namespace (like controllers); each
     event reaches all 50.
   A pod carries the moment its write was due in an annotation; the delay is the
   moment the watcher receives the event minus that. (CLOCK_MONOTONIC is one clock
   for the whole machine on Linux, so the processes' timestamps compare.)
4. Cost: the API server's CPU per request of each verb (create, get, update, bind
   with its Scheduled event, each watch event delivered), read from /proc around a
   run of one verb at a time, and of a bare gRPC call to a server that does nothing:
   the floor every request pays in gRPC's Python layer before any of our code runs (in plain
   text: the API server's figures include TLS, the floor's do not).
5. REST: scenario 1 through the Kubernetes REST API (controlplane/rest: each client POSTs on
   its own keep-alive HTTPS connection, one request at a time, as kubectl and client-go do),
   against scenario 1 over gRPC on the same server in the same run — request streams (what
   controlplane.client sends; issue 14's goal: REST >= 0.7x) and a gRPC call per create.

Results go to bench/results/api.json and are summarised on stdout.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

import argparse  # noqa: E402
import asyncio  # noqa: E402
import collections  # noqa: E402
import contextlib  # noqa: E402
import copy  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from typing import Any, Awaitable, Callable  # noqa: E402

from bench.common import (RESULTS_DIR, SPAWN, Cluster, CpuMeter, EtcdMeter, Profile, StartGate, cluster,  # noqa: E402
                          collect, machine_info, percentiles, wait_for, wait_until_idle, worker_processes,
                          write_results)

GOAL_CREATES_PER_SECOND = 2000
DONE_CREATES_PER_SECOND = 1000
GOAL_MIXED_P99_MS = 25.0
GOAL_FANOUT_P99_MS = 250.0
SENT = "bench.skiff.dev/sent"
# The server writes compact JSON, so the annotation reads "key":"value" with no spaces.
SENT_PATTERN = re.compile(rb'"bench\.skiff\.dev/sent":"([0-9.]+)"')
VERBS = ("create", "update", "get")
SCENARIOS = ("create", "mixed", "fanout", "cost", "rest")
GOAL_REST_RATIO = 0.7          # issue 14: creates/s through REST >= 0.7x through gRPC, same run
GOAL_TLS_RATIO = 0.9           # issue 11: creates/s with TLS + authorization >= 0.9x --insecure, same run


# Flag and setting declarations: alike in shape to other programs' (the `duplicates` tool pairs
# them), each program its own.
@dataclass
class Settings:
    create_seconds: float = 10.0
    create_clients: int = 50
    mixed_seconds: float = 20.0
    mixed_rate: float = 500.0
    fanout_seconds: float = 20.0
    watchers: int = 5000
    event_rate: float = 100.0
    broadcast_watchers: int = 50
    broadcast_seconds: float = 10.0
    load_procs: int = 2
    watch_procs: int = 2
    sweep_rates: tuple[float, ...] = (100.0, 200.0, 300.0)   # then lower rates, briefly
    sweep_seconds: float = 5.0
    streams_per_channel: int = 100
    watch_open_rate: float = 500.0    # new watch streams per second, over all watch processes
    cost_requests: int = 2000         # scenario 4: requests per verb

    @classmethod
    def quick(cls) -> "Settings":
        return cls(create_seconds=1, mixed_seconds=1, mixed_rate=200, sweep_rates=(100,), sweep_seconds=0.5,
                   fanout_seconds=1, watchers=50, broadcast_watchers=5, broadcast_seconds=1, cost_requests=100)


def bench_pod(name: str, namespace: str, *, node: str | None = None,
              annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """A small pod as a Deployment would stamp it: one container, requests and limits, labels."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace,
                            "labels": {"app": "web", "tier": "frontend", "pod-template-hash": "7d4b9c8f5"}}
    if annotations:
        meta["annotations"] = annotations
    spec: dict[str, Any] = {"containers": [{
        "name": "web", "image": "docker.io/library/nginx:1.25",
        "ports": [{"containerPort": 8080, "name": "http"}],
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                      "limits": {"cpu": "500m", "memory": "128Mi"}}}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


# -- inside a load process ------------------------------------------------------------------

def _channel(address: str) -> Any:
    from bench.common import credentials_for
    # A local subchannel pool gives each channel its own TCP connection (by default
    # channels with the same target and options in one process share one). TLS unless the
    # address is http:// (--insecure): a handshake per connection, none per request.
    return credentials_for(address).channel(address, options=[("grpc.use_local_subchannel_pool", 1),
                                                              ("grpc.max_receive_message_length", 64 * 1024 * 1024)])


def _clients(address: str, count: int, *, request_stream: bool = True) -> list[Any]:
    from controlplane.client import Client
    return [Client(address, channel=_channel(address), timeout=10, request_stream=request_stream)
            for _ in range(count)]


def _run_in_process(results: Any, work: Callable[[], Awaitable[dict[str, Any]]]) -> None:
    """A worker process's body: run the coroutine, put its result (or its failure) on the queue."""
    try:
        results.put(asyncio.run(work()))
    except BaseException as exc:  # noqa: BLE001 — the parent reports it
        traceback.print_exc()
        results.put({"error": f"{type(exc).__name__}: {exc}"})


async def _open_loop(*, rate: float, seconds: float, index: int, procs: int,
                     request: Callable[[int, float], Awaitable[None]]) -> list[float]:
    """Start request k = seq*procs + index at start + k/rate, whatever the earlier ones are
    doing; return how late each one actually started (the generator's own lag)."""
    start = time.monotonic()
    count = int(seconds * rate / procs)
    lags: list[float] = []
    tasks = []
    for seq in range(count):
        intended = start + (seq * procs + index) / rate
        delay = intended - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        lags.append(max(0.0, time.monotonic() - intended))
        tasks.append(asyncio.create_task(request(seq * procs + index, intended)))
    await asyncio.gather(*tasks)
    return lags


async def _create_load(*, clients: int, seconds: float, gate: StartGate,
                       create: Callable[[int, int], Awaitable["str | None"]]) -> dict[str, Any]:
    """`clients` tasks, each calling create(client, n) back to back from the gate's go until
    `seconds` have passed; create returns None, or the error's text."""
    latencies: list[float] = []
    errors: collections.Counter[str] = collections.Counter()
    gate.arrive()
    await gate.wait_for_go()
    start = time.monotonic()
    deadline = start + seconds

    async def one_client(i: int) -> None:
        n = 0
        while time.monotonic() < deadline:
            t = time.monotonic()
            error = await create(i, n)
            if error is None:
                latencies.append(time.monotonic() - t)
            else:
                errors[error] += 1
            n += 1
    await asyncio.gather(*(one_client(i) for i in range(clients)))
    return {"created": len(latencies), "elapsed": time.monotonic() - start, "latencies": latencies,
            "errors": dict(errors)}


def create_worker(*, address: str, namespace: str, clients: int, index: int, seconds: float, gate: StartGate,
                  results: Any, unary: bool = False) -> None:
    """`clients` clients creating pods back to back, over request streams (or with `unary`, a gRPC
    call per create, as a plain gRPC client sends them)."""
    async def work() -> dict[str, Any]:
        from controlplane.client import ApiError
        conns = _clients(address, max(1, math.ceil(clients / 10)), request_stream=not unary)
        for c in conns:
            await c.get("namespaces", namespace)  # connected and warm

        async def create(i: int, n: int) -> str | None:
            try:
                await conns[i % len(conns)].create(bench_pod(f"c{index}-{i}-{n}", namespace))
                return None
            except ApiError as exc:
                return exc.message[:120]
        out = await _create_load(clients=clients, seconds=seconds, gate=gate, create=create)
        for c in conns:
            await c.close()
        return out
    _run_in_process(results, work)


def _rest_ssl(address: str) -> Any:
    """The TLS context of a REST client with the same credential as the gRPC load (None: plain http)."""
    import ssl
    import tempfile
    from bench.common import credentials_for
    creds = credentials_for(address)
    if creds.insecure:
        return None
    context = ssl.create_default_context(cadata=creds.ca.decode())
    with tempfile.TemporaryDirectory() as tmp:   # ssl loads a key pair from files only
        cert, key = Path(tmp) / "client.crt", Path(tmp) / "client.key"
        cert.write_bytes(creds.cert)
        key.touch(mode=0o600)
        key.write_bytes(creds.key)
        context.load_cert_chain(str(cert), str(key))
    return context


def rest_create_worker(*, address: str, url: str, namespace: str, clients: int, index: int, seconds: float,
                       gate: StartGate, results: Any) -> None:
    """As create_worker, through the Kubernetes REST API: each client POSTs pods back to back on its
    own keep-alive HTTPS connection, as a kubectl or client-go process does (one request at a time
    on an HTTP/1.1 connection)."""
    async def work() -> dict[str, Any]:
        import aiohttp
        context = _rest_ssl(address)
        connector = aiohttp.TCPConnector(limit=0, ssl=context if context is not None else False)
        session = aiohttp.ClientSession(connector=connector)
        endpoint = f"{url}/api/v1/namespaces/{namespace}/pods"
        headers = {"Content-Type": "application/json", "Accept": "application/json"}

        async def warm() -> None:
            async with session.get(f"{url}/api/v1/namespaces/{namespace}") as response:
                if response.status != 200:
                    raise RuntimeError(f"REST API: GET namespace answered {response.status}: {await response.text()}")
        # One connection per client, each connected (TLS handshake done) and warm before the start, as
        # the gRPC load's channels are.
        await asyncio.gather(*(warm() for _ in range(clients)))

        async def create(i: int, n: int) -> str | None:
            body = json.dumps(bench_pod(f"r{index}-{i}-{n}", namespace)).encode()
            async with session.post(endpoint, data=body, headers=headers) as response:
                answer = await response.read()
            if response.status != 201:
                return f"{response.status}: {answer[:120].decode(errors='replace')}"
            json.loads(answer)   # decoded, as the gRPC Client decodes its reply
            return None
        out = await _create_load(clients=clients, seconds=seconds, gate=gate, create=create)
        await session.close()
        return out
    _run_in_process(results, work)


def mixed_worker(*, address: str, namespace: str, phases: list[tuple[float, float]], index: int, procs: int,
                 pool_size: int, gates: list[StartGate], results: Any) -> None:
    """Phases of (rate, seconds) one after another, each started by its own gate."""
    async def work() -> dict[str, Any]:
        from controlplane.client import ApiError
        conns = _clients(address, 4)
        pool: dict[str, dict[str, Any]] = {}   # name → the latest version this process wrote
        busy: set[str] = set()                  # names with an update in flight

        async def precreate(i: int) -> None:
            obj = await conns[i % len(conns)].create(bench_pod(f"m{index}-pool-{i}", namespace))
            pool[obj["metadata"]["name"]] = obj
        for batch in range(0, pool_size, 20):
            await asyncio.gather(*(precreate(i) for i in range(batch, min(batch + 20, pool_size))))
        names = list(pool)
        serial = itertools.count()
        latencies: dict[str, list[float]] = {}
        errors: collections.Counter[str] = collections.Counter()

        async def request(k: int, intended: float) -> None:
            verb, conn = VERBS[k % 3], conns[k % len(conns)]
            name = ""
            try:
                if verb == "create":
                    obj = await conn.create(bench_pod(f"m{index}-{next(serial)}", namespace))
                    name = obj["metadata"]["name"]
                    pool[name] = obj
                    names.append(name)
                elif verb == "update":
                    if len(busy) >= len(names):
                        # An overloaded server has an update in flight for every pod: a loop looking
                        # for a free one would never end (and block this process's event loop).
                        errors["update: every pod has an update in flight"] += 1
                        return
                    name = random.choice(names)
                    while name in busy:
                        name = random.choice(names)
                    busy.add(name)
                    obj = copy.deepcopy(pool[name])
                    obj["metadata"].setdefault("annotations", {})["bench.skiff.dev/seq"] = str(k)
                    pool[name] = await conn.update(obj)
                else:
                    await conn.get("pods", random.choice(names), namespace)
                latencies[verb].append(time.monotonic() - intended)
            except ApiError as exc:
                errors[f"{verb}: {exc.message[:120]}"] += 1
            finally:
                if verb == "update":
                    busy.discard(name)

        out = []
        for (rate, seconds), gate in zip(phases, gates):
            latencies = {verb: [] for verb in VERBS}
            errors = collections.Counter()
            gate.arrive()
            await gate.wait_for_go()
            start = time.monotonic()
            lags = await _open_loop(rate=rate, seconds=seconds, index=index, procs=procs, request=request)
            out.append({"latencies": latencies, "lags": lags, "elapsed": time.monotonic() - start,
                        "errors": dict(errors)})
        for c in conns:
            await c.close()
        return {"phases": out}
    _run_in_process(results, work)


def watch_worker(*, address: str, namespace: str, selectors: list[str], resource_version: str,
                 streams_per_channel: int, open_rate: float, gate: StartGate, stop: Any, received: Any,
                 results: Any) -> None:
    """Hold one watch stream per selector until `stop`; record each event's delivery delay."""
    async def work() -> dict[str, Any]:
        import grpc
        from protos import skiff_pb2 as pb, skiff_pb2_grpc as pb_grpc
        channels = [_channel(address) for _ in range(math.ceil(len(selectors) / streams_per_channel))]
        stubs = [pb_grpc.ApiStub(c) for c in channels]
        delays: list[float] = []
        calls: list[Any] = []
        refused = 0
        stopping = False

        async def follow(i: int, selector: str) -> None:
            nonlocal refused
            while True:
                # allow_batching, as controlplane.client's watches do: events that queue up for a
                # watcher arrive together, in one message.
                call = stubs[i % len(stubs)].Watch(pb.WatchRequest(
                    kind="pods", namespace=namespace, field_selector=selector, resource_version=resource_version,
                    allow_batching=True))
                calls.append(call)
                try:
                    async for message in call:
                        now = time.monotonic()
                        for event in (message, *message.more):
                            # A regex on the raw bytes, not json.loads: the watcher is not what we measure.
                            found = SENT_PATTERN.search(event.object)
                            if found:
                                delays.append(now - float(found.group(1)))
                            received.value += 1
                    return
                except grpc.aio.AioRpcError as exc:
                    # gRPC's server drops some new calls while more than about 1,000 wait to be
                    # taken by the application; a real agent watches again, and so do we, from
                    # the same resourceVersion, so no event is lost.
                    if stopping or exc.code() != grpc.StatusCode.CANCELLED:
                        raise
                    refused += 1
                    await asyncio.sleep(0.2 + random.random())

        t0 = time.monotonic()
        await asyncio.gather(*(c.channel_ready() for c in channels))
        # The server sends nothing on a watch until there is an event, so the client cannot
        # see when a stream is subscribed. The requests go out now, at most `open_rate` a second;
        # the parent then waits until the API server and this process are quiet. Every watch
        # starts from one resourceVersion, so one subscribed late still gets every event (late),
        # and the delays would show it.
        tasks = []
        for i, selector in enumerate(selectors):
            tasks.append(asyncio.create_task(follow(i, selector)))
            if i % 50 == 49:
                await asyncio.sleep(50 / open_rate)
        connect_seconds = time.monotonic() - t0
        gate.arrive()
        while not await asyncio.to_thread(stop.wait, 1.0):
            pass
        stopping = True
        for call in calls:
            call.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        failures = [repr(o) for o in outcomes
                    if isinstance(o, BaseException) and not isinstance(o, asyncio.CancelledError)
                    and not (isinstance(o, grpc.aio.AioRpcError) and o.code() == grpc.StatusCode.CANCELLED)]
        for c in channels:
            await c.close()
        return {"delays": delays, "connect_seconds": connect_seconds, "failures": failures[:5],
                "failed_streams": len(failures), "refused_and_retried": refused}
    _run_in_process(results, work)


def event_writer(*, address: str, namespace: str, rate: float, seconds: float, nodes: int, gate: StartGate,
                 results: Any) -> None:
    """Create and update pods bound to random nodes at `rate` events/s (open loop); each
    write carries the moment it was due in an annotation."""
    async def work() -> dict[str, Any]:
        from controlplane.client import ApiError
        conns = _clients(address, 2)
        pods: dict[str, dict[str, Any]] = {}
        busy: set[str] = set()
        acks: list[float] = []
        written: collections.Counter[str] = collections.Counter()
        errors: collections.Counter[str] = collections.Counter()

        async def request(k: int, intended: float) -> None:
            conn = conns[k % len(conns)]
            free = [n for n in pods if n not in busy] if k % 2 else []
            stamp = {SENT: f"{intended:.6f}"}
            name = ""
            try:
                if free:
                    name = random.choice(free)
                    busy.add(name)
                    obj = copy.deepcopy(pods[name])
                    obj["metadata"].setdefault("annotations", {}).update(stamp)
                    pods[name] = await conn.update(obj)
                    written["update"] += 1
                else:
                    obj = await conn.create(bench_pod(f"f{k}", namespace, node=f"node-{random.randrange(nodes)}",
                                                      annotations=stamp))
                    pods[obj["metadata"]["name"]] = obj
                    written["create"] += 1
                acks.append(time.monotonic() - intended)
            except ApiError as exc:
                errors[exc.message[:120]] += 1
            finally:
                busy.discard(name)

        await conns[0].get("namespaces", namespace)
        gate.arrive()
        await gate.wait_for_go()
        start = time.monotonic()
        lags = await _open_loop(rate=rate, seconds=seconds, index=0, procs=1, request=request)
        elapsed = time.monotonic() - start
        for c in conns:
            await c.close()
        return {"written": dict(written), "acks": acks, "lags": lags, "elapsed": elapsed, "errors": dict(errors)}
    _run_in_process(results, work)


def cost_worker(*, address: str, floor_address: str, namespace: str, requests: int, server_pid: int,
                floor_pid: int, results: Any) -> None:
    """Scenario 4: each verb `requests` times, 32 in flight, one verb at a time; the API server's
    CPU (read from /proc) per request of each. A bare gRPC call to a server that does nothing
    (`floor_address`) is the floor every request pays."""
    async def work() -> dict[str, Any]:
        from bench.common import cpu_seconds
        from protos import skiff_pb2 as pb, skiff_pb2_grpc as pb_grpc
        client = _clients(address, 1)[0]
        floor_channel = _channel(floor_address)
        floor = pb_grpc.ApiStub(floor_channel)
        gate = asyncio.Semaphore(32)
        out: dict[str, Any] = {}

        async def measure(label: str, pid: int, call: Callable[[int], Awaitable[Any]], *, calls: int = requests,
                          per_call: int = 1) -> None:
            """`calls` calls, each doing `per_call` requests' work; CPU per request."""
            async def one(i: int) -> None:
                async with gate:
                    await call(i)
            await asyncio.sleep(0.5)   # let the server finish the previous verb's aftermath
            cpu0, t0 = cpu_seconds(pid), time.monotonic()
            await asyncio.gather(*(one(i) for i in range(calls)))
            cpu, wall = cpu_seconds(pid) - cpu0, time.monotonic() - t0
            out[label] = {"cpu_ms_per_request": round(cpu / (calls * per_call) * 1000, 3),
                          "requests_per_second": round(calls * per_call / wall, 1)}

        nodes = [f"cost-node-{n}" for n in range(max(1, requests // 20))]   # 20 pods a node, as a full cluster
        for name in nodes:
            node = await client.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
            node["status"] = {"allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"}}
            await client.update_status(node)
        await floor.Get(pb.GetRequest(kind="pods"))
        await measure("bare gRPC call (a server that does nothing)", floor_pid,
                      lambda i: floor.Get(pb.GetRequest(kind="pods", name=str(i))))
        pods: list[dict[str, Any]] = [{} for _ in range(requests)]

        async def create(i: int) -> None:
            pods[i] = await client.create(bench_pod(f"cost-{i}", namespace))
        await measure("create pod", server_pid, create)
        await measure("get pod", server_pid, lambda i: client.get("pods", f"cost-{i}", namespace))

        async def update(i: int) -> None:
            pods[i]["metadata"].setdefault("annotations", {})["bench.skiff.dev/seq"] = "1"
            pods[i] = await client.update(pods[i])
        await measure("update pod", server_pid, update)
        half = requests // 2 // 25 * 25
        await measure("bind pod, with its Scheduled event", server_pid, calls=half,
                      call=lambda i: client.bind(namespace, f"cost-{i}", nodes[i % len(nodes)],
                                                 scheduled_event="Successfully assigned", event_source="bench"))

        async def bind_batch(j: int) -> None:   # 25 binds per BindMany request, as the scheduler sends them
            first = half + j * 25
            await client.bind_many([{"namespace": namespace, "name": f"cost-{i}", "node_name": nodes[i % len(nodes)],
                                     "scheduled_event": "Successfully assigned", "event_source": "bench"}
                                    for i in range(first, first + 25)])
        await measure("bind pod in a BindMany of 25 (per pod)", server_pid, bind_batch,
                      calls=(requests - half) // 25, per_call=25)
        # Watch deliveries: the same updates again with 4 watchers of the namespace; the extra
        # CPU over the plain updates, per event delivered.
        listed = await client.list("pods", namespace)
        pods[:] = sorted(listed.items, key=lambda p: int(p["metadata"]["name"].split("-")[1]))
        received = [0] * 4

        async def follow(k: int) -> None:
            async for _ in client.watch("pods", namespace, resource_version=listed.resource_version):
                received[k] += 1
                if received[k] >= requests:
                    return
        watchers = [asyncio.ensure_future(follow(k)) for k in range(4)]
        await measure("update pod, 4 watchers", server_pid, update)
        await asyncio.wait_for(asyncio.gather(*watchers), 60)
        plain, watched = out["update pod"]["cpu_ms_per_request"], out["update pod, 4 watchers"]["cpu_ms_per_request"]
        out["each watch event delivered, per watcher"] = {"cpu_ms_per_request": round((watched - plain) / 4, 3)}
        await client.close()
        await floor_channel.close()
        return out
    _run_in_process(results, work)


def floor_server(*, port: int, ready: Any) -> None:
    """A gRPC server whose Get does nothing: what any request costs the API server's framework."""
    async def serve() -> None:
        import grpc
        from protos import skiff_pb2 as pb, skiff_pb2_grpc as pb_grpc

        class Nothing(pb_grpc.ApiServicer):
            async def Get(self, request: Any, context: Any) -> Any:
                return pb.ObjectResponse(object=b"{}")
        server = grpc.aio.server()
        pb_grpc.add_ApiServicer_to_server(Nothing(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        ready.set()
        await server.wait_for_termination()
    asyncio.run(serve())


# -- in the bench's own process ----------------------------------------------------------------

def _sync_call(address: str, method: str, request: Any) -> Any:
    """One blocking gRPC call (the parent process runs no event loop)."""
    from bench.common import credentials_for
    from protos import skiff_pb2_grpc as pb_grpc
    with credentials_for(address).sync_channel(address) as channel:
        return getattr(pb_grpc.ApiStub(channel), method)(request, timeout=10)


def make_namespace(address: str, name: str) -> None:
    from protos import skiff_pb2 as pb
    manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    _sync_call(address, "Create", pb.CreateRequest(object=json.dumps(manifest).encode()))


def list_revision(address: str, namespace: str) -> str:
    from protos import skiff_pb2 as pb
    return _sync_call(address, "List", pb.ListRequest(kind="pods", namespace=namespace)).resource_version


EDITOR = "bench-editor"


def use_editor(cl: Cluster) -> None:
    """From now on the load runs as user bench-editor (a client certificate from the cluster CA)
    with the default `edit` role, plus what the scenarios need beyond it (namespaces, nodes and
    binds, as the scheduler has), through ClusterRoleBindings: every request is decided by RBAC
    instead of system:masters' shortcut."""
    from bench.common import KUBECONFIG_ENV
    from controlplane.client import kubeconfig
    from controlplane.pki.ca import ClusterPKI
    from protos import skiff_pb2 as pb
    rbac = "rbac.authorization.k8s.io/v1"
    objects = [
        {"apiVersion": rbac, "kind": "ClusterRole", "metadata": {"name": "bench-extra"},
         "rules": [{"apiGroups": [""], "resources": ["namespaces", "nodes"], "verbs": ["get", "create"]},
                   {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["update"]},
                   {"apiGroups": [""], "resources": ["pods/binding"], "verbs": ["create"]}]},
        *({"apiVersion": rbac, "kind": "ClusterRoleBinding", "metadata": {"name": f"{EDITOR}-{role}"},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
           "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": EDITOR}]}
          for role in ("edit", "bench-extra")),
    ]
    for obj in objects:
        _sync_call(cl.api.address, "Create", pb.CreateRequest(object=json.dumps(obj).encode()))
    pki = ClusterPKI(cl.api.state_dir / "pki")
    pair = pki.issue(common_name=EDITOR, client=True)
    path = cl.work_dir / "editor.conf"
    kubeconfig.write(path, kubeconfig.build(cluster="bench", server=cl.api.address, ca=pki.ca_pem, user=EDITOR,
                                            cert=pair.cert, key=pair.key))
    os.environ[KUBECONFIG_ENV] = str(path)
    time.sleep(0.5)   # the API server's RBAC index follows its watch caches within milliseconds


def settle(clusters: list[Cluster]) -> None:
    """Wait (up to 20 s) until the API servers and etcds of `clusters` are idle."""
    try:
        wait_until_idle([p for c in clusters for p in (c.api.pid, c.etcd.proc.pid)], below_percent=10, timeout=20)
    except TimeoutError:
        pass   # a busy machine: run anyway (the load average is in the results)


def split(total: int, parts: int) -> list[int]:
    """total as `parts` near-equal whole numbers (dropping zeros)."""
    return [n for n in (total // parts + (1 if i < total % parts else 0) for i in range(parts)) if n]


def cpu_per_request(cpu_percent: dict[str, float], per_second: float) -> dict[str, float]:
    """Each process's CPU per request, in ms: % of a core / requests per second."""
    return {name: round(pct / 100 / per_second * 1000, 3) for name, pct in cpu_percent.items()
            if per_second > 0 and pct == pct}


def run_create(cl: Cluster, s: Settings, *, profile_to: Path | None, native: bool = False, rest: bool = False,
               unary: bool = False, namespace: str = "bench-create") -> dict[str, Any]:
    """Scenario 1 over gRPC (request streams, as controlplane.client sends; with `unary` a call per
    create), or with `rest` through the Kubernetes REST API (an HTTPS request per create, as kubectl
    and client-go send)."""
    make_namespace(cl.api.address, namespace)
    shares = split(s.create_clients, s.load_procs)
    gate, results = StartGate(len(shares)), SPAWN.Queue()
    kwargs = [dict(address=cl.api.address, namespace=namespace, clients=n, index=i, seconds=s.create_seconds,
                   gate=gate, results=results) for i, n in enumerate(shares)]
    if rest:
        url = f"{'http' if cl.api.insecure else 'https'}://127.0.0.1:{cl.api.rest_port}"
        for kw in kwargs:
            kw["url"] = url
    elif unary:
        for kw in kwargs:
            kw["unary"] = True
    profile: Profile | None = None
    with worker_processes(rest_create_worker if rest else create_worker, kwargs) as procs:
        gate.wait_ready(procs, timeout=60, what="the create load processes to connect")
        meter = CpuMeter({"api-server": cl.api.pid, "etcd": cl.etcd.proc.pid,
                          **{f"load-{i}": p.pid for i, p in enumerate(procs)}})
        if profile_to is not None:
            profile = Profile(cl.api.pid, profile_to, seconds=s.create_seconds, native=native)
            profile.start()
        etcd = EtcdMeter(cl.etcd.endpoint)
        meter.start()
        etcd.start()
        gate.go()
        out = collect(results, len(procs), timeout=s.create_seconds + 60, procs=procs, what="the create load")
        cpu, etcd_disk = meter.stop(), etcd.stop()
    created = sum(r["created"] for r in out)
    elapsed = max(r["elapsed"] for r in out)
    errors: collections.Counter[str] = collections.Counter()
    for r in out:
        errors.update(r["errors"])
    rate = created / elapsed
    result = {"api": "REST (HTTPS request per create)" if rest else
              "gRPC (a call per create)" if unary else "gRPC (request streams)",
              "clients": s.create_clients, "load_processes": len(shares), "seconds": round(elapsed, 2),
              "created": created, "errors": sum(errors.values()), "error_samples": dict(errors.most_common(3)),
              "creates_per_second": round(rate, 1),
              "latency_ms": percentiles([x for r in out for x in r["latencies"]]), "cpu_percent": cpu,
              "cpu_ms_per_create": cpu_per_request(cpu, rate),
              "etcd": etcd_disk,
              "goal_creates_per_second": GOAL_CREATES_PER_SECOND, "done_creates_per_second": DONE_CREATES_PER_SECOND,
              "goal_met": rate >= GOAL_CREATES_PER_SECOND, "done_met": rate >= DONE_CREATES_PER_SECOND}
    if profile is not None:
        result["profile"] = profile.finish()
    return result


def run_mixed(cl: Cluster, s: Settings, namespace: str = "bench-mixed") -> dict[str, Any]:
    """The headline rate, then a short sweep of lower rates: where does p99 <= 25 ms hold?"""
    make_namespace(cl.api.address, namespace)
    procs_n = s.load_procs
    phases = [(s.mixed_rate, s.mixed_seconds)] + [(rate, s.sweep_seconds) for rate in s.sweep_rates]
    gates, results = [StartGate(procs_n) for _ in phases], SPAWN.Queue()
    kwargs = [dict(address=cl.api.address, namespace=namespace, phases=phases, index=i, procs=procs_n,
                   pool_size=100, gates=gates, results=results) for i in range(procs_n)]
    measured = []
    with worker_processes(mixed_worker, kwargs) as procs:
        for (rate, seconds), gate in zip(phases, gates):
            gate.wait_ready(procs, timeout=3 * seconds + 60, what=f"the mixed load processes to be ready for {rate}/s")
            wait_until_idle([cl.api.pid], below_percent=20, timeout=20)
            meter = CpuMeter({"api-server": cl.api.pid, "etcd": cl.etcd.proc.pid,
                              **{f"load-{i}": p.pid for i, p in enumerate(procs)}})
            etcd = EtcdMeter(cl.etcd.endpoint)
            meter.start()
            etcd.start()
            gate.go()
            # A phase is over when every process is ready for the next, or has sent its results.
            if gate is not gates[-1]:
                gates[gates.index(gate) + 1].wait_ready(procs, timeout=3 * seconds + 60,
                                                       what=f"the {rate}/s phase to end")
                measured.append((meter.stop(), etcd.stop()))
        out = collect(results, procs_n, timeout=3 * s.mixed_seconds + 60, procs=procs, what="the mixed load")
        measured.append((meter.stop(), etcd.stop()))
    summaries = [_mixed_phase(rate, seconds, [r["phases"][i] for r in out], cpu, etcd_disk)
                 for i, ((rate, seconds), (cpu, etcd_disk)) in enumerate(zip(phases, measured))]
    headline = summaries[0]
    headline["load_processes"] = procs_n
    headline["sweep"] = [{"rate": p["rate"], "seconds": p["seconds"], "completed_per_second": p["completed_per_second"],
                          "p99_ms": {verb: v["latency_ms"].get("p99") for verb, v in p["verbs"].items()},
                          "p50_ms": {verb: v["latency_ms"].get("p50") for verb, v in p["verbs"].items()},
                          "cpu_percent": p["cpu_percent"], "errors": p["errors"], "goal_met": p["goal_met"]}
                         for p in summaries[1:]]
    return headline


def _mixed_phase(rate: float, seconds: float, out: list[dict[str, Any]], cpu: dict[str, float],
                 etcd_disk: dict[str, float]) -> dict[str, Any]:
    verbs = {}
    for verb in VERBS:
        lat = percentiles([x for r in out for x in r["latencies"][verb]])
        verbs[verb] = {"latency_ms": lat, "goal_met": lat.get("p99", math.inf) <= GOAL_MIXED_P99_MS}
    errors: collections.Counter[str] = collections.Counter()
    for r in out:
        errors.update(r["errors"])
    done = sum(len(r["lags"]) for r in out)
    elapsed = max(r["elapsed"] for r in out)
    return {"rate": rate, "seconds": seconds, "requests": done, "completed_per_second": round(done / elapsed, 1),
            "cpu_ms_per_request": cpu_per_request(cpu, done / elapsed),
            "errors": sum(errors.values()), "error_samples": dict(errors.most_common(3)), "verbs": verbs,
            "generator_lag_ms": percentiles([x for r in out for x in r["lags"]]), "cpu_percent": cpu,
            "etcd": etcd_disk, "goal_p99_ms": GOAL_MIXED_P99_MS,
            "goal_met": all(v["goal_met"] for v in verbs.values())}


def run_cost(cl: Cluster, s: Settings) -> dict[str, Any]:
    """Scenario 4: the API server's CPU per request of each verb, and of a bare gRPC call."""
    from bench.common import free_port
    namespace = "bench-cost"
    make_namespace(cl.api.address, namespace)
    port, ready, results = free_port(), SPAWN.Event(), SPAWN.Queue()
    with worker_processes(floor_server, [dict(port=port, ready=ready)]) as floor:
        wait_for(ready.is_set, timeout=30, what="the bare gRPC server to start")
        kwargs = [dict(address=cl.api.address, floor_address=f"http://127.0.0.1:{port}", namespace=namespace,  # plain text
                       requests=s.cost_requests, server_pid=cl.api.pid, floor_pid=floor[0].pid, results=results)]
        with worker_processes(cost_worker, kwargs) as procs:
            out = collect(results, 1, timeout=300, procs=procs, what="the per-request cost")[0]
    return {"requests_per_verb": s.cost_requests, "in_flight": 32, "verbs": out}


def run_fanout(cl: Cluster, s: Settings, *, shape: str) -> dict[str, Any]:
    """One fan-out shape: `kubelet` (one watcher per node) or `broadcast` (all see all)."""
    kubelet = shape == "kubelet"
    watchers = s.watchers if kubelet else s.broadcast_watchers
    seconds = s.fanout_seconds if kubelet else s.broadcast_seconds
    namespace = f"bench-fanout-{shape}"
    make_namespace(cl.api.address, namespace)
    revision = list_revision(cl.api.address, namespace)
    selectors = [f"spec.nodeName=node-{i}" for i in range(watchers)] if kubelet else [""] * watchers
    shares = split(len(selectors), s.watch_procs)
    watch_gate, writer_gate, stop = StartGate(len(shares)), StartGate(1), SPAWN.Event()
    received = [SPAWN.Value("q", 0, lock=False) for _ in shares]
    watch_results, writer_results = SPAWN.Queue(), SPAWN.Queue()
    kwargs, first = [], 0
    for i, n in enumerate(shares):
        kwargs.append(dict(address=cl.api.address, namespace=namespace, selectors=selectors[first:first + n],
                           resource_version=revision, streams_per_channel=s.streams_per_channel,
                           open_rate=s.watch_open_rate / len(shares), gate=watch_gate,
                           stop=stop, received=received[i], results=watch_results))
        first += n
    writer_kwargs = [dict(address=cl.api.address, namespace=namespace, rate=s.event_rate, seconds=seconds,
                          nodes=s.watchers, gate=writer_gate, results=writer_results)]
    t0 = time.monotonic()
    with worker_processes(watch_worker, kwargs) as watch_procs, \
            worker_processes(event_writer, writer_kwargs) as writer_procs:
        watch_gate.wait_ready(watch_procs, timeout=150, what=f"{watchers} watches to connect")
        # The watch requests are sent; the server has subscribed them all once it goes quiet.
        wait_until_idle([cl.api.pid, *(p.pid for p in watch_procs)], below_percent=15, timeout=90)
        setup_seconds = time.monotonic() - t0
        writer_gate.wait_ready(writer_procs, timeout=60, what="the event writer to connect")
        meter = CpuMeter({"api-server": cl.api.pid, "etcd": cl.etcd.proc.pid, "writer": writer_procs[0].pid,
                          **{f"watchers-{i}": p.pid for i, p in enumerate(watch_procs)}})
        etcd = EtcdMeter(cl.etcd.endpoint)
        meter.start()
        etcd.start()
        writer_gate.go()
        writer = collect(writer_results, 1, timeout=seconds + 60, procs=writer_procs, what="the event writer")[0]
        events = sum(writer["written"].values())
        expected = events * (1 if kubelet else watchers)
        # Let the last events arrive (bounded): each node has one watcher, and each event one node.
        try:
            wait_for(lambda: sum(r.value for r in received) >= expected, timeout=10,
                     what="the last events to reach the watchers")
        except TimeoutError:
            pass  # reported below as lost deliveries
        cpu, etcd_disk = meter.stop(), etcd.stop()
        stop.set()
        out = collect(watch_results, len(watch_procs), timeout=60, procs=watch_procs, what="the watchers")
    delays = [x for r in out for x in r["delays"]]
    delay = percentiles(delays)
    return {"shape": shape, "watchers": watchers, "watch_processes": len(shares),
            "streams_per_channel": s.streams_per_channel, "event_rate": s.event_rate, "seconds": seconds,
            "setup_seconds": round(setup_seconds, 1),
            "connect_seconds": round(max(r["connect_seconds"] for r in out), 1),
            "events_written": writer["written"], "write_errors": sum(writer["errors"].values()),
            "write_error_samples": writer["errors"], "deliveries_expected": expected,
            "deliveries": len(delays), "lost": max(0, expected - len(delays)),
            "failed_streams": sum(r["failed_streams"] for r in out),
            "streams_refused_and_retried": sum(r["refused_and_retried"] for r in out),
            "stream_failures": [f for r in out for f in r["failures"]][:3],
            "write_ack_ms": percentiles(writer["acks"]), "writer_lag_ms": percentiles(writer["lags"]),
            "delivery_delay_ms": delay, "cpu_percent": cpu,
            "api_server_cpu_ms_per_delivery": round(cpu["api-server"] / 100 / max(len(delays) / seconds, 1e-9) * 1000, 3),
            "etcd": etcd_disk, "goal_p99_ms": GOAL_FANOUT_P99_MS,
            "goal_met": delay.get("p99", math.inf) <= GOAL_FANOUT_P99_MS and expected > 0
            and len(delays) >= expected}


# -- report ------------------------------------------------------------------------------

def _mark(ok: bool) -> str:
    return "met" if ok else "MISSED"


def pooled_rate(runs: list[dict[str, Any]]) -> float:
    """Creates per second over several runs of scenario 1: all created / all their seconds."""
    seconds = sum(r["seconds"] for r in runs)
    return round(sum(r["created"] for r in runs) / seconds, 1) if seconds else 0.0


def rate_ratio(a_runs: list[dict[str, Any]], b_runs: list[dict[str, Any]], goal: float,
               names: tuple[str, str]) -> dict[str, Any]:
    """Side a's creates/s against side b's, pooled over the rounds (which alternate which side goes
    first), with each round's own ratio."""
    a, b = pooled_rate(a_runs), pooled_rate(b_runs)
    per_round = [round(x["creates_per_second"] / y["creates_per_second"], 3) if y["creates_per_second"] else None
                 for x, y in zip(a_runs, b_runs)]
    return {names[0]: a, names[1]: b, "ratio": round(a / b, 3) if b else None, "rounds": len(a_runs),
            "per_round": [{names[0]: x["creates_per_second"], names[1]: y["creates_per_second"], "ratio": r,
                           f"{names[0]}_api_server_cpu_ms": x["cpu_ms_per_create"].get("api-server"),
                           f"{names[1]}_api_server_cpu_ms": y["cpu_ms_per_create"].get("api-server")}
                          for x, y, r in zip(a_runs, b_runs, per_round)],
            "goal": goal, "goal_met": bool(b) and a / b >= goal}


def tls_ratios(tls: dict[str, list[dict[str, Any]]], plain: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """TLS against --insecure: the create rate's ratio (goal >= 0.9) and each verb's mixed p99, each round."""
    out: dict[str, Any] = {"goal_create_rate_ratio": GOAL_TLS_RATIO}
    if plain.get("create") and tls.get("create"):
        out["creates_per_second"] = rate_ratio(tls["create"], plain["create"], GOAL_TLS_RATIO, ("tls", "insecure"))
        out["goal_met"] = out["creates_per_second"]["goal_met"]
    if plain.get("mixed") and tls.get("mixed"):
        out["mixed_p99_ms"] = {verb: {"tls": [m["verbs"][verb]["latency_ms"].get("p99") for m in tls["mixed"]],
                                      "insecure": [m["verbs"][verb]["latency_ms"].get("p99") for m in plain["mixed"]]}
                               for verb in VERBS}
        out["mixed_cpu_ms_per_request"] = {
            "tls": [m["cpu_ms_per_request"].get("api-server") for m in tls["mixed"]],
            "insecure": [m["cpu_ms_per_request"].get("api-server") for m in plain["mixed"]]}
    return out


def _ratio_lines(title: str, r: dict[str, Any], names: tuple[str, str]) -> list[str]:
    """A rate_ratio() as text: the pooled ratio against its goal, then each round."""
    a, b = names
    out = [f"{title}: creates/s {r[a]} vs {r[b]} = {r['ratio']}x over {r['rounds']} round(s) "
           f"(goal >= {r['goal']}x: {_mark(r['goal_met'])})"]
    for i, x in enumerate(r["per_round"]):
        out.append(f"   round {i + 1}: {x[a]} vs {x[b]} = {x['ratio']}x; API server CPU per create "
                   f"{x[f'{a}_api_server_cpu_ms']} vs {x[f'{b}_api_server_cpu_ms']} ms")
    return out


def summary(data: dict[str, Any]) -> str:
    lines = [f"API server benchmark, {data['date']} on {data['machine']['os']}, {data['machine']['cores']} cores, "
             f"load average at start {data['machine']['load_average_at_start']}; {data.get('transport', '')}", ""]
    r = data.get("tls_vs_insecure")
    if r:
        c = r.get("creates_per_second")
        if c:
            lines += _ratio_lines("0. TLS vs --insecure", c, ("tls", "insecure"))
        for verb, v in (r.get("mixed_p99_ms") or {}).items():
            lines.append(f"   mixed {verb} p99: {v['tls']} ms with TLS, {v['insecure']} ms insecure")
        if r.get("mixed_cpu_ms_per_request"):
            v = r["mixed_cpu_ms_per_request"]
            lines.append(f"   mixed API server CPU per request: {v['tls']} ms with TLS, {v['insecure']} ms insecure")
        lines.append("")
    r = data.get("rest_vs_grpc")
    if r:
        lines += _ratio_lines("5. REST vs gRPC", r, ("rest", "grpc"))
        if r.get("vs_grpc_unary"):
            lines += _ratio_lines("   (for reference) REST vs a gRPC call per create", r["vs_grpc_unary"],
                                  ("rest", "grpc_unary"))
        lines.append("")
    c = data.get("create_throughput")
    if c:
        lat = c["latency_ms"]
        lines += [f"1. create throughput: {c['creates_per_second']:.0f} creates/s with {c['clients']} clients in "
                  f"{c['load_processes']} processes ({c['created']} pods in {c['seconds']} s, {c['errors']} errors; "
                  f"latency p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms)",
                  f"   goal >= {GOAL_CREATES_PER_SECOND}/s: {_mark(c['goal_met'])}; done at >= "
                  f"{DONE_CREATES_PER_SECOND}/s: {_mark(c['done_met'])}",
                  f"   CPU (% of one core): {c['cpu_percent']}; ms of CPU per create: {c['cpu_ms_per_create']}",
                  f"   etcd: {c['etcd']}"]
    m = data.get("mixed_load")
    if m:
        lines.append(f"2. mixed load at {m['rate']:.0f} requests/s open loop for {m['seconds']} s "
                     f"({m['completed_per_second']} done/s, {m['errors']} errors):")
        for verb, v in m["verbs"].items():
            lat = v["latency_ms"]
            lines.append(f"   {verb:<6} p50 {lat.get('p50')} ms  p90 {lat.get('p90')} ms  p99 {lat.get('p99')} ms  "
                         f"(n={lat.get('count')})  goal p99 <= {GOAL_MIXED_P99_MS:.0f} ms: {_mark(v['goal_met'])}")
        lines += [f"   generator lag p99 {m['generator_lag_ms'].get('p99')} ms; CPU: {m['cpu_percent']}; "
                  f"ms of CPU per request: {m['cpu_ms_per_request']}",
                  f"   etcd: {m['etcd']}"]
        for p in m["sweep"]:
            lines.append(f"   at {p['rate']:.0f}/s for {p['seconds']} s: p99 " +
                         ", ".join(f"{verb} {ms} ms" for verb, ms in p["p99_ms"].items()) +
                         f"; goal {_mark(p['goal_met'])}; API server CPU {p['cpu_percent']['api-server']}%")
    for key, label in (("kubelet", "3a. watch fan-out, kubelet shape"),
                       ("broadcast", "3b. watch fan-out, broadcast shape")):
        f = data.get("watch_fanout", {}).get(key)
        if not f:
            continue
        d = f["delivery_delay_ms"]
        lines += [f"{label}: {f['watchers']} watchers, {f['event_rate']:.0f} events/s for {f['seconds']} s "
                  f"({f['deliveries']} of {f['deliveries_expected']} deliveries, {f['lost']} lost; streams up in "
                  f"{f['setup_seconds']} s, {f['streams_refused_and_retried']} refused and retried)",
                  f"   delivery delay p50 {d.get('p50')} ms  p90 {d.get('p90')} ms  p99 {d.get('p99')} ms  "
                  f"max {d.get('max')} ms; goal p99 <= {GOAL_FANOUT_P99_MS:.0f} ms: {_mark(f['goal_met'])}",
                  f"   write ack p50 {f['write_ack_ms'].get('p50')} ms p99 {f['write_ack_ms'].get('p99')} ms; "
                  f"CPU: {f['cpu_percent']}; API server {f['api_server_cpu_ms_per_delivery']} ms of CPU per delivery (its write included)"]
    cost = data.get("cost")
    if cost:
        lines.append(f"4. API server CPU per request ({cost['requests_per_verb']} of each, {cost['in_flight']} in flight):")
        lines += [f"   {v['cpu_ms_per_request']:6.3f} ms  {label}" for label, v in cost["verbs"].items()]
    prof = (c or {}).get("profile")
    if prof and prof.get("samples"):
        lines.append(f"profile ({prof['mode']}) of the API server during scenario 1 ({prof['samples']} samples, "
                     f"{prof['file']}):")
        lines += [f"   {a['percent']:5.1f}%  {a['function']}" for a in prof["by_area"]]
        lines.append(f"   inside the servicer methods (decode, handler, encode): "
                     f"{prof['inside_servicer_methods_percent']}%; project functions, inclusive:")
        lines += [f"   {a['percent']:5.1f}%  {a['function']}" for a in prof["top_total_project"][:12]]
        lines.append("   top functions by own time:")
        lines += [f"   {a['percent']:5.1f}%  {a['function']}" for a in prof["top_self"][:10]]
    return "\n".join(lines)


# Flag and setting declarations: alike in shape to other programs' (the `duplicates` tool pairs
# them), each program its own.
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1 s per scenario and 50 watchers (a smoke test)")
    p.add_argument("--profile", nargs="?", const="python", choices=("python", "native"),
                   help="sample the API server with py-spy during scenario 1 (native: C stacks too, "
                        "pausing the server for each sample)")
    p.add_argument("--output", type=Path, default=RESULTS_DIR / "api.json", help="where to write the JSON results")
    p.add_argument("--load-procs", type=int, help="processes generating the create and mixed load (default 2)")
    p.add_argument("--clients", type=int, help="concurrent clients in the create scenario (default 50)")
    p.add_argument("--watchers", type=int, help="watchers in the kubelet fan-out shape (default 5000)")
    p.add_argument("--insecure", action="store_true", help="run the API server with --insecure (plain text)")
    p.add_argument("--compare-insecure", action="store_true",
                   help="then run the create and mixed scenarios again against an API server run with "
                        "--insecure, and report the TLS/insecure ratios (the cost of TLS and authentication)")
    p.add_argument("--as-editor", action="store_true",
                   help="run the load as a user with the `edit` role (RBAC decides every request) instead of "
                        "the administrator (system:masters, authorized at once)")
    p.add_argument("--rounds", type=int, default=1,
                   help="run create and mixed (and rest) this many times, alternating which side of a comparison "
                        "goes first; ratios are pooled over the rounds (with --compare-insecure both servers run "
                        "throughout, so each pair of runs sees the same machine)")
    p.add_argument("--only", choices=SCENARIOS, action="append",
                   help="run only this scenario (repeatable; for investigation: the JSON then lacks the others)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the finally blocks stop every process the bench started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    s = Settings.quick() if args.quick else Settings()
    if args.load_procs:
        s.load_procs = args.load_procs
    if args.watchers:
        s.watchers = args.watchers
    if args.clients:
        s.create_clients = args.clients
    data: dict[str, Any] = {"benchmark": "api", "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                            "command": "python bench/api.py" + " ".join([""] + (argv if argv is not None
                                                                               else sys.argv[1:])),
                            "machine": machine_info(), "settings": asdict(s),
                            "notes": "etcd data on disk (a temp dir, not tmpfs); API server without scheduler "
                                     "and controllers; load from separate processes on the same machine"}
    profile_to = args.output.parent / f"api-create-profile-{args.profile}.txt" if args.profile else None
    t0 = time.monotonic()
    only = set(args.only or SCENARIOS)
    base_args = ["--no-scheduler", "--no-controllers", "--log-level", "WARNING"]
    data["transport"] = "plain text (--insecure)" if args.insecure else "TLS, client certificate"
    if args.as_editor:
        data["caller"] = f"{EDITOR} (edit role through RBAC)"
    compare = args.compare_insecure and not args.insecure
    rounds = max(1, args.rounds)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {"tls": {}, "insecure": {}}
    with contextlib.ExitStack() as stack:
        cl = stack.enter_context(cluster(extra_args=base_args + (["--insecure"] if args.insecure else [])))
        if args.as_editor and not args.insecure:
            use_editor(cl)
        # The --insecure server for the comparison runs alongside, so each pair of runs sees the same machine.
        plain_cl = stack.enter_context(cluster(extra_args=base_args + ["--insecure"])) if compare else None
        main_side = "insecure" if args.insecure else "tls"
        for scenario in ("create", "mixed"):
            if scenario not in only:
                continue
            for r in range(rounds):
                sides = [(main_side, cl)] + ([("insecure", plain_cl)] if plain_cl is not None else [])
                for side, c in (sides if r % 2 == 0 else sides[::-1]):
                    # Each run starts once every server of the comparison has absorbed the last run
                    # (its etcd's commits, its collector): leftovers must not land on the next side.
                    settle([x for _, x in sides])
                    if scenario == "create":
                        out = run_create(c, s, profile_to=profile_to if (r, side) == (0, main_side) else None,
                                         native=args.profile == "native", namespace=f"bench-create-{r}")
                    else:
                        out = run_mixed(c, s, namespace=f"bench-mixed-{r}")
                    runs[side].setdefault(scenario, []).append(out)
        if "create" in only:
            data["create_throughput"] = runs[main_side]["create"][0]
            if rounds > 1:
                data["create_throughput_rounds"] = runs[main_side]["create"]
        if "mixed" in only:
            data["mixed_load"] = runs[main_side]["mixed"][0]
            if rounds > 1:
                data["mixed_load_rounds"] = runs[main_side]["mixed"]
        if "rest" in only:
            # REST against gRPC as Skiff's client sends it (request streams: the goal's comparison),
            # and against a gRPC call per create (what any other gRPC client sends), for reference.
            apis: dict[str, list[dict[str, Any]]] = {"grpc": [], "rest": [], "grpc_unary": []}
            for r in range(rounds):
                order = ("grpc", "rest", "grpc_unary")
                for api in (order if r % 2 == 0 else order[::-1]):
                    settle([cl])
                    # --profile with --only rest: py-spy on the first REST run
                    rest_profile = (profile_to.with_name(profile_to.name.replace("create", "rest-create"))
                                    if profile_to is not None and "create" not in only and (r, api) == (0, "rest")
                                    else None)
                    apis[api].append(run_create(cl, s, profile_to=rest_profile, native=args.profile == "native",
                                                rest=api == "rest", unary=api == "grpc_unary",
                                                namespace=f"bench-{api.replace('_', '-')}-{r}"))
            data["rest_vs_grpc"] = {**rate_ratio(apis["rest"], apis["grpc"], GOAL_REST_RATIO, ("rest", "grpc")),
                                    "vs_grpc_unary": rate_ratio(apis["rest"], apis["grpc_unary"], GOAL_REST_RATIO,
                                                                ("rest", "grpc_unary")),
                                    "runs": apis}
        if "fanout" in only:
            data["watch_fanout"] = {"kubelet": run_fanout(cl, s, shape="kubelet"),
                                    "broadcast": run_fanout(cl, s, shape="broadcast")}
        if "cost" in only:
            data["cost"] = run_cost(cl, s)
    if compare:
        data["insecure"] = {"create_throughput" if k == "create" else "mixed_load": v[0]
                            for k, v in runs["insecure"].items()}
        if rounds > 1:
            data["insecure"].update({f"{k}_rounds": v for k, v in runs["insecure"].items()})
        data["tls_vs_insecure"] = tls_ratios(runs["tls"], runs["insecure"])
    data["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    data["wall_seconds"] = round(time.monotonic() - t0, 1)
    goals = {"create_throughput": ("create_throughput", "goal_met"), "mixed_load_p99": ("mixed_load", "goal_met"),
             "watch_fanout_kubelet_p99": ("watch_fanout", "kubelet", "goal_met"),
             "watch_fanout_broadcast_p99": ("watch_fanout", "broadcast", "goal_met"),
             "tls_vs_insecure_create_ratio": ("tls_vs_insecure", "goal_met"),
             "rest_vs_grpc_create_ratio": ("rest_vs_grpc", "goal_met")}
    data["goals"] = {}
    for name, path_in_data in goals.items():
        node: Any = data
        for key in path_in_data:
            node = node.get(key, {}) if isinstance(node, dict) else {}
        if isinstance(node, bool):
            data["goals"][name] = node
    path = write_results(args.output, data)
    print(summary(data))
    print(f"\nresults: {path} ({data['wall_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
