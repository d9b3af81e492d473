"""Benchmark of node failover: how long until the pods of a dead node run elsewhere.

    .venv/bin/python bench/failover.py                 # 10 hollow nodes, 30 pods, 3 node deaths
    .venv/bin/python bench/failover.py --trials 1      # quicker
    .venv/bin/python bench/failover.py --scale 5000    # also: can this machine hold 5,000 hollow nodes?
    .venv/bin/python bench/failover.py --vm            # real agents on 2 qemu guests (bench/failover_vm.py)

It starts its own etcd and `skiff-controlplane` with every default (scheduler,
controllers, node lifecycle: Lease renewal 2 s, grace 8 s, eviction when tainted), then,
in this process, hollow nodes (agent/hollow.py) and a Deployment. Each trial
kills the hollow node running the most pods of the Deployment (it stops renewing
its Lease and reporting, like a machine that lost power) and records, from that
moment, when

- notready:  the node's Ready condition became Unknown,
- tainted:   it carried node.kubernetes.io/unreachable:NoExecute,
- evicted:   none of its pods was left,
- rebound:   every replica was again bound to a live node (the goal: <= 15 s),
- running:   ... and Running there.

Times come from watches (informers), so they are the moments the changes reached
a client. The dead node stays dead for the next trial, as a broken machine would.

`--scale N` registers N hollow nodes (Lease interval adaptive: max(2 s, N/50))
and watches them for a while: registration time, CPU of the simulator, the API
server and etcd, and whether any live node was wrongly declared NotReady.

Results go to bench/results/failover.json (and hollow_scale.json) and are summarised on stdout.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from agent.hollow import HollowCluster  # noqa: E402
from bench.common import RESULTS_DIR, connect, CpuMeter, cluster, machine_info, write_results  # noqa: E402
from controlplane.client.informer import Informer  # noqa: E402
from api.nodelease import lease_renew_interval  # noqa: E402
from api.taints import UNREACHABLE  # noqa: E402

GOAL_SECONDS = 15.0
NAMESPACE = "failover"
MILESTONES = ("notready", "tainted", "evicted", "rebound", "running")


def deployment(replicas: int) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": NAMESPACE},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx:1.25",
                                                           "resources": {"requests": {"cpu": "100m",
                                                                                      "memory": "64Mi"}}}]}}}}


def live(pod: dict[str, Any]) -> bool:
    return not pod["metadata"].get("deletionTimestamp")


def failover_facts(node: dict[str, Any] | None, pods: list[dict[str, Any]], victim: str,
                   replicas: int) -> dict[str, bool]:
    """Which milestones a failover has reached (shared with bench/failover_vm.py): the victim's Ready
    condition Unknown, the unreachable NoExecute taint on it, `replicas` live pods bound elsewhere,
    and that many of them Running."""
    ready = [c.get("status") for c in ((node or {}).get("status") or {}).get("conditions") or []
             if c.get("type") == "Ready"]
    taints = {(t.get("key"), t.get("effect")) for t in ((node or {}).get("spec") or {}).get("taints") or []}
    bound = [p for p in pods if live(p) and p["spec"].get("nodeName") and p["spec"]["nodeName"] != victim]
    return {"notready": ready == ["Unknown"], "tainted": (UNREACHABLE, "NoExecute") in taints,
            "rebound": len(bound) >= replicas,
            "running": len([p for p in bound if p["status"].get("phase") == "Running"]) >= replicas}


def mark_reached(seen: dict[str, float], facts: dict[str, bool], now: float) -> None:
    """Note when each milestone was first reached ("running" only after "rebound")."""
    for name, true in facts.items():
        if true and name not in seen and (name != "running" or "rebound" in seen):
            seen[name] = now


def running_by_node(pods: Informer, replicas: int) -> dict[str, int] | None:
    """Node name -> Running pods of the informer's, once exactly `replicas` live pods are Running."""
    running = [p for p in pods.store.values() if live(p) and p["status"].get("phase") == "Running"]
    if len(running) != replicas:
        return None
    counts: dict[str, int] = {}
    for p in running:
        counts[p["spec"]["nodeName"]] = counts.get(p["spec"]["nodeName"], 0) + 1
    return counts


async def until(condition: Any, *, timeout: float, what: str, interval: float = 0.02) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (value := condition()):
        if loop.time() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(interval)
    return value


