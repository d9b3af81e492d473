"""bench/services.py: the service proxy's figures for docs/PERFORMANCE.md (run as root).

    .venv/bin/python bench/services.py                                  # a few minutes
    .venv/bin/python bench/services.py --services 50 --changes 20 --many 200 --connections 100   # smoke test

Builds a virtual LAN in network namespaces (tests/netlab.py; 198.18.0.0/15 only): one
node namespace running a real NodeNetwork (agent/network) and a real ServiceProxy
(agent/proxy) on a thread in that namespace, as an agent would; a client pod and a
server pod (tests/nettool.py echo) on that node. Then, in one run:

1. Network programming latency, agent side: --services Services x --endpoints endpoints
   programmed (one full sync, timed; endpoints spread over 100 nodes, so this node hosts
   1 in 100 of them), then --changes times one endpoint of a random
   Service turns ready (or not ready), handed to the proxy exactly as its
   EndpointSlice informer hands it (`slice_changed`) while the proxy's sync task runs;
   latency = informer event -> nft transaction committed (the rule is in the kernel),
   p50/p99. Changes come one every --interval seconds; a burst of --burst changes at
   once shows batching. The API server is not in this path (see the report).
2. Per-connection cost through a cluster IP: from the client pod, new connections
   (connect + 1-byte round trip + close, the case the NAT table sees) to one Service's
   cluster IP, with 10 Services programmed and with --many Services programmed; the same
   directly to the pod IP as the no-proxy baseline. The configurations alternate
   --rounds times so background load hits each alike; ratio = p50 many / p50 ten.

3. With --api (needs the EndpointSlice kind in the API): the same latency end to end
   through a real API server (etcd + skiff-controlplane, no controllers): --api-services
   Services and their slices created through the API, the proxy fed by real informers;
   then --changes times an EndpointSlice update written with the client -> the proxy's
   commit for that Service; latency from before the write to the commit.
4. With --e2e: the whole path, a control plane with its controllers (no scheduler; this
   script plays the agents as bench/endpointslices.py does): --e2e-services Services x
   --endpoints pods, every pod's status written Ready; once the proxy (real informers)
   has programmed every endpoint, --changes times one pod's Ready flips (status written
   through the API) -> EndpointSlice controller -> slice -> informer -> the proxy's commit
   with that endpoint's new state; latency from the status write's return (and from
   before it was sent).

Incremental changes are written as nf_tables netlink batches (agent/proxy/netlink.py);
--writers also measures the same changes through libnftables (nft text, with nft's cache
read) for comparison, in the same run.

Everything is removed at the end, also on failure. Results: bench/results/services.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))                     # run as a script from anywhere
sys.path.insert(0, str(REPO / "tests"))           # the virtual LAN harness

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from ipaddress import IPv4Address  # noqa: E402
from typing import Any, AsyncIterator  # noqa: E402

from agent.proxy import ServiceProxy  # noqa: E402
from agent.proxy.nft import Nft  # noqa: E402
from bench.common import RESULTS_DIR, connect, machine_info, percentiles  # noqa: E402
from netlab import CLUSTER_CIDR, Lab, skip_reason  # noqa: E402

ECHO = 7000
NODES = 100
FIRST_IP = IPv4Address("10.96.0.10")


def service(i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": "bench", "name": f"svc-{i}"},
            "spec": {"type": "ClusterIP", "clusterIP": str(FIRST_IP + i),
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": ECHO}]}}


def endpoint_slice(i: int, addresses: list[str], ready: list[bool]) -> dict[str, Any]:
    return {"addressType": "IPv4",
            "metadata": {"namespace": "bench", "name": f"svc-{i}-abcde",
                         "labels": {"kubernetes.io/service-name": f"svc-{i}"}},
            "endpoints": [{"addresses": [a], "nodeName": _node_of(a), "conditions": {"ready": r}}
                          for a, r in zip(addresses, ready)],
            "ports": [{"name": "http", "port": ECHO, "protocol": "TCP"}]}


def _node_of(address: str) -> str:
    """Endpoints spread over NODES nodes, this one ("a") hosting 1 in NODES, as in a real cluster (a node
    runs ~100 pods); the server pod of the connection runs is on "a"."""
    number = int(IPv4Address(address)) % NODES
    return "a" if number == 0 or address.startswith("198.19.1.") else f"n{number}"


def fake_addresses(i: int, count: int) -> list[str]:
    """Endpoint addresses for Service i (inside the node's pod CIDR range; nothing answers on most)."""
    return [str(IPv4Address("198.19.128.0") + (i * count + j) % 30000) for j in range(count)]


async def programming_latency(proxy: ServiceProxy, args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    for i in range(args.services):
        proxy.service_changed(service(i))
        proxy.slice_changed(endpoint_slice(i, fake_addresses(i, args.endpoints), [True] * args.endpoints))
    await proxy.sync()
    full_seconds = time.perf_counter() - started
    task = asyncio.get_running_loop().create_task(proxy.run())
    pauses: list[float] = []
    watch_gc = _full_collections(pauses)
    gc.callbacks.append(watch_gc)
    try:
        rng = random.Random(1)
        ready = {i: [True] * args.endpoints for i in range(args.services)}
        proxy.latencies.clear()
        proxy.nft_seconds.clear()
        for _ in range(args.changes):
            i = rng.randrange(args.services)
            j = rng.randrange(args.endpoints)
            ready[i][j] = not ready[i][j]
            proxy.slice_changed(endpoint_slice(i, fake_addresses(i, args.endpoints), ready[i]))
            await asyncio.sleep(args.interval)
        await _drained(proxy)
        single = list(proxy.latencies)
        nft_single = list(proxy.nft_seconds)
        proxy.latencies.clear()
        for i in rng.sample(range(args.services), args.burst):
            ready[i][0] = not ready[i][0]
            proxy.slice_changed(endpoint_slice(i, fake_addresses(i, args.endpoints), ready[i]))
        await _drained(proxy)
        burst = list(proxy.latencies)
    finally:
        gc.callbacks.remove(watch_gc)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return {"writer": proxy.nft.writer, "full_garbage_collections_ms": [round(x * 1000) for x in pauses],
            "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "services": args.services, "endpoints_per_service": args.endpoints,
            "full_sync_seconds": round(full_seconds, 2), "full_syncs": proxy.full_syncs,
            "one_change_every_s": args.interval, "latency_ms": percentiles(single),
            "nft_transaction_ms": percentiles(nft_single),
            "burst": {"changes": args.burst, "latency_ms": percentiles(burst)}}


def _full_collections(pauses: list[float]) -> Any:
    """A gc callback noting how long each full (generation 2) collection stopped the process."""
    started = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append(time.perf_counter() - started[0])
    return callback


async def _drained(proxy: ServiceProxy) -> None:
    deadline = time.monotonic() + 60
    while (proxy._dirty or proxy.busy) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


async def program(proxy: ServiceProxy, count: int, server_ip: str) -> float:
    """Exactly Services 0..count-1, each with the server pod as its one endpoint; seconds it took."""
    started = time.perf_counter()
    for key in list(proxy.services):
        if int(key[1].split("-")[1]) >= count:
            proxy.service_deleted(proxy.services[key])
    for i in range(count):
        if ("bench", f"svc-{i}") not in proxy.services:
            proxy.service_changed(service(i))
            proxy.slice_changed(endpoint_slice(i, [server_ip], [True]))
    await proxy.sync()
    return time.perf_counter() - started


def connection_cost(lab: Lab, node: Any, proxy: ServiceProxy, args: argparse.Namespace) -> dict[str, Any]:
    client, server = lab.add_pod(node, "client"), lab.add_pod(node, "server")
    lab.spawn(server.netns, "echo", "--port", str(ECHO))
    runs: dict[str, list[dict[str, Any]]] = {"pod_ip": [], "cluster_ip_10": [], f"cluster_ip_{args.many}": []}
    program_s: dict[str, list[float]] = {"10": [], str(args.many): []}

    def connect(host: str, port: int) -> dict[str, Any]:
        return lab.run_tool(client.netns, "connect", "--host", host, "--port", str(port),
                            "--count", str(args.connections))
    node.call(program(proxy, 10, server.ip))
    connect(str(FIRST_IP), 80)                                  # warm up
    for _ in range(args.rounds):
        for count in (10, args.many):
            program_s[str(count)].append(node.call(program(proxy, count, server.ip), timeout=600))
            runs[f"cluster_ip_{count}"].append(connect(str(FIRST_IP), 80))
            runs["pod_ip"].append(connect(server.ip, ECHO))
    summary = {name: {"p50_us": statistics.median(r["p50_us"] for r in results),
                      "p99_us": statistics.median(r["p99_us"] for r in results), "rounds": results}
               for name, results in runs.items()}
    ten, many = summary["cluster_ip_10"]["p50_us"], summary[f"cluster_ip_{args.many}"]["p50_us"]
    return {"connections_per_run": args.connections, "services_many": args.many, "runs": summary,
            "ratio_p50_many_vs_10": round(many / ten, 3),
            "ratio_p99_many_vs_10": round(summary[f"cluster_ip_{args.many}"]["p99_us"]
                                          / summary["cluster_ip_10"]["p99_us"], 3),
            "program_seconds": {k: [round(x, 2) for x in v] for k, v in program_s.items()}}


# Scenario steps: alike in shape to other benches' (the `duplicates` tool pairs them), each
# measuring its own thing.
@contextlib.asynccontextmanager
async def informed(client: Any, proxy: ServiceProxy, node: Any) -> AsyncIterator[None]:
    """`proxy` fed by real informers on services and endpointslices and syncing (in full once both
    listed) for the body of the block; afterwards its table deleted and it closed."""
    from controlplane.client.informer import Informer
    services, slices = Informer(client, "services"), Informer(client, "endpointslices")
    proxy.watch(services, slices)

    async def synced() -> None:
        await services.wait_synced(timeout=None)
        await slices.wait_synced(timeout=None)
    tasks = [asyncio.create_task(services.run()), asyncio.create_task(slices.run()),
             asyncio.create_task(proxy.run(ready=synced))]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            node.call(proxy.delete_table())
        finally:
            node.call(proxy.close())


async def api_latency(address: str, node: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Write -> informer -> proxy -> nft commit, through a real API server (a loop of this machine's
    namespace; the proxy's nft thread lives in the node's)."""
    proxy = ServiceProxy(node_name="a", cluster_cidr=CLUSTER_CIDR, table="skiff-proxy-api", check_interval=3600)
    node.call(proxy.nft.call(lambda: None))
    async with connect(address, timeout=30) as client:   # TLS, the admin credential (bench/common.py)
        await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}})
        started = time.perf_counter()
        sem = asyncio.Semaphore(32)
        slices: dict[int, dict[str, Any]] = {}

        async def make(i: int) -> None:
            async with sem:
                await client.create(service(i))
                made = endpoint_slice(i, fake_addresses(i, args.endpoints), [True] * args.endpoints)
                slices[i] = await client.create({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                                                 **made})
        await asyncio.gather(*(make(i) for i in range(args.api_services)))
        create_seconds = time.perf_counter() - started
        programmed: dict[tuple[str, str], asyncio.Future] = {}

        def done(keys: list[tuple[str, str]], when: float) -> None:
            for key in keys:
                future = programmed.pop(key, None)
                if future is not None and not future.done():
                    future.set_result(when)
        proxy.on_programmed.append(done)
        async with informed(client, proxy, node):
            deadline = time.monotonic() + 600
            while (proxy.full_syncs == 0 or proxy._dirty or proxy.busy) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            rng = random.Random(2)
            latencies = []
            for _ in range(args.changes):
                i = rng.randrange(args.api_services)
                current = slices[i]
                current["endpoints"][0]["conditions"]["ready"] = not current["endpoints"][0]["conditions"]["ready"]
                future = asyncio.get_running_loop().create_future()
                programmed[("bench", f"svc-{i}")] = future
                t0 = time.monotonic()
                slices[i] = await client.update(current)
                committed = await asyncio.wait_for(future, 30)
                latencies.append(committed - t0)
                await asyncio.sleep(args.interval)
    return {"services": args.api_services, "endpoints_per_service": args.endpoints,
            "create_seconds": round(create_seconds, 1), "latency_ms": percentiles(latencies)}


async def e2e_latency(address: str, node: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The whole path: a pod's status turns Ready (or not) through the API, as the agent's prober writes
    it -> the EndpointSlice controller -> the slice -> the proxy's informer -> its nft commit."""
    from bench import endpointslices as es
    proxy = ServiceProxy(node_name="a", cluster_cidr=CLUSTER_CIDR, table="skiff-proxy-e2e", check_interval=3600,
                         flush_conntrack=False)
    node.call(proxy.nft.call(lambda: None))          # its worker thread starts in the node's namespace
    async with connect(address, timeout=60) as client:
        await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": es.NS}})
        started = time.perf_counter()
        await es.bounded(100, (client.create(es.service(i)) for i in range(args.e2e_services)))
        made = await es.bounded(100, (client.create(es.pod(i, j)) for i in range(args.e2e_services)
                                      for j in range(args.endpoints)))
        pods = {p["metadata"]["name"]: p for p in made}
        ready = {name: True for name in pods}

        async def set_status(name: str) -> None:
            _, i, j = name.split("-")
            pods[name] = await client.update_status(
                {**pods[name], "status": es.status(es.ip_of(int(i), int(j)), ready[name])})
        await es.bounded(100, (set_status(name) for name in pods))
        create_seconds = time.perf_counter() - started
        waiting: dict[tuple[str, str], tuple[str, bool, asyncio.Future]] = {}

        def done(keys: list[tuple[str, str]], when: float) -> None:
            for key in keys:
                if key not in waiting or key not in proxy._applied:
                    continue
                ip, want, future = waiting[key]
                if any(e.ip == ip and e.ready == want for port in proxy._applied[key][0] for e in port.endpoints):
                    del waiting[key]
                    if not future.done():
                        future.set_result(when)
        proxy.on_programmed.append(done)
        async with informed(client, proxy, node):
            deadline = time.monotonic() + 900
            want = args.e2e_services * args.endpoints
            while sum(len(e.usable_endpoints()) for ports, _ in proxy._applied.values() for e in ports) < want:
                if time.monotonic() > deadline:
                    raise RuntimeError("the proxy never programmed every endpoint")
                await asyncio.sleep(0.1)
            converge_seconds = time.perf_counter() - started - create_seconds
            rng = random.Random(3)
            from_sent, from_written = [], []
            for name in rng.choices(sorted(pods), k=args.changes):
                _, i, j = name.split("-")
                key = (es.NS, f"svc-{i}")
                ready[name] = not ready[name]
                future = asyncio.get_running_loop().create_future()
                waiting[key] = (es.ip_of(int(i), int(j)), ready[name], future)
                sent = time.monotonic()
                await set_status(name)
                written = time.monotonic()
                committed = await asyncio.wait_for(future, 30)
                from_sent.append(committed - sent)
                from_written.append(max(0.0, committed - written))
                await asyncio.sleep(args.interval)
    return {"services": args.e2e_services, "endpoints_per_service": args.endpoints, "writer": proxy.nft.writer,
            "setup_seconds": round(create_seconds, 1), "initial_programming_seconds": round(converge_seconds, 1),
            "latency_from_status_written_ms": percentiles(from_written),
            "latency_from_status_sent_ms": percentiles(from_sent)}


# Scenario steps: alike in shape to other benches' (the `duplicates` tool pairs them), each
# measuring its own thing.
def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--services", type=int, default=1000, help="Services programmed for the latency run")
    p.add_argument("--endpoints", type=int, default=10, help="endpoints per Service in the latency run")
    p.add_argument("--changes", type=int, default=300, help="endpoint changes measured")
    p.add_argument("--interval", type=float, default=0.05, help="seconds between changes")
    p.add_argument("--burst", type=int, default=100, help="changes at once, for the batching figure")
    p.add_argument("--writers", default="netlink,libnftables",
                   help="how incremental changes are written, measured in turn: netlink (the proxy's way), "
                        "libnftables (the same changes as nft text, for comparison)")
    p.add_argument("--many", type=int, default=10000, help="Services programmed in the 'many' configuration")
    p.add_argument("--connections", type=int, default=1000, help="new connections per run")
    p.add_argument("--rounds", type=int, default=3, help="alternations of 10 / many")
    p.add_argument("--api", action="store_true", help="also measure end to end through a real API server")
    p.add_argument("--api-services", type=int, default=1000, help="Services created through the API")
    p.add_argument("--e2e", action="store_true",
                   help="also measure the whole path: pod status Ready through the API -> EndpointSlice "
                        "controller -> proxy commit (a control plane with its controllers)")
    p.add_argument("--e2e-services", type=int, default=1000, help="Services (x --endpoints pods) for --e2e")
    p.add_argument("--skip-connections", action="store_true", help="leave out the per-connection cost")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "services.json")
    args = p.parse_args()
    reason = skip_reason()
    if reason:
        print(f"bench/services.py: {reason}", file=sys.stderr)
        return 2
    result: dict[str, Any] = {"machine": {**machine_info(), "kernel": platform.release()}}
    with tempfile.TemporaryDirectory(prefix="skiff-bench-services-") as tmp:
        lab = Lab(Path(tmp), tag="bs")
        proxy: ServiceProxy | None = None
        try:
            node = lab.add_node("a", number=1)
            node.call(node.net.setup())
            proxy = ServiceProxy(node_name="a", cluster_cidr=CLUSTER_CIDR, check_interval=3600)
            result["programming"] = {}
            for writer in args.writers.split(","):
                print(f"programming latency ({writer}): {args.services} Services x {args.endpoints} endpoints ...",
                      flush=True)
                measured = proxy if writer == "netlink" else ServiceProxy(
                    node_name="a", cluster_cidr=CLUSTER_CIDR, check_interval=3600, table="skiff-proxy-text",
                    nft=Nft("skiff-proxy-text", use_netlink=False))
                try:
                    result["programming"][writer] = node.call(programming_latency(measured, args), timeout=1800)
                finally:
                    if measured is not proxy:
                        try:
                            node.call(measured.delete_table())
                        finally:
                            node.call(measured.close())
                print(json.dumps(result["programming"][writer]), flush=True)
            if not args.skip_connections:
                print(f"connection cost: 10 vs {args.many} Services ...", flush=True)
                node.call(program(proxy, 0, "198.19.1.2"), timeout=600)
                result["connections"] = connection_cost(lab, node, proxy, args)
                print(json.dumps({k: v for k, v in result["connections"].items() if k != "runs"}), flush=True)
                for name, run in result["connections"]["runs"].items():
                    print(f"  {name}: p50 {run['p50_us']} us, p99 {run['p99_us']} us", flush=True)
            if args.api:
                from bench.common import cluster
                print(f"end to end through the API: {args.api_services} Services ...", flush=True)
                with cluster(extra_args=["--no-controllers", "--no-scheduler"]) as api:
                    result["api"] = asyncio.run(api_latency(api.api.address, node, args))
                print(json.dumps(result["api"]), flush=True)
            if args.e2e:
                from bench.common import cluster
                print(f"end to end from pod readiness: {args.e2e_services} Services x {args.endpoints} pods ...",
                      flush=True)
                with cluster(extra_args=["--no-scheduler"]) as api:
                    load = os.getloadavg()[0]
                    result["e2e"] = asyncio.run(e2e_latency(api.api.address, node, args))
                    result["e2e"]["load_average"] = [round(load, 2), round(os.getloadavg()[0], 2)]
                print(json.dumps(result["e2e"]), flush=True)
        finally:
            if proxy is not None:
                try:
                    node.call(proxy.delete_table())
                finally:
                    node.call(proxy.close())
            lab.close()
            left = lab.leftovers()
            if left:
                print(f"left behind: {left}", file=sys.stderr)
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
