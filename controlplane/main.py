"""`skiff-controlplane`: the API server, with its own etcd unless told to use one.

    skiff-controlplane [--listen 127.0.0.1:6443] [--state-dir DIR]
                       [--etcd-endpoints host:port,host:port] [--insecure]
    skiff-controlplane token create [--ttl 24h] | list | delete ID     (join tokens)
    skiff-controlplane backup FILE | restore FILE --state-dir DIR     (controlplane/backup.py)

The API server speaks gRPC over TLS only and requires a client certificate from the
cluster CA or a bearer token (controlplane/pki, controlplane/auth/authn.py); the CA and
an admin credential (`<state-dir>/admin.conf`) are made on first start. `--insecure`
serves plain text and treats every caller as an administrator (it logs a warning).

Without --etcd-endpoints it starts and supervises an embedded etcd whose data
lives in the state directory, so a restart keeps every object. Several control
planes may share one etcd: all serve the API, and the elected leader also runs
the scheduler and the controllers.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

from api.logsetup import add_log_level_argument, setup_logging
from controlplane.apiserver import proxy
from controlplane.apiserver.handlers import Handlers
from controlplane.apiserver.kubernetes_service import KubernetesService
from controlplane.apiserver.service_alloc import DEFAULT_CLUSTER_IP_RANGE, DEFAULT_NODE_PORT_RANGE, ServiceNetwork
from controlplane.apiserver.service import ApiService
from controlplane.apiserver import service as service_mod
from controlplane.client.credentials import Credentials
from controlplane.controllers import settings as controller_settings
from controlplane.etcd import EmbeddedEtcd, EtcdMissing
from controlplane.etcdtls import is_loopback
from controlplane.leader import LeaderElector
from controlplane.storage import Store, keys
from controlplane.storage.etcd_client import EtcdClient, parse_endpoint
from controlplane.storage.etcd_client import connect_etcd as storage_connect_etcd
from controlplane import security as security_mod
from protos import keepalive
from protos import skiff_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from controlplane.scheduler.config import SchedulerConfig

log = logging.getLogger("skiff.controlplane")
BUILTIN_NAMESPACES = ("default", "kube-system", "skiff-node-lease")


def _duration(text: str) -> float:
    from api.duration import parse_duration
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# Flag and setting declarations: alike in shape to other programs' (the `duplicates` tool pairs
# them), each program its own.
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="skiff-controlplane", description=__doc__.splitlines()[0])
    p.add_argument("--listen", default="127.0.0.1:6443",
                   help="address:port the API server listens on; several separated by commas "
                        "(a local cluster listens on loopback and on its virtual LAN)")
    p.add_argument("--state-dir", type=Path, default=Path(os.environ.get("SKIFF_STATE_DIR", "~/.skiff/controlplane")),
                   help="state directory (embedded etcd data and logs)")
    p.add_argument("--etcd-endpoints", default="",
                   help="comma-separated host:port of an existing etcd cluster; default: run an embedded etcd")
    p.add_argument("--etcd-prefix", default=keys.DEFAULT_PREFIX, help="key prefix for every object in etcd")
    p.add_argument("--event-ttl", type=int, default=3600, help="seconds an Event lives")
    p.add_argument("--compaction-interval", type=float, default=300.0,
                   help="seconds between etcd compactions (history older than one interval is dropped)")
    p.add_argument("--scheduler", action=argparse.BooleanOptionalAction, default=True,
                   help="run the scheduler when this process is the leader")
    p.add_argument("--controllers", action=argparse.BooleanOptionalAction, default=True,
                   help="run the controllers when this process is the leader")
    p.add_argument("--leader-lease-seconds", type=int, default=5,
                   help="leader election lease; another control plane takes over within about this long")
    p.add_argument("--service-cluster-ip-range", default=DEFAULT_CLUSTER_IP_RANGE,
                   help="IPv4 network Services' cluster IPs come from (its first address is the `kubernetes` "
                        "Service's)")
    p.add_argument("--service-node-port-range", default=DEFAULT_NODE_PORT_RANGE,
                   help="FIRST-LAST: the ports NodePort Services get on every node")
    p.add_argument("--scheduler-config", type=Path, default=None, help="YAML file with scheduler plugin weights")
    p.add_argument("--rest-listen", default="",
                   help="address:port of the Kubernetes REST API (for kubectl; controlplane/rest), several "
                        "separated by commas; default: each --listen address with its port + 1 (6444); "
                        "'off': none")
    p.add_argument("--insecure", action="store_true",
                   help="serve plain text without authentication: every caller is a cluster administrator "
                        "(for experiments only; a warning is logged)")
    p.add_argument("--advertise-address", default="",
                   help="host:port nodes reach this API server at (printed in join commands); "
                        "default: the first --listen address that is not loopback, else the first")
    p.add_argument("--tls-san", default="",
                   help="more names or addresses for the serving certificate, comma-separated: with several "
                        "control planes, every control plane's address (clients given `--server a,b` check "
                        "each server's certificate against the first's name)")
    p.add_argument("--node-cert-ttl", type=_duration, default=365 * 86400.0,
                   help="lifetime of the certificates signed for nodes (e.g. 8760h); agents renew at 70%%")
    p.add_argument("--etcd-cafile", type=Path, default=None, help="CA that signs etcd's serving certificate")
    p.add_argument("--etcd-certfile", type=Path, default=None, help="client certificate for etcd")
    p.add_argument("--etcd-keyfile", type=Path, default=None, help="its key")
    controller_settings.add_arguments(p)
    add_log_level_argument(p)
    return p.parse_args(argv)


# gRPC's default 4 MiB limit on received messages would fail any etcd range reply
# larger than that: listing a type of more than a few thousand pods (the watch
# cache's initial list, a List of everything) — etcd itself sends up to 2 GiB.
# Transparent retries are off: they cost each call about 10 % more CPU in gRPC's client
# and etcd failures are mapped to UNAVAILABLE and retried by the callers anyway.
ETCD_CHANNEL_OPTIONS = {"grpc.max_receive_message_length": 2**31 - 1,
                        "grpc.max_send_message_length": 64 * 1024 * 1024,
                        "grpc.enable_retries": 0}
# The API server's own limits: requests carry one object (at most 1.5 MiB), but a
# List reply holds a whole kind (20,000 pods are tens of MiB): no limit on sends.
SERVER_OPTIONS = [("grpc.max_receive_message_length", 8 * 1024 * 1024),
                  ("grpc.max_send_message_length", -1),
                  *keepalive.SERVER_OPTIONS]


def rest_addresses(flag: str, listen: list[str]) -> list[str]:
    """Where the REST API listens: --rest-listen, or each gRPC address with its port + 1; none for 'off'."""
    if flag.strip() == "off":
        return []
    if flag.strip():
        return [a.strip() for a in flag.split(",") if a.strip()]
    out = []
    for address in listen:
        host, _, port = address.rpartition(":")
        out.append(f"{host}:{int(port) + 1}")
    return out


async def connect_etcd(endpoints: list[str], timeout: float = 30.0,
                       tls: grpc.ChannelCredentials | None = None) -> EtcdClient:
    """A client over every endpoint, failing over between the etcd members
    (controlplane/storage/etcd_client.py), once one of them answers; over TLS when
    `tls` is given."""
    return await storage_connect_etcd(endpoints, timeout=timeout, options=ETCD_CHANNEL_OPTIONS, tls=tls)


async def ensure_namespaces(handlers: Handlers) -> None:
    for name in BUILTIN_NAMESPACES:
        for _ in range(50):
            try:
                await handlers.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
                break
            except Exception as exc:  # etcd may still be electing itself leader
                log.debug("waiting to create namespace %s: %r", name, exc)
                await asyncio.sleep(0.2)


async def ensure_default_storage_class(handlers: Handlers) -> None:
    """The built-in `local-path` StorageClass, made at start when missing (changes to it are kept)."""
    from controlplane.controllers.localpath import default_storage_class
    from controlplane.storage import AlreadyExists
    try:
        await handlers.create(default_storage_class())
    except AlreadyExists:
        pass


async def ensure_default_policy(handlers: Handlers) -> None:
    """The default RBAC roles and bindings (controlplane/auth/bootstrap.py), as every start."""
    from controlplane.auth.bootstrap import ensure_default_policy as ensure
    from controlplane.storage import NotFound

    async def get(plural: str, name: str) -> dict | None:
        try:
            return await handlers.get(plural, "", name)
        except NotFound:
            return None

    async def apply(obj: dict) -> None:
        await handlers.apply(obj)
    await ensure(get=get, apply=apply)


async def compactor(handlers: Handlers, interval: float) -> None:
    """Compact etcd history every interval, keeping one interval's worth (as kube-apiserver does)."""
    previous = 0
    while True:
        await asyncio.sleep(interval)
        try:
            current = await handlers.store.current_revision()
            if previous:
                await handlers.store.compact(previous)
                await handlers.compacted(previous)
                log.info("compacted etcd history up to revision %d", previous)
            previous = current
        except Exception as exc:
            log.warning("compaction failed: %r", exc)