async def failover(address: str, *, nodes: int, replicas: int, trials: int) -> dict[str, Any]:
    async with connect(address) as client:
        hollow = HollowCluster(client, nodes, prefix="node")
        pods = Informer(client, "pods", namespace=NAMESPACE, label_selector="app=web")
        node_informer = Informer(client, "nodes")
        tasks = [asyncio.create_task(t) for t in (hollow.run(), pods.run(), node_informer.run())]
        try:
            await until(lambda: hollow.registered.is_set() or tasks[0].done(), timeout=120, what="hollow nodes")
            if tasks[0].done():
                tasks[0].result()
            await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
            await client.create(deployment(replicas))

            await until(lambda: running_by_node(pods, replicas), timeout=120, what=f"{replicas} pods Running")
            results = []
            for trial in range(trials):
                await until(lambda: running_by_node(pods, replicas), timeout=60, what="the Deployment settled")
                results.append(await one_trial(hollow, pods, node_informer, replicas=replicas))
                print(f"trial {trial + 1}: " + ", ".join(f"{k} {v:.2f}s" if isinstance(v, float) else f"{k} {v}"
                                                          for k, v in results[-1].items()), flush=True)
            return {"nodes": nodes, "replicas": replicas, "lease_renew_seconds": hollow.interval,
                    "trials": results, "summary": summarise(results)}
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def one_trial(hollow: HollowCluster, pods: Informer, nodes: Informer, *, replicas: int) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for p in pods.store.values():
        if live(p) and p["spec"].get("nodeName") in hollow.nodes and hollow.nodes[p["spec"]["nodeName"]].alive:
            counts[p["spec"]["nodeName"]] = counts.get(p["spec"]["nodeName"], 0) + 1
    victim = max(counts, key=lambda n: counts[n])
    victim_pods = {p["metadata"]["uid"] for p in pods.store.values() if p["spec"].get("nodeName") == victim}
    loop = asyncio.get_running_loop()
    seen: dict[str, float] = {}
    killed = loop.time()
    hollow.kill(victim)

    def check() -> bool:
        current = list(pods.store.values())
        facts = failover_facts(nodes.get("", victim), current, victim, replicas)
        # Hollow nodes: the victim's own pods must also be gone (evicted) before "rebound" counts.
        facts["rebound"] = facts["rebound"] and not any(
            live(p) and p["spec"].get("nodeName") == victim for p in current)
        facts["evicted"] = not any(p["metadata"]["uid"] in victim_pods for p in current)
        mark_reached(seen, facts, loop.time() - killed)
        return all(name in seen for name in MILESTONES)
    await until(check, timeout=120, what=f"the pods of {victim} to run elsewhere")
    return {"victim": victim, "pods_on_victim": len(victim_pods), **{k: round(seen[k], 3) for k in MILESTONES}}


