"""`ctl cluster up` / `ctl cluster down`: a local cluster in the background (see cli/localcluster.py).

    ctl cluster up [--dir DIR] [--port 6443] [--nodes 1]   start, write the client config (server, CA and
                                                           an admin credential), wait until healthy;
                                                           on an existing cluster: restart what is down;
                                                           kubectl's kubeconfig (REST API on port + 1) is
                                                           DIR/controlplane/kubeconfig
    ctl cluster down [--dir DIR]               stop what `up` started and remove DIR
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import click
import yaml

from api.ipport import parse_ip_port
from cli import config
from cli.errors import CliError
from cli.localcluster import DEFAULT_DIR, LocalCluster
from cli.session import global_options, session


CLUSTER = "skiff-local"
USER = "kubernetes-admin"
CONTEXT = f"{USER}@{CLUSTER}"


def local_entry(admin: dict, server: str) -> dict:
    """The control plane's admin.conf, renamed for the local cluster and pointing at `server`."""
    cluster = dict((admin.get("clusters") or [{}])[0].get("cluster") or {})
    user = dict((admin.get("users") or [{}])[0].get("user") or {})
    return {"clusters": [{"name": CLUSTER, "cluster": {**cluster, "server": server}}],
            "users": [{"name": USER, "user": user}],
            "contexts": [{"name": CONTEXT, "context": {"cluster": CLUSTER, "user": USER}}],
            "current-context": CONTEXT}


@click.group(short_help="Run a local cluster in the background.")
def cluster() -> None:
    """Run a local cluster in the background (state and logs in one directory)."""


dir_option = click.option("--dir", "directory", default=str(DEFAULT_DIR), show_default=True, metavar="DIR",
                          help="Directory for the cluster's state, logs and PIDs.")


@cluster.command(short_help="Start a local control plane.")
@dir_option
@click.option("--port", type=click.IntRange(1, 65535), default=6443, show_default=True,
              help="Port of the API server (on 127.0.0.1).")
@click.option("--nodes", type=click.IntRange(0, 200), default=1, show_default=True,
              help="Node agents to start (root only), each in its own network namespace on a virtual LAN "
                   "in 198.18.0.0/15; 0 for a control plane only.")
@click.option("--timeout", type=float, default=90.0, show_default=True, metavar="SECONDS",
              help="How long to wait for the API server and the nodes to become ready.")
@click.option("--dns-upstream", "dns_upstreams", multiple=True, metavar="IP[:PORT]",
              help="Resolver the nodes' cluster DNS forwards names outside the cluster to (repeatable); "
                   "default: the nameservers of /etc/resolv.conf.")
@click.option("--registry-mirror", "registry_mirrors", multiple=True, metavar="HOST=URL",
              help="Pull HOST's images from URL first (repeatable; HOST * for every registry), e.g. "
                   "docker.io=http://198.18.0.1:5000; an http:// URL is allowed for that mirror.")
@click.option("--registries-config", type=click.Path(dir_okay=False, exists=True), default=None, metavar="FILE",
              help="A registries.yaml (k3s' format: mirrors, configs) given to every node agent.")
@click.option("--registry", is_flag=True,
              help="Also run a registry for the cluster (Debian's docker-registry) on the LAN's host address, "
                   "port 5000, that the nodes pull from over plain http: push images there, :latest included.")