async def lead(args: argparse.Namespace, identity: str = "", scheduler_config: "SchedulerConfig | None" = None,
               credentials: Credentials | None = None) -> None:
    """What the leader runs: the scheduler and the controllers, as clients of this API server."""
    from controlplane.client import Client
    from controlplane.leader import publish_leader
    from controlplane.controllers.all import default_controllers
    from controlplane.controllers.manager import Manager

    host, _, port = args.listen.split(",")[0].rpartition(":")
    address = f"{'127.0.0.1' if host in ('0.0.0.0', '', '[::]') else host}:{port}"
    async with Client(address, credentials=credentials or Credentials.plaintext()) as client:
        work = [publish_leader(client, identity=identity, ttl=args.leader_lease_seconds)] if identity else []
        if args.scheduler:
            from controlplane.scheduler.scheduler import Scheduler
            from controlplane.scheduler.config import SchedulerConfig
            work.append(Scheduler(client, scheduler_config or SchedulerConfig()).run())
        if args.controllers:
            settings = controller_settings.from_args(args)
            controllers = default_controllers(settings)
            if controllers:
                work.append(Manager(client, controllers, settings=settings).run())
        if work:
            await asyncio.gather(*work)
        else:
            await asyncio.Event().wait()


async def serve(args: argparse.Namespace) -> int:
    state_dir = args.state_dir.expanduser()
    state_dir.mkdir(parents=True, exist_ok=True)
    etcd: EmbeddedEtcd | None = None
    # The scheduler's weights serve two readers: the scheduler (on the leader) and
    # SchedulePreview (`ctl schedule --dry-run`, on every API server). A bad file is an
    # error now, not when this process first becomes the leader.
    from controlplane.scheduler.config import ConfigError, load_config
    try:
        scheduler_config = load_config(args.scheduler_config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    services = ServiceNetwork(cluster_ip_range=args.service_cluster_ip_range,
                              node_port_range=args.service_node_port_range)
    try:
        services.check()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    etcd_tls = None
    if args.etcd_endpoints:
        endpoints = [e.strip() for e in args.etcd_endpoints.split(",") if e.strip()]
        try:
            for endpoint in endpoints:
                parse_endpoint(endpoint)
        except ValueError as exc:
            print(f"error: --etcd-endpoints: {exc}", file=sys.stderr)
            return 1
        if args.etcd_cafile:
            try:
                etcd_tls = grpc.ssl_channel_credentials(
                    args.etcd_cafile.read_bytes(), args.etcd_keyfile.read_bytes() if args.etcd_keyfile else None,
                    args.etcd_certfile.read_bytes() if args.etcd_certfile else None)
            except OSError as exc:
                print(f"error: --etcd-cafile/--etcd-certfile/--etcd-keyfile: {exc}", file=sys.stderr)
                return 1
        elif not args.insecure and not all(is_loopback(e) for e in endpoints):
            print("error: --etcd-endpoints: etcd off this machine must be reached over TLS: give --etcd-cafile "
                  "(and --etcd-certfile/--etcd-keyfile), or run with --insecure", file=sys.stderr)
            return 1
    else:
        try:
            etcd = EmbeddedEtcd(state_dir)
        except EtcdMissing as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        try:
            await etcd.start()
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        endpoints = [etcd.endpoint]
    try:
        client = await connect_etcd(endpoints, tls=etcd_tls)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if etcd:
            await etcd.stop()
        return 1
    store = Store(client, prefix=args.etcd_prefix)
    handlers = Handlers(store, event_ttl_seconds=args.event_ttl, services=services)
    handlers.scheduler_config = scheduler_config
    server = grpc.aio.server(options=SERVER_OPTIONS)
    from controlplane.auth.access import AccessControl
    from controlplane.auth.serviceaccount_tokens import load_or_create_key
    # Authorization, admission and ServiceAccount tokens (controlplane/auth/access.py).
    access = AccessControl(handlers, token_key=load_or_create_key(state_dir))
    listen = [a.strip() for a in args.listen.split(",") if a.strip()]
    args.rest_addresses = rest_addresses(args.rest_listen, listen)
    security = None if args.insecure else security_mod.setup(state_dir, listen, handlers, args)
    if security is None:
        log.warning("--insecure: the API server speaks plain text and does not authenticate: EVERY caller that "
                    "can reach %s is a cluster administrator", args.listen)
        service = ApiService(handlers, access=access)
        pb_grpc.add_ApiServicer_to_server(service, server)
    else:
        security.authenticator.add_token_authenticator(access.tokens)   # ServiceAccount bearer tokens
        service = ApiService(handlers, authenticate=security.authenticator,
                             agents=proxy.AgentDialer(store, security.agent_client), access=access)
        security.register(service, server)
    try:
        for address in listen:
            listening = address
            if security is None:
                server.add_insecure_port(address)
            else:
                server.add_secure_port(address, security.server_credentials)
    except RuntimeError as exc:
        print(f"error: cannot listen on {listening}: {exc}", file=sys.stderr)
        if etcd:
            await etcd.stop()
        return 1
    rest = rest_runner = None
    if args.rest_addresses:
        from controlplane.rest import server as rest_server
        rest = rest_server.RestApi(service.verbs, version=service_mod.VERSION,
                                   authenticator=security.authenticator if security else None,
                                   permits=security.permits if security else lambda user, method: None)
        try:
            rest_runner = await rest_server.start(rest, args.rest_addresses,
                                                  security.rest_tls() if security else None)
        except OSError as exc:
            print(f"error: cannot listen on --rest-listen {args.rest_listen or ','.join(args.rest_addresses)}: "
                  f"{exc.strerror or exc}", file=sys.stderr)
            if etcd:
                await etcd.stop()
            return 1
    await handlers.start_caches()
    await ensure_namespaces(handlers)
    await ensure_default_policy(handlers)
    await ensure_default_storage_class(handlers)
    await server.start()
    if rest is not None:
        log.info("Kubernetes REST API (kubectl) on https://%s%s", ",".join(args.rest_addresses),
                 "" if security is None else f"; kubeconfig: {state_dir / 'kubeconfig'}")
    log.info("API server listening on %s (%s; etcd %s)", args.listen,
             "plain text, --insecure" if security is None else "TLS", ",".join(endpoints))
    tasks = [asyncio.create_task(compactor(handlers, args.compaction_interval), name="compactor")]
    # Pods reach the API servers where nodes do (--advertise-address; a local cluster's LAN address).
    advertised = security_mod.advertise_address(listen, args.advertise_address)
    # Its port is the REST API's when that is served (in-cluster Kubernetes clients: KUBERNETES_SERVICE_HOST).
    service_port = int((args.rest_addresses[0] if args.rest_addresses else advertised).rpartition(":")[2])
    kubernetes_service = KubernetesService(handlers, address=advertised.rpartition(":")[0].strip("[]"),
                                           port=service_port)
    tasks.append(asyncio.create_task(kubernetes_service.run(), name="kubernetes-service"))
    if args.scheduler or args.controllers:
        elector = LeaderElector(client, key=f"{args.etcd_prefix}/_leader/controlplane".encode(),
                                ttl=args.leader_lease_seconds)
        own = security.controlplane_client if security is not None else None
        tasks.append(asyncio.create_task(elector.run(lambda: lead(args, elector.identity, scheduler_config, own)),
                                         name="leader-election"))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    for task in tasks:
        task.cancel()
    service.stop()   # end request streams and watches: nothing then holds the grace period
    if rest is not None and rest_runner is not None:
        rest.stop()
        await rest_runner.cleanup()
    await server.stop(grace=2)
    for cache in handlers.caches.values():
        await cache.stop()
    await client.close()
    if etcd:
        await etcd.stop()
    return 0


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("backup", "restore"):   # etcd snapshots: controlplane/backup.py
        from controlplane import backup
        sys.exit(backup.main(argv))
    if argv[:1] == ["token"]:
        from controlplane.pki import tokencli
        sys.exit(tokencli.main(argv[1:]))
    args = parse_args(argv)
    setup_logging(args.log_level)
    sys.exit(asyncio.run(serve(args)))


if __name__ == "__main__":
    main()