def summarise(trials: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in MILESTONES:
        values = [t[name] for t in trials]
        out[name] = {"median": round(statistics.median(values), 3), "max": round(max(values), 3)}
    out["goal_seconds"] = GOAL_SECONDS
    out["goal_met"] = out["rebound"]["max"] <= GOAL_SECONDS
    return out


async def scale(address: str, *, nodes: int, watch_seconds: float, pids: dict[str, int]) -> dict[str, Any]:
    async with connect(address, timeout=60) as client:
        hollow = HollowCluster(client, nodes, prefix="scale")
        started = time.monotonic()
        task = asyncio.create_task(hollow.run())
        try:
            await until(lambda: hollow.registered.is_set() or task.done(), timeout=1800, what="registration",
                        interval=0.2)
            if task.done():
                task.result()
            registered = time.monotonic() - started
            print(f"{nodes} hollow nodes registered in {registered:.1f}s; watching {watch_seconds:.0f}s",
                  flush=True)
            meter = CpuMeter({**pids, "hollow simulator (this process)": os.getpid()})
            meter.start()
            await asyncio.sleep(watch_seconds)  # measuring a steady state: a fixed window is the point
            cpu = meter.stop()
            # The simulator's own watch of the nodes (one List of 5,000 nodes would be a 9 MB reply).
            listed = [n for n in hollow.node_informer.store.values() if n["metadata"]["name"] in hollow.nodes]
            not_ready = [n["metadata"]["name"] for n in listed
                         if not any(c["type"] == "Ready" and c["status"] == "True"
                                    for c in n["status"].get("conditions") or [])]
            return {"nodes": nodes, "lease_renew_seconds": lease_renew_interval(nodes),
                    "registration_seconds": round(registered, 1), "watch_seconds": watch_seconds,
                    "cpu_percent_of_one_core": cpu, "nodes_listed": len(listed), "nodes_not_ready": len(not_ready)}
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=10)
    p.add_argument("--replicas", type=int, default=30)
    p.add_argument("--trials", type=int, default=3, help="node deaths to time; 0 skips the failover part")
    p.add_argument("--scale", type=int, default=0, help="also register this many hollow nodes (e.g. 5000)")
    p.add_argument("--scale-watch-seconds", type=float, default=60.0)
    p.add_argument("--vm", action="store_true",
                   help="real agents on two guests of the VM test bed, powered off in turn (root, qemu)")
    args = p.parse_args()
    if args.vm:
        main_vm(args.trials)
        return
    out: dict[str, Any] = {"machine": machine_info(), "goal_seconds": GOAL_SECONDS}
    if args.trials > 0:
        with cluster() as c:
            out["failover"] = asyncio.run(failover(c.api.address, nodes=args.nodes, replicas=args.replicas,
                                                   trials=args.trials))
    if args.scale:
        # A /8 cluster CIDR so the IPAM controller has a /24 for each of thousands of nodes.
        with cluster(extra_args=["--cluster-cidr", "10.0.0.0/8"]) as c:
            pids = {"API server + controllers": c.api.pid, "etcd": c.etcd.proc.pid}
            out["scale"] = asyncio.run(scale(c.api.address, nodes=args.scale, watch_seconds=args.scale_watch_seconds,
                                             pids=pids))
    paths = []
    if "failover" in out:
        paths.append(write_results(RESULTS_DIR / "failover.json", {k: v for k, v in out.items() if k != "scale"}))
    if "scale" in out:
        paths.append(write_results(RESULTS_DIR / "hollow_scale.json",
                                   {k: v for k, v in out.items() if k != "failover"}))
    print(json.dumps(out, indent=2))
    if "failover" in out:
        summary = out["failover"]["summary"]
        print(f"\nnode failover, {args.nodes} hollow nodes, {args.replicas} pods, {args.trials} trial(s): "
              f"NotReady {summary['notready']['median']:.1f}s, evicted {summary['evicted']['median']:.1f}s, "
              f"rebound elsewhere {summary['rebound']['median']:.1f}s median / {summary['rebound']['max']:.1f}s "
              f"max (goal <= {GOAL_SECONDS:.0f}s: {'met' if summary['goal_met'] else 'NOT met'})")
    if "scale" in out:
        s = out["scale"]
        print(f"{s['nodes']} hollow nodes: registered in {s['registration_seconds']}s, Lease every "
              f"{s['lease_renew_seconds']:.0f}s, CPU {s['cpu_percent_of_one_core']}, "
              f"{s['nodes_not_ready']} wrongly NotReady")
    print("results: " + ", ".join(str(p) for p in paths))


def main_vm(trials: int) -> None:
    from bench import failover_vm
    out = failover_vm.run(trials)
    path = write_results(RESULTS_DIR / "failover_vm.json", out)
    print(json.dumps(out, indent=2))
    s = out["summary"]
    print(f"\nnode failover, 2 qemu guests with real agents, {len(out['trials'])} power-off(s): "
          f"NotReady {s['notready']['median']:.1f}s, rebound elsewhere {s['rebound']['median']:.1f}s, "
          + "".join(f"agent {step} {s['agent_' + step]['median']:.1f}s, " for step in ("pulled", "started")
                    if "agent_" + step in s) +
          f"Running elsewhere {s['running']['median']:.1f}s median / {s['running']['max']:.1f}s max "
          f"(goal <= {GOAL_SECONDS:.0f}s: {'met' if s['goal_met'] else 'NOT met'}); load average at start "
          f"{out['machine']['load_average_at_start']}, at end {out['load_average_at_end']}")
    print(f"NodeNotReady events per node {out['node_not_ready_events']}, power-offs {out['power_offs']}")
    print(f"results: {path}")


if __name__ == "__main__":
    main()