@global_options
def up(directory: str, port: int, nodes: int, timeout: float, dns_upstreams: tuple[str, ...],
       registry_mirrors: tuple[str, ...], registries_config: str | None, registry: bool) -> int:
    """Start a control plane (API server + embedded etcd, scheduler, controllers) and, as root,
    NODES agents on a virtual LAN; point the client config at it."""
    local = LocalCluster(directory)
    if local.recorded():
        # An existing cluster: start again whatever of it is down, say what.
        restarted, running = local.restart(timeout=timeout)
        if not restarted:
            pids = ", ".join(f"{s.component.name} (pid {s.pid})" for s in running)
            click.echo(f"a cluster is already running in {local.root}: {pids}; server {local.server()}")
            return 0
        config.add_cluster(config.config_path(session().config_flag),
                           local_entry(config.read_raw(local.admin_config), local.server()))
        click.echo("; ".join([f"{describe(s.component.name)} restarted (pid {s.pid})" for s in restarted]
                             + [f"{describe(s.component.name)} running" for s in running]))
        click.echo(f"cluster is up: API server at {local.server()}, state in {local.root}")
        _kubectl_hint(local)
        return 0
    if nodes and os.geteuid() != 0:
        click.echo("note: not root, so no node agents are started (they need namespaces, cgroups and mounts); "
                   "pods will stay Pending", err=True)
    for upstream in dns_upstreams:
        try:
            parse_ip_port(upstream, default_port=53)
        except ValueError as exc:
            raise CliError(f"--dns-upstream: {exc}") from None
    registries = registries_document(registries_config, registry_mirrors)
    server, started = local.start(host="127.0.0.1", port=port, nodes=nodes, timeout=timeout,
                                  dns_upstreams=list(dns_upstreams) or None, registries=registries,
                                  registry=registry)
    path = config.config_path(session().config_flag)
    admin = config.read_raw(local.admin_config)
    config.add_cluster(path, local_entry(admin, server))
    for s in started:
        click.echo(f"started {s.component.name} (pid {s.pid}), log {local.logs / (s.component.name + '.log')}")
    if lan := local.lan():
        click.echo(f"nodes {', '.join(local.node_names())} on LAN {lan.subnet} (bridge {lan.bridge})")
    if address := local.registry_address():
        click.echo(f"registry at {address} (plain http): push with `skopeo copy --dest-tls-verify=false "
                   f"oci-archive:app.tar docker://{address}/app:latest`, then use image {address}/app")
    click.echo(f"cluster is up: API server at {server}, state in {local.root}")
    click.echo(f"client config {path}: context {CONTEXT} (admin credential, TLS) is current; "
               f"try: ctl get namespaces")
    _kubectl_hint(local)
    return 0


def registries_document(path: str | None, mirrors: tuple[str, ...]) -> dict | None:
    """The registries file the agents get: FILE's content, with each --registry-mirror added
    to its `mirrors` (an http:// mirror marked insecure under `configs`, as the user asked
    for plain http by writing it). The agents validate the whole file when they start."""
    doc: dict = {}
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise CliError(f"--registries-config {path}: {getattr(exc, 'strerror', None) or exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise CliError(f"--registries-config {path}: must be a mapping with mirrors: and configs:")
        doc = loaded or {}
    for spec in mirrors:
        host, sep, url = spec.partition("=")
        parts = urlsplit(url)
        if not sep or not host or parts.scheme not in ("http", "https") or not parts.netloc:
            raise CliError(f"--registry-mirror {spec!r}: expected HOST=URL, e.g. docker.io=http://198.18.0.1:5000")
        mirror = doc.setdefault("mirrors", {}).setdefault(host, {})
        mirror.setdefault("endpoint", []).append(url.rstrip("/"))
        if parts.scheme == "http":
            doc.setdefault("configs", {}).setdefault(parts.netloc, {})["insecure"] = True
    return doc or None


def _kubectl_hint(local: LocalCluster) -> None:
    """How to use the real kubectl: the control plane's kubeconfig for its REST API (controlplane/rest)."""
    kubectl_config = local.admin_config.parent / "kubeconfig"
    if kubectl_config.exists():
        click.echo(f"kubectl: KUBECONFIG={kubectl_config} kubectl get nodes")


def describe(component: str) -> str:
    """'controlplane' -> 'control plane', 'agent-node-1' -> 'node-1 agent'."""
    if component.startswith("agent-"):
        return f"{component[len('agent-'):]} agent"
    return "control plane" if component == "controlplane" else component


@cluster.command(short_help="Stop the local cluster, remove its directory.")
@dir_option
@click.option("--timeout", type=float, default=15.0, show_default=True, metavar="SECONDS",
              help="How long each process gets to exit after SIGTERM before SIGKILL.")
@global_options
def down(directory: str, timeout: float) -> int:
    """Stop the processes `cluster up` started and remove the cluster directory."""
    local = LocalCluster(directory)
    if not local.root.exists():
        click.echo(f"no cluster in {local.root}")
        return 0
    stopped = local.stop(timeout=timeout)
    for s in stopped:
        click.echo(f"stopped {s.component.name} (pid {s.pid})")
    click.echo(f"removed {local.root}")
    return 0
