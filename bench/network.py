"""bench/network.py: the pod network's figures for docs/PERFORMANCE.md (run as root).

    .venv/bin/python bench/network.py                       # about a minute
    .venv/bin/python bench/network.py --pods 3 --ports 10 --seconds 0.5   # smoke test

Builds a virtual LAN in network namespaces (tests/netlab.py; 198.18.0.0/15 only): a
LAN bridge in its own namespace and two node namespaces on it, each running a real
NodeNetwork (agent/network) on a thread in its namespace as an agent would. Then, in
one run:

1. Network setup per pod: `attach` of --pods pods (namespaces made beforehand, not
   timed) - p50/p99 and where the time goes (IPAM file, host link, pod side, nft) -
   then `detach` of each. Also pods with one hostPort (one `nft` process more).
2. Pod-to-pod across the two nodes against host-to-host (node namespace to node
   namespace) over the same LAN: TCP goodput for --seconds and the round-trip time of
   64-byte messages on one connection (p50/p99), and their ratios. Host and pod runs
   alternate, so background load on a shared machine hits both alike.
3. hostPort DNAT cost with 10 and with --ports mapped ports: from the other node,
   new connections (connect + 1-byte round trip + close, the case the NAT table sees)
   and round trips on an established connection, to node IP:hostPort; the same
   directly to the pod IP as the no-DNAT baseline. The configurations alternate too.

Traffic comes from tests/nettool.py processes started inside the namespaces with
nsenter (separate processes: the measuring tools do not share the bench's GIL).
Everything is removed at the end, also on failure. Results: bench/results/network.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))                     # run as a script from anywhere
sys.path.insert(0, str(REPO / "tests"))           # the virtual LAN harness

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any, Awaitable  # noqa: E402

from bench.common import RESULTS_DIR, machine_info, percentiles  # noqa: E402
from netlab import Lab, Node, pod_manifest, skip_reason  # noqa: E402

ECHO, SINK = 7000, 5001
SMALL_MAP = 10
FIRST_HOSTPORT = 20000


async def timed(awaitable: Awaitable[Any]) -> tuple[Any, float]:
    """Seconds an operation takes, measured on the node's own event loop."""
    t0 = time.perf_counter()
    result = await awaitable
    return result, time.perf_counter() - t0


def measure_setup(lab: Lab, node: Node, *, pods: int, with_port: bool) -> dict[str, Any]:
    """attach then detach `pods` pods on `node`; latencies and the median of each attach phase."""
    made = [lab.netns(f"{node.name}{'h' if with_port else 'p'}{i}") for i in range(pods)]
    attach_s, detach_s, phases = [], [], []
    uids = []
    for i, ns in enumerate(made):
        ports = [{"containerPort": ECHO, "hostPort": 40000 + i}] if with_port else []
        manifest = pod_manifest(f"p{i}", f"bench-{node.name}-{with_port}-{i}", ports)
        _, seconds = node.call(timed(node.net.attach(manifest, ns.path)))
        attach_s.append(seconds)
        phases.append(node.net.last_attach_timings)
        uids.append(manifest["metadata"]["uid"])
    for uid in uids:
        _, seconds = node.call(timed(node.net.detach(uid)))
        detach_s.append(seconds)
    for ns in made:
        lab.delete_netns(ns)
    phase_names = [k for k in phases[0] if k != "total_ms"] if phases else []
    return {"attach": percentiles(attach_s), "detach": percentiles(detach_s),
            "attach_phases_median_ms": {k: round(statistics.median(p[k] for p in phases), 2) for k in phase_names}}


