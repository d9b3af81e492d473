"""What the kernel's check of the table costs per commit, for three shapes of the proxy's Service chains.

    .venv/bin/python bench/proxy_shapes.py                       # root, about 30 s: 1,000 Services x 10 endpoints
    .venv/bin/python bench/proxy_shapes.py --services 50 --commits 10   # smoke test

On every commit that adds a rule with a `goto` (or a `goto` element), nf_tables checks
every chain reachable from each base chain of the table (loops, hook types), so what a
small change costs grows with what the Service chains hold. This builds, in a network
namespace of its own, a table like the proxy's (`ip daddr . meta l4proto . th dport vmap`
from the nat prerouting and output hooks, --services Services x --endpoints endpoints) in
each shape in turn, then times --commits small transactions on it (one chain flushed and
2 rules added, one of them a `goto`; sent as one netlink batch by agent/proxy/netlink.py,
no nft): the kernel's time, nothing of Python's or nft's.

    rules  one rule per endpoint, `numgen random mod k == 0 … dnat` for k = N, N-1, …
           (the proxy's shape until 7 Dec)
    chains kube-proxy's nftables mode: `numgen random mod N vmap { 0 : goto ep-…, … }`, a
           chain per endpoint doing its DNAT
    map    the proxy's shape: `dnat ip to numgen random mod N map { 0 : ip . port, … }`

Results: bench/results/proxy_shapes.json and stdout. The namespace is removed at the end.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

from bench.common import RESULTS_DIR, machine_info, percentiles, write_results  # noqa: E402

SHAPES = ("rules", "chains", "map")


def table(shape: str, services: int, endpoints: int) -> str:
    """The nft script of a proxy-like table `ip shapes` in `shape`."""
    lines = ["table ip shapes {",
             " chain nat-prerouting { type nat hook prerouting priority dstnat; jump services; }",
             " chain nat-output { type nat hook output priority -100; jump services; }",
             " map service-ips { type ipv4_addr . inet_proto . inet_service : verdict; }",
             " chain services { ip daddr . meta l4proto . th dport vmap @service-ips; }",
             " chain spare { }"]
    elements = []
    for s in range(services):
        targets = [(f"198.19.{s // 250}.{s % 250 + 1}", 8000 + e) for e in range(endpoints)]
        body = ["ip saddr != 198.18.0.0/15 meta mark set meta mark | 0x4000"]
        if shape == "rules":
            body += [(f"numgen random mod {endpoints - i} == 0 " if endpoints - i > 1 else "")
                     + f"meta l4proto tcp dnat ip to {ip}:{port}" for i, (ip, port) in enumerate(targets)]
        elif shape == "map":
            items = ", ".join(f"{i} : {ip} . {port}" for i, (ip, port) in enumerate(targets))
            body.append(f"meta l4proto tcp dnat ip to numgen random mod {endpoints} map {{ {items} }}")
        else:
            body.append(f"numgen random mod {endpoints} vmap {{ "
                        + ", ".join(f"{i} : goto ep-{s}-{i}" for i in range(endpoints)) + " }")
            lines += [f" chain ep-{s}-{i} {{ meta l4proto tcp dnat ip to {ip}:{port}; }}"
                      for i, (ip, port) in enumerate(targets)]
        lines.append(f" chain svc-{s} {{ " + "; ".join(body) + "; }")
        elements.append(f"10.96.{s // 250}.{s % 250 + 1} . tcp . 80 : goto svc-{s}")
    lines.append("}")
    lines.append("add element ip shapes service-ips { " + ", ".join(elements) + " }")
    return "\n".join(lines) + "\n"


def inside(shape: str, services: int, endpoints: int, commits: int) -> dict:
    """In the namespace: build the table, time the commits, delete it."""
    from agent.proxy.expressions import Rule, goto, mark_or
    from agent.proxy.netlink import Batch, NftNetlink
    started = time.perf_counter()
    subprocess.run(["nft", "-f", "-"], input=table(shape, services, endpoints), text=True, check=True)
    loaded = time.perf_counter() - started
    sock = NftNetlink()
    seconds = []
    try:
        for _ in range(commits):
            batch = Batch("shapes")
            batch.flush_chain("svc-0")
            batch.add_rule("svc-0", Rule(mark_or("0x4000")).expressions)
            batch.add_rule("svc-0", Rule(goto("spare")).expressions)
            started = time.perf_counter()
            sock.commit(batch)
            seconds.append(time.perf_counter() - started)
    finally:
        sock.close()
        subprocess.run(["nft", "delete", "table", "ip", "shapes"], check=True)
    return {"shape": shape, "table_load_seconds": round(loaded, 2), "commit_ms": percentiles(seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=1000, help="Services in the table")
    parser.add_argument("--endpoints", type=int, default=10, help="endpoints per Service")
    parser.add_argument("--commits", type=int, default=100, help="small transactions timed per shape")
    parser.add_argument("--rounds", type=int, default=2, help="times each shape is measured, shapes alternating")
    parser.add_argument("--inside", choices=SHAPES, help=argparse.SUPPRESS)   # the child in the namespace
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "proxy_shapes.json")
    args = parser.parse_args()
    if args.inside:
        print(json.dumps(inside(args.inside, args.services, args.endpoints, args.commits)))
        return
    if os.geteuid() != 0:
        sys.exit("bench/proxy_shapes.py: needs root (a network namespace and nftables)")
    namespace = f"skiff-bench-shapes-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    runs = []
    load_start = os.getloadavg()[0]
    try:
        for _ in range(args.rounds):
            for shape in SHAPES:
                out = subprocess.run(["ip", "netns", "exec", namespace, sys.executable, __file__, "--inside", shape,
                                      "--services", str(args.services), "--endpoints", str(args.endpoints),
                                      "--commits", str(args.commits)], capture_output=True, text=True, timeout=600)
                if out.returncode != 0:
                    sys.exit(f"bench/proxy_shapes.py: {shape}: {out.stderr.strip()[-2000:]}")
                runs.append(json.loads(out.stdout))
                print(json.dumps(runs[-1]), flush=True)
    finally:
        subprocess.run(["ip", "netns", "del", namespace], check=False)
    results = {"machine": machine_info(), "services": args.services, "endpoints_per_service": args.endpoints,
               "load_average": [load_start, os.getloadavg()[0]], "runs": runs}
    print("results:", write_results(args.out, results))


if __name__ == "__main__":
    main()
