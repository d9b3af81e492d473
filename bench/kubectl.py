"""Benchmark of the Kubernetes REST API (controlplane/rest) next to the gRPC API.

    .venv/bin/python bench/kubectl.py              # 1,000 pods, 5 runs each (about a minute)
    .venv/bin/python bench/kubectl.py --pods 5000

It starts its own etcd and `skiff-controlplane` (bench/common.py: TLS, no scheduler or
controllers), creates the pods through gRPC, then measures:

1. what a user waits for: the wall time of `kubectl get pods` (a Table from the server),
   `kubectl get pods -o json` and `ctl get pods` (each a new process, so each pays its
   start-up: Go's kubectl about 0.1 s, Python's ctl more), median of the runs;
2. the server's side alone, from this process: one list of every pod over gRPC (the
   Client's `list`, items decoded) and over REST (an HTTPS GET with the admin's client
   certificate, aiohttp, the body decoded), and the Table pages of 500 that `kubectl get pods`
   asks for (limit/continue), median of the runs.

Results go to bench/results/kubectl.json and are summarised on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REPO, cluster, connect, machine_info, write_results  # noqa: E402

TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
POD = {"apiVersion": "v1", "kind": "Pod",
       "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}}


async def create_pods(address: str, count: int, namespace: str) -> None:
    async with connect(address) as client:
        await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        sem = asyncio.Semaphore(50)

        async def one(i: int) -> None:
            async with sem:
                await client.create({**POD, "metadata": {"name": f"p-{i:05d}", "namespace": namespace}})
        await asyncio.gather(*(one(i) for i in range(count)))


def wall(argv: list[str], env: dict[str, str], runs: int, expect: int) -> float:
    times = []
    for _ in range(runs):
        started = time.monotonic()
        out = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, cwd=REPO)
        times.append(time.monotonic() - started)
        if out.returncode != 0 or out.stdout.count("p-") < expect:
            raise RuntimeError(f"{' '.join(argv)} failed: {out.stderr[-500:]}")
    return statistics.median(times)


async def server_side(address: str, rest_url: str, state_dir: Path, namespace: str, runs: int) -> dict[str, float]:
    import aiohttp
    context = ssl.create_default_context(cafile=str(state_dir / "pki" / "ca.crt"))
    context.load_cert_chain(str(state_dir / "pki" / "admin.crt"), str(state_dir / "pki" / "admin.key"))
    grpc_times, rest_times, table_times = [], [], []
    async with connect(address) as client, aiohttp.ClientSession() as session:
        for _ in range(runs):
            started = time.monotonic()
            await client.list("pods", namespace)
            grpc_times.append(time.monotonic() - started)
            started = time.monotonic()
            async with session.get(f"{rest_url}/api/v1/namespaces/{namespace}/pods", ssl=context) as response:
                assert response.status == 200
                await response.json()   # decoded, as the gRPC Client decodes its items
            rest_times.append(time.monotonic() - started)
            # What `kubectl get pods` asks for, without kubectl: Table pages of 500, one after another.
            started, token = time.monotonic(), ""
            while True:
                async with session.get(f"{rest_url}/api/v1/namespaces/{namespace}/pods",
                                       params={"limit": "500", **({"continue": token} if token else {})},
                                       headers={"Accept": TABLE_ACCEPT}, ssl=context) as response:
                    assert response.status == 200
                    page = await response.json()
                token = page["metadata"].get("continue", "")
                if not token:
                    break
            table_times.append(time.monotonic() - started)
    return {"grpc_list_s": statistics.median(grpc_times), "rest_list_s": statistics.median(rest_times),
            "rest_table_pages_s": statistics.median(table_times)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pods", type=int, default=1000)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    info = machine_info()
    namespace = "bench"
    with cluster(extra_args=["--no-scheduler", "--no-controllers"]) as c, tempfile.TemporaryDirectory() as home:
        asyncio.run(create_pods(c.api.address, args.pods, namespace))
        kubeconfig = c.api.state_dir / "kubeconfig"
        kube_env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": home}
        ctl_env = {**os.environ, "PYTHONPATH": str(REPO), "SKIFF_CONFIG": str(c.api.admin_config)}
        wall(["kubectl", "get", "pods", "-n", namespace], kube_env, 1, args.pods)   # discovery cache warmed
        results = {
            "pods": args.pods,
            "kubectl_get_pods_s": wall(["kubectl", "get", "pods", "-n", namespace], kube_env, args.runs, args.pods),
            "kubectl_get_pods_json_s": wall(["kubectl", "get", "pods", "-n", namespace, "-o", "json"], kube_env,
                                            args.runs, args.pods),
            "ctl_get_pods_s": wall([sys.executable, "-m", "cli.main", "get", "pods", "-n", namespace,
                                    "--server", c.api.address], ctl_env, args.runs, args.pods),
        }
        results.update(asyncio.run(server_side(c.api.address, f"https://127.0.0.1:{c.api.rest_port}",
                                               c.api.state_dir, namespace, args.runs)))
    info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    path = write_results(REPO / "bench" / "results" / "kubectl.json", {"machine": info, "results": results})
    for key, value in results.items():
        print(f"{key:26} {value:.3f}" if isinstance(value, float) else f"{key:26} {value}")
    print(f"load average {info['load_average_at_start']} -> {info['load_average_at_end']}; {path}")


if __name__ == "__main__":
    main()
