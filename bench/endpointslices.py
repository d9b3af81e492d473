"""Benchmark of the EndpointSlice controller: a pod turns ready → its slice says so.

    .venv/bin/python bench/endpointslices.py            # 1,000 Services × 10 endpoints (about 1-2 minutes)
    .venv/bin/python bench/endpointslices.py --quick    # 50 Services × 10: checks the script works

It starts its own etcd and `skiff-controlplane` (controllers on, no scheduler:
pods stay unbound, and this script plays the agents, writing each pod's status —
IP and Ready condition — through the API as an agent does). It creates the
Services and their pods, waits until every Service's slice lists its endpoints,
then flips pods' readiness one at a time (one every --interval, 50 ms: open loop) and
measures, from the moment each status write returns, until an EndpointSlice
watch delivers the slice with that endpoint's new `ready` condition. This is the
control-plane part of the network programming latency (the node proxy adds its
own); the write of the pod status itself is not counted.

Results go to bench/results/endpointslices.json and are summarised on stdout.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

import argparse  # noqa: E402
import asyncio  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402

from bench.common import RESULTS_DIR, Profile, cluster, connect, machine_info, percentiles, write_results  # noqa: E402

NS = "bench"


def service(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"svc-{i}", "namespace": NS},
            "spec": {"selector": {"app": f"svc-{i}"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}


def pod(i: int, j: int) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p-{i}-{j}", "namespace": NS,
                                                            "labels": {"app": f"svc-{i}"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}   # unbound: no node lifecycle


def ip_of(i: int, j: int) -> str:
    n = i * 10 + j
    return f"10.{128 + n // 65536}.{n // 256 % 256}.{n % 256}"


def status(ip: str, ready: bool) -> dict:
    return {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}


async def bounded(n: int, coros) -> list:
    sem = asyncio.Semaphore(n)

    async def one(c):
        async with sem:
            return await c
    return await asyncio.gather(*(one(c) for c in coros))


async def run(address: str, services: int, per: int, flips: int, interval: float,
              profile: Profile | None = None) -> dict:
    async with connect(address, timeout=60) as client:
        await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        t0 = time.monotonic()
        await bounded(200, (client.create(service(i)) for i in range(services)))
        pods = await bounded(200, (client.create(pod(i, j)) for i in range(services) for j in range(per)))
        pods = {p["metadata"]["name"]: p for p in pods}
        ready: dict[str, bool] = {}

        async def set_status(name: str, i: int, j: int, value: bool) -> None:
            written = await client.update_status({**pods[name], "status": status(ip_of(i, j), value)})
            pods[name] = written
            ready[name] = value
        await bounded(200, (set_status(f"p-{i}-{j}", i, j, j % 2 == 0) for i in range(services) for j in range(per)))
        setup = time.monotonic() - t0

        # Watch slices; note when each endpoint's ready condition is as wanted.
        seen: dict[str, bool] = {}
        waiters: dict[tuple[str, bool], asyncio.Future] = {}
        listed = await client.list("EndpointSlice", NS)

        def absorb(obj: dict) -> None:
            for ep in obj.get("endpoints") or []:
                name = (ep.get("targetRef") or {}).get("name")
                if name:
                    seen[name] = bool((ep.get("conditions") or {}).get("ready"))
                    fut = waiters.pop((name, seen[name]), None)
                    if fut is not None and not fut.done():
                        fut.set_result(time.monotonic())
        for obj in listed.items:
            absorb(obj)

        async def watch() -> None:
            async for event in client.watch("EndpointSlice", NS, resource_version=listed.resource_version):
                if event.type in ("ADDED", "MODIFIED"):
                    absorb(event.object)
        watcher = asyncio.create_task(watch())
        t1 = time.monotonic()
        while any(seen.get(n) is not v for n, v in ready.items()):
            if time.monotonic() - t1 > 300:
                raise SystemExit("slices never caught up with the pods")
            await asyncio.sleep(0.2)
        converge = time.monotonic() - t1

        rng = random.Random(1)
        names = rng.sample(sorted(pods), flips)
        latencies: list[float] = []

        async def flip(name: str, due: float) -> None:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            _, i, j = name.split("-")
            want = not ready[name]
            fut = asyncio.get_running_loop().create_future()
            waiters[(name, want)] = fut
            await set_status(name, int(i), int(j), want)
            written = time.monotonic()
            done = await asyncio.wait_for(fut, 30)
            latencies.append(max(0.0, done - written))
        if profile is not None:
            profile.start()
        start = time.monotonic()
        await asyncio.gather(*(flip(n, start + k * interval) for k, n in enumerate(names)))
        watcher.cancel()
        return {"services": services, "endpoints_per_service": per, "flips_per_second": round(1 / interval, 1),
                "setup_seconds": round(setup, 1),
                "initial_convergence_seconds": round(converge, 1),
                "ready_to_slice_ms": percentiles(latencies)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--services", type=int, default=1000)
    p.add_argument("--per-service", type=int, default=10)
    p.add_argument("--flips", type=int, default=300)
    p.add_argument("--interval", type=float, default=0.05, help="seconds between two readiness flips")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--profile", action="store_true", help="sample the control plane with py-spy while flipping")
    args = p.parse_args()
    if args.quick:
        args.services, args.flips = 50, 30
    with cluster(extra_args=["--no-scheduler"]) as c:
        profile = Profile(c.api.pid, RESULTS_DIR / "endpointslices-profile.txt", seconds=args.flips * args.interval + 2) \
            if args.profile else None
        result = asyncio.run(run(c.api.address, args.services, args.per_service, args.flips, args.interval, profile))
        if profile is not None:
            result["profile"] = profile.finish()
    result["load_average"] = os.getloadavg()
    result["machine"] = machine_info()
    write_results(RESULTS_DIR / ("endpointslices-quick.json" if args.quick else "endpointslices.json"), result)
    print(result)


if __name__ == "__main__":
    main()
