"""`python -m agent.hollow`: run N hollow nodes against an API server until Ctrl-C.

    python -m agent.hollow --kubeconfig admin.conf --nodes 100 [--labels zone=a] [--taints k=v:NoSchedule]

This is the `--hollow-nodes N` of a Skiff cluster: simulated nodes (agent/hollow.py)
for tests, benchmarks and learners. It prints a banner saying so, because a hollow
node runs no container. On exit (SIGINT/SIGTERM) it deletes its Nodes and Leases
unless --keep-nodes is given.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time

from agent.hollow import HollowCluster
from api.entrypoint import run_main
from api.nodeflags import parse_pairs, parse_taints as parse_taint_list
from controlplane.client import Client, kubeconfig

log = logging.getLogger("agent.hollow")

BANNER = """\
*************************************************************************
 SIMULATED NODES: {count} hollow nodes ({first} .. {last}) on {server}.
 They run NO containers: they register Nodes, renew Leases and report
 their pods Running. For tests, benchmarks and learning - not a runtime.
*************************************************************************"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m agent.hollow", description="Run N simulated (hollow) nodes.")
    kubeconfig.add_arguments(p)
    p.add_argument("--nodes", type=int, required=True, help="number of hollow nodes")
    p.add_argument("--prefix", default="hollow", help="node names are PREFIX-0, PREFIX-1, ...")
    p.add_argument("--start-index", type=int, default=0, help="number of the first node (several simulators)")
    p.add_argument("--cpu", default="4", help="cpu capacity of each node")
    p.add_argument("--memory", default="16Gi", help="memory capacity of each node")
    p.add_argument("--max-pods", type=int, default=110, help="pods capacity of each node")
    p.add_argument("--labels", default="", help="extra node labels, k=v,k2=v2")
    p.add_argument("--taints", default="", help="node taints, key[=value]:Effect,...")
    p.add_argument("--lease-renew-seconds", type=float, default=None,
                   help="Lease renewal interval; default max(2, nodes/50)")
    p.add_argument("--zones", type=int, default=0,
                   help="label node i with topology.kubernetes.io/zone=zone-(i %% ZONES) (0: no zone label)")
    p.add_argument("--no-pod-status", dest="report_pods", action="store_false",
                   help="leave pods alone: register Nodes and renew Leases only (no pods watch, no status writes)")
    p.add_argument("--keep-nodes", action="store_true", help="leave the Node objects behind on exit")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    if args.nodes < 1:
        p.error(f"--nodes must be at least 1, got {args.nodes}")
    return args


def parse_labels(text: str) -> dict[str, str]:
    return parse_pairs(text, "--labels")


def parse_taints(text: str) -> list[dict[str, str]]:
    return parse_taint_list(text, "--taints")


async def _main(args: argparse.Namespace) -> int:
    try:
        labels, taints = parse_labels(args.labels), parse_taints(args.taints)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    target = kubeconfig.from_arguments_or_exit(args)
    print(BANNER.format(count=args.nodes, first=f"{args.prefix}-{args.start_index}",
                        last=f"{args.prefix}-{args.start_index + args.nodes - 1}", server=target.server),
          file=sys.stderr, flush=True)
    async with Client(target.server, credentials=target.credentials) as client:
        cluster = HollowCluster(client, args.nodes, prefix=args.prefix, cpu=args.cpu, memory=args.memory,
                                pods=args.max_pods, labels=labels, taints=taints,
                                lease_renew_seconds=args.lease_renew_seconds, start_index=args.start_index,
                                zones=args.zones, report_pods=args.report_pods)
        started = time.monotonic()
        task = asyncio.create_task(cluster.run(), name="hollow-cluster")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        registered = asyncio.create_task(cluster.registered.wait())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({task, registered, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if cluster.registered.is_set() and not stop.is_set():
            log.info("registered %d hollow nodes in %.1fs", args.nodes, time.monotonic() - started)
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        for waiting in (task, registered, stopping):
            waiting.cancel()
        await asyncio.gather(task, registered, stopping, return_exceptions=True)
        if task.done() and not task.cancelled() and task.exception() is not None:
            error = task.exception()
            message = getattr(error, "message", None) or repr(error)
            print(f"error: {message}", file=sys.stderr)
            return 1
        if not args.keep_nodes:
            log.info("deleting the hollow nodes")
            await cluster.deregister()
    return 0


def main(argv: list[str] | None = None) -> None:
    run_main(parse_args, _main, argv)


if __name__ == "__main__":
    main()
