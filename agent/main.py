"""`skiff-agent`: the node agent. It registers this machine as a Node, renews its
Lease, watches the pods bound to it, and runs them with Skiff's own runtime.

    skiff-agent --server 10.0.0.1:6443 --token abcdef.0123456789abcdef --ca-cert-hash sha256:...
                [--node-name n1] [--node-ip 10.0.0.11]
                [--node-labels zone=a,disk=ssd] [--register-with-taints k=v:NoSchedule]
                [--reserved cpu=100m,memory=256Mi] [--state-dir /var/lib/skiff/agent]
                [--cluster-domain cluster.local] [--dns-upstream 10.0.0.2,10.0.0.3:5353]

The first start joins the cluster with the token (`skiff-controlplane token create` prints
the whole command) and keeps the node's certificates in <state-dir>/pki; later starts
need neither flag. The agent's own service (--listen, default <node-ip>:10250) speaks
TLS and serves only the API server.

Containers outlive the agent: stopping or killing it leaves them running, and a
restarted agent re-adopts them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from pathlib import Path

from api.logsetup import add_log_level_argument, setup_logging
from api.nodeflags import parse_pairs, parse_taints

log = logging.getLogger("skiff.agent")


def _pairs(text: str, what: str) -> dict[str, str]:
    try:
        return parse_pairs(text, what)
    except ValueError as exc:   # argparse shows an ArgumentTypeError's own message
        raise argparse.ArgumentTypeError(str(exc)) from None


def _taints(text: str) -> list[dict[str, str]]:
    try:
        return parse_taints(text, "--register-with-taints")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _upstreams(text: str) -> list[str]:
    from agent.dns.forward import parse_upstream
    items = [p.strip() for p in text.split(",") if p.strip()]
    for item in items:
        try:
            parse_upstream(item)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return items


def parse_args(argv: list[str] | None):  # -> AgentConfig
    from agent.config import AgentConfig
    p = argparse.ArgumentParser(prog="skiff-agent", description=__doc__.splitlines()[0])
    p.add_argument("--server", default=os.environ.get("SKIFF_SERVER", "127.0.0.1:6443"),
                   help="control plane address (host:port)")
    p.add_argument("--node-name", default=socket.gethostname())
    p.add_argument("--node-ip", default="", help="InternalIP; default: the address that routes to the server")
    p.add_argument("--node-labels", type=lambda t: _pairs(t, "--node-labels"), default={})
    p.add_argument("--register-with-taints", type=_taints, default=[])
    p.add_argument("--reserved", type=lambda t: _pairs(t, "--reserved"), default={},
                   help="resources kept from pods, e.g. cpu=100m,memory=256Mi,pid=1000")
    p.add_argument("--max-pods", type=int, default=110)
    p.add_argument("--pod-max-pids", type=int, default=4096,
                   help="processes and threads per pod (the pod cgroup's pids limit); -1: unlimited")
    p.add_argument("--eviction-interval", type=float, default=10.0, metavar="SECONDS",
                   help="how often pods' ephemeral storage is measured against their limits")
    p.add_argument("--state-dir", type=Path, default=Path("/var/lib/skiff/agent"))
    p.add_argument("--cgroup-parent", default="skiff")
    p.add_argument("--cgroup-root", type=Path, default=Path("/sys/fs/cgroup"))
    p.add_argument("--registries-config", type=Path, default=None,
                   help="registry mirrors file (like k3s' registries.yaml)")
    p.add_argument("--listen", default="",
                   help="the agent's gRPC service (logs, exec), host:port; default <node-ip>:10250")
    p.add_argument("--token", default=os.environ.get("SKIFF_JOIN_TOKEN", ""),
                   help="bootstrap token to join with (first start only)")
    p.add_argument("--ca-cert-hash", default="",
                   help="sha256:<hex> of the cluster CA's public key, checked before trusting the server")
    p.add_argument("--insecure", action="store_true",
                   help="no TLS and no identity: for a control plane run with --insecure only (logs a warning)")
    p.add_argument("--lease-renew", type=float, default=2.0, help="seconds between node Lease renewals")
    p.add_argument("--cluster-cidr", default="10.244.0.0/16",
                   help="the cluster's pod network (traffic leaving it is masqueraded); must match the "
                        "control plane's --cluster-cidr")
    p.add_argument("--no-service-proxy", dest="service_proxy", action="store_false",
                   help="do not program cluster IPs and NodePorts (nftables table ip skiff-proxy)")
    p.add_argument("--cluster-domain", default="cluster.local",
                   help="the cluster's DNS domain: <svc>.<ns>.svc.<domain> (must match the other nodes')")
    p.add_argument("--dns-upstream", type=_upstreams, default=None, metavar="IP[:PORT],...",
                   help="resolvers for names outside the cluster domain; default: the nameservers of "
                        "this node's /etc/resolv.conf")
    p.add_argument("--no-network", dest="network", action="store_false",
                   help="no pod network: pods get a network namespace with loopback only")
    p.add_argument("--image-gc-high-threshold", type=int, default=85, metavar="PERCENT",
                   help="disk use of the image store's filesystem above which unused images are removed")
    p.add_argument("--image-gc-low-threshold", type=int, default=80, metavar="PERCENT",
                   help="disk use image garbage collection brings it down to")
    add_log_level_argument(p)
    args = p.parse_args(argv)
    if not 0 <= args.image_gc_low_threshold <= args.image_gc_high_threshold <= 100:
        p.error(f"--image-gc-low-threshold ({args.image_gc_low_threshold}) must be at most "
                f"--image-gc-high-threshold ({args.image_gc_high_threshold}), both between 0 and 100")
    if "pid" in args.reserved and not args.reserved["pid"].isdigit():
        p.error(f"--reserved pid={args.reserved['pid']}: must be a whole number of processes")
    if args.pod_max_pids == 0 or args.pod_max_pids < -1:
        p.error(f"--pod-max-pids {args.pod_max_pids}: must be a positive number or -1 (unlimited)")
    if args.eviction_interval <= 0:
        p.error(f"--eviction-interval {args.eviction_interval}: must be positive")
    from agent.node import route_address
    node_ip = args.node_ip or route_address(args.server)
    server = args.server
    if args.insecure and not server.startswith("http://"):
        server = "http://" + server
    config = AgentConfig(server=server, node_name=args.node_name, node_ip=node_ip,
                         token=args.token, ca_cert_hash=args.ca_cert_hash, insecure=args.insecure,
                         state_dir=args.state_dir, labels=args.node_labels, taints=args.register_with_taints,
                         reserved=args.reserved, max_pods=args.max_pods, cgroup_parent=args.cgroup_parent,
                         cgroup_root=args.cgroup_root, registries_config=args.registries_config,
                         listen=args.listen or f"{node_ip}:10250", lease_renew_seconds=args.lease_renew,
                         network=args.network, cluster_cidr=args.cluster_cidr,
                         service_proxy=args.service_proxy,
                         cluster_domain=args.cluster_domain, dns_upstreams=args.dns_upstream,
                         image_gc_high_percent=args.image_gc_high_threshold,
                         image_gc_low_percent=args.image_gc_low_threshold,
                         pod_max_pids=None if args.pod_max_pids == -1 else args.pod_max_pids,
                         eviction_interval_seconds=args.eviction_interval)
    return config, args.log_level


def agent_address(config) -> str:  # type: ignore[no-untyped-def]
    """host:port the API server dials: --listen, with the node IP for a wildcard host."""
    host, _, port = config.listen.rpartition(":")
    return f"{config.node_ip if host.strip('[]') in ('0.0.0.0', '::', '') else host}:{port}"


async def run(config) -> int:  # noqa: C901 - the wiring of every part, in order
    from agent.agent import Agent
    from agent.certificates import JoinError, NodeCertificates
    identity = certificates = None
    if config.insecure:
        log.warning("--insecure: no TLS and no node identity; the agent's port %s runs exec and logs for ANYONE "
                    "who can reach it", config.listen)
    else:
        certificates = NodeCertificates(config.state_dir, server=config.server, node_name=config.node_name,
                                        agent_address=agent_address(config))
        try:
            identity = await certificates.ensure(token=config.token or None, ca_cert_hash=config.ca_cert_hash or None)
        except JoinError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    agent = Agent(config, identity=identity, certificates=certificates)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await agent.start()
    except Exception as exc:
        print(f"error: {exc}", file=sys.stderr)
        await agent.close()
        return 1
    runner = asyncio.create_task(agent.run(), name="agent")
    await asyncio.wait({runner, asyncio.create_task(stop.wait())}, return_when=asyncio.FIRST_COMPLETED)
    failed = runner.done() and not runner.cancelled() and runner.exception() is not None
    if failed:
        log.error("a part of the agent failed; stopping (containers keep running)", exc_info=runner.exception())
    else:
        log.info("shutting down (containers keep running)")
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    await agent.close()
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> None:
    config, level = parse_args(argv)
    setup_logging(level)
    if os.geteuid() != 0:
        print("error: skiff-agent must run as root (it creates namespaces, cgroups and mounts)", file=sys.stderr)
        sys.exit(1)
    sys.exit(asyncio.run(run(config)))


if __name__ == "__main__":
    main()