def alternate(runs: int, cases: dict[str, Any]) -> dict[str, list[Any]]:
    """Run each case `runs` times, case after case (host, pod, host, pod, ...)."""
    results: dict[str, list[Any]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, run in cases.items():
            results[name].append(run())
    return results


def median_of(results: list[dict[str, float]], key: str) -> float:
    return round(statistics.median(r[key] for r in results), 1)


# Scenario steps: alike in shape to other benches' (the `duplicates` tool pairs them), each
# measuring its own thing.
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pods", type=int, default=100, help="pods attached and detached for the setup figures")
    p.add_argument("--ports", type=int, default=10000, help="hostPorts mapped in the large configuration")
    p.add_argument("--seconds", type=float, default=3.0, help="length of each throughput run")
    p.add_argument("--rr", type=int, default=5000, help="round trips per latency run")
    p.add_argument("--connections", type=int, default=1000, help="new connections per DNAT run")
    p.add_argument("--runs", type=int, default=5, help="alternating runs per comparison")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "network.json")
    args = p.parse_args(argv)
    if not SMALL_MAP <= args.ports <= 20000:
        p.error(f"--ports must be between {SMALL_MAP} and 20000 (node ports {FIRST_HOSTPORT}-39999 are used)")
    reason = skip_reason()
    if reason:
        print(f"bench/network.py {reason}", file=sys.stderr)
        return 2

    result: dict[str, Any] = {"machine": {**machine_info(), "kernel": platform.release(),
                                          "nft": subprocess.run(["nft", "--version"], capture_output=True,
                                                                text=True).stdout.strip()},
                              "parameters": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    with tempfile.TemporaryDirectory(prefix="skiff-bench-net-") as tmp:
        lab = Lab(Path(tmp), prefix=f"sknb{os.getpid()}")
        try:
            run(lab, args, result)
        finally:
            lab.close()
            left = lab.leftovers()
            if left:
                print(f"warning: left behind: {left}", file=sys.stderr)
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    report(result)
    print(f"results in {args.out}")
    return 0


def run(lab: Lab, args: argparse.Namespace, result: dict[str, Any]) -> None:
    a, b = lab.add_node("a", number=1), lab.add_node("b", number=2)
    for node in (a, b):
        node.call(node.net.setup())
    a.call(a.net.sync_routes({"b": (b.pod_cidr, b.ip)}))
    b.call(b.net.sync_routes({"a": (a.pod_cidr, a.ip)}))
    result["mtu"] = a.net.mtu

    # 1. Setup time per pod.
    print(f"attach/detach of {args.pods} pods ...", flush=True)
    result["setup"] = measure_setup(lab, a, pods=args.pods, with_port=False)
    result["setup_with_hostport"] = measure_setup(lab, a, pods=max(3, args.pods // 5), with_port=True)
    result["attach"] = result["setup"]["attach"]

    # 2. Pod-to-pod across nodes against host-to-host.
    client, server = lab.add_pod(a, "client"), lab.add_pod(b, "server")
    for ns in (server.netns, b.netns):
        lab.spawn(ns, "sink", "--port", str(SINK))
        lab.spawn(ns, "echo", "--port", str(ECHO))
    print(f"throughput, {args.runs} x {args.seconds} s each way ...", flush=True)
    streams = alternate(args.runs, {
        "host": lambda: lab.run_tool(a.netns, "stream", "--host", b.ip, "--port", str(SINK),
                                     "--seconds", str(args.seconds)),
        "pod": lambda: lab.run_tool(client.netns, "stream", "--host", server.ip, "--port", str(SINK),
                                    "--seconds", str(args.seconds))})
    host_gbit = statistics.median(r["gbit_per_s"] for r in streams["host"])
    pod_gbit = statistics.median(r["gbit_per_s"] for r in streams["pod"])
    result["throughput"] = {"host_to_host_gbit_per_s": round(host_gbit, 2), "pod_to_pod_gbit_per_s": round(pod_gbit, 2),
                            "ratio": round(pod_gbit / host_gbit, 3), "runs": streams}
    print("latency ...", flush=True)
    rrs = alternate(args.runs, {
        "host": lambda: lab.run_tool(a.netns, "rr", "--host", b.ip, "--port", str(ECHO), "--count", str(args.rr)),
        "pod": lambda: lab.run_tool(client.netns, "rr", "--host", server.ip, "--port", str(ECHO),
                                    "--count", str(args.rr))})
    result["latency"] = {
        "host_to_host": {"p50_us": median_of(rrs["host"], "p50_us"), "p99_us": median_of(rrs["host"], "p99_us")},
        "pod_to_pod": {"p50_us": median_of(rrs["pod"], "p50_us"), "p99_us": median_of(rrs["pod"], "p99_us")},
        "runs": rrs}
    result["latency"]["ratio_p50"] = round(result["latency"]["pod_to_pod"]["p50_us"]
                                           / result["latency"]["host_to_host"]["p50_us"], 3)

    # 3. hostPort DNAT with a small and a large map.
    target = lab.add_pod(a, "target", ports=[{"containerPort": ECHO, "hostPort": FIRST_HOSTPORT + i}
                                             for i in range(SMALL_MAP)])
    lab.spawn(target.netns, "echo", "--port", str(ECHO))
    filler = lab.add_pod(a, "filler", attach=False)
    filler.manifest["spec"]["containers"][0]["ports"] = [
        {"containerPort": 9, "hostPort": FIRST_HOSTPORT + SMALL_MAP + i} for i in range(max(0, args.ports - SMALL_MAP))]
    sizes = sorted({SMALL_MAP, args.ports})
    load_ms: list[float] = []

    def map_size(size: int) -> None:
        mapped = a.net.pod_ip(filler.uid) is not None
        if size > SMALL_MAP and not mapped:
            _, seconds = a.call(timed(a.net.attach(filler.manifest, filler.netns.path)))
            load_ms.append(round(seconds * 1000, 1))
        elif size == SMALL_MAP and mapped:
            a.call(a.net.detach(filler.uid))
        listing = json.loads(subprocess.run(
            ["ip", "netns", "exec", a.netns.name, "nft", "-j", "list", "map", "inet", "skiff", "hostports"],
            capture_output=True, text=True, check=True).stdout)
        count = sum(len(item["map"].get("elem", [])) for item in listing["nftables"] if "map" in item)
        assert count == size, f"expected {size} hostPort map entries, found {count}"

    def dnat_case(size: int):
        def measure() -> dict[str, Any]:
            map_size(size)
            port = str(FIRST_HOSTPORT + SMALL_MAP - 1)
            return {"connect": lab.run_tool(b.netns, "connect", "--host", a.ip, "--port", port,
                                            "--count", str(args.connections)),
                    "rr": lab.run_tool(b.netns, "rr", "--host", a.ip, "--port", port, "--count", str(args.rr))}
        return measure

    def direct() -> dict[str, Any]:
        return {"connect": lab.run_tool(b.netns, "connect", "--host", target.ip, "--port", str(ECHO),
                                        "--count", str(args.connections)),
                "rr": lab.run_tool(b.netns, "rr", "--host", target.ip, "--port", str(ECHO), "--count", str(args.rr))}

    print(f"hostPort DNAT with {' and '.join(map(str, sizes))} mapped ports ...", flush=True)
    cases = {"direct": direct, **{str(size): dnat_case(size) for size in sizes}}
    runs = alternate(args.runs, cases)
    result["hostport"] = {name: {"connect_p50_us": median_of([r["connect"] for r in rs], "p50_us"),
                                 "connect_p99_us": median_of([r["connect"] for r in rs], "p99_us"),
                                 "rr_p50_us": median_of([r["rr"] for r in rs], "p50_us"),
                                 "rr_p99_us": median_of([r["rr"] for r in rs], "p99_us"),
                                 "runs": rs}
                          for name, rs in runs.items()}
    result["hostport_map_load_ms"] = load_ms     # attach of the pod with ports-10 hostPorts (one nft batch)
    # Does a pod with a hostPort cost more to attach when the map is large? (nft's work per change)
    map_size(sizes[-1])
    result["setup_with_hostport_large_map"] = measure_setup(lab, a, pods=max(3, args.pods // 10), with_port=True)


def report(result: dict[str, Any]) -> None:
    s, sp = result["setup"], result["setup_with_hostport"]
    print(f"\nattach  p50 {s['attach']['p50']} ms  p99 {s['attach']['p99']} ms  (goal <= 20 ms; "
          f"phases {s['attach_phases_median_ms']})")
    print(f"detach  p50 {s['detach']['p50']} ms  p99 {s['detach']['p99']} ms")
    print(f"attach with a hostPort  p50 {sp['attach']['p50']} ms  p99 {sp['attach']['p99']} ms; "
          f"detach p50 {sp['detach']['p50']} ms")
    t, lat = result["throughput"], result["latency"]
    print(f"throughput  host-to-host {t['host_to_host_gbit_per_s']} Gbit/s  pod-to-pod {t['pod_to_pod_gbit_per_s']} "
          f"Gbit/s  ratio {t['ratio']}")
    print(f"round trip  host-to-host p50 {lat['host_to_host']['p50_us']} us p99 {lat['host_to_host']['p99_us']} us; "
          f"pod-to-pod p50 {lat['pod_to_pod']['p50_us']} us p99 {lat['pod_to_pod']['p99_us']} us; "
          f"ratio p50 {lat['ratio_p50']}")
    for name, h in result["hostport"].items():
        label = "direct to pod IP" if name == "direct" else f"hostPort, {name} mapped"
        print(f"{label:24} connect p50 {h['connect_p50_us']} us p99 {h['connect_p99_us']} us; "
              f"round trip p50 {h['rr_p50_us']} us p99 {h['rr_p99_us']} us")
    sl = result["setup_with_hostport_large_map"]
    print(f"attach with a hostPort, {result['parameters']['ports']} mapped  p50 {sl['attach']['p50']} ms  "
          f"p99 {sl['attach']['p99']} ms; detach p50 {sl['detach']['p50']} ms")
    if result["hostport_map_load_ms"]:
        print(f"mapping the large set of hostPorts (one attach): {result['hostport_map_load_ms']} ms")


if __name__ == "__main__":
    sys.exit(main())
