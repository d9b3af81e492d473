"""`ctl port-forward`: local ports to a pod's ports, through the API server and the pod's agent.

    ctl port-forward pod/web-5d9c 8080:80      local 8080 → the pod's port 80
    ctl port-forward svc/web 8080:80           a pod of the Service; 80 is the Service's port
    ctl port-forward deploy/web :8080          a free local port, chosen and printed

Like kubectl: a Service, Deployment or ReplicaSet stands for one of its pods (a
ready, running one first); a Service's port is translated to its targetPort on
that pod (a named one through the pod's container ports). Every accepted
connection is its own PortForward stream (several at once); Ctrl-C ends it all.
The agent connects to the pod's IP, so a server listening only on the pod's
loopback is not reached (kubectl's is, from inside the pod's network namespace).
"""

from __future__ import annotations

import asyncio
from typing import Any

import click

from cli.errors import CliError, report
from cli.resources import parse_targets
from cli.session import global_options, session
from controlplane.client import ApiError, Client
from controlplane.client.portforward import forward_connection

FORWARDABLE = ("Pod", "Service", "Deployment", "ReplicaSet")


def parse_ports(specs: tuple[str, ...]) -> list[tuple[int, int]]:
    """`[LOCAL:]REMOTE` → (local, remote); local 0 means a free port."""
    out = []
    for spec in specs:
        local, sep, remote = spec.rpartition(":")
        text = remote if sep else spec
        try:
            pair = (int(local) if local else (0 if sep else int(text)), int(text))
        except ValueError:
            raise CliError(f"Invalid port specification {spec!r}: expected [LOCAL:]REMOTE, e.g. 8080:80") from None
        if not all(0 <= p <= 65535 for p in pair) or pair[1] == 0:
            raise CliError(f"Invalid port specification {spec!r}: ports must be 1-65535")
        out.append(pair)
    if not out:
        raise CliError("at least 1 PORT is required for port-forward")
    return out


def _rank(pod: dict[str, Any]) -> tuple:
    status = pod.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return (not ready, status.get("phase") != "Running", (pod.get("metadata") or {}).get("creationTimestamp") or "")


def container_port(pod: dict[str, Any], name: str) -> int | None:
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == name:
                return int(p["containerPort"])
    return None


async def resolve(client: Client, kind: str, name: str, namespace: str,
                  ports: list[tuple[int, int]]) -> tuple[str, list[tuple[int, int]]]:
    """The pod to forward to, and the ports on it."""
    obj = await client.get(kind, name, namespace)
    if kind == "Pod":
        return name, ports
    spec = obj.get("spec") or {}
    selector = spec.get("selector") if kind == "Service" else (spec.get("selector") or {}).get("matchLabels")
    if not selector:
        raise CliError(f"{kind.lower()} {name} has no selector: there is no pod to forward to")
    text = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    pods = [p for p in (await client.list("Pod", namespace, label_selector=text)).items
            if not (p.get("metadata") or {}).get("deletionTimestamp")]
    if not pods:
        raise CliError(f"no pods found for {kind.lower()} {name} (selector {text})")
    pod = sorted(pods, key=_rank)[0]
    if kind != "Service":
        return pod["metadata"]["name"], ports
    out = []
    for local, remote in ports:
        svc_port = next((p for p in spec.get("ports") or [] if p.get("port") == remote), None)
        if svc_port is None:
            raise CliError(f"Service {name} does not have a service port {remote}")
        target = svc_port.get("targetPort", remote)
        if isinstance(target, str) and not target.isdigit():
            number = container_port(pod, target)
            if number is None:
                raise CliError(f"Pod '{pod['metadata']['name']}' does not have a named port '{target}'")
            target = number
        out.append((local, int(target)))
    return pod["metadata"]["name"], out


@click.command("port-forward", short_help="Forward local ports to a pod.")
@click.argument("target", metavar="TYPE/NAME")
@click.argument("ports", nargs=-1, metavar="[LOCAL:]REMOTE...")
@click.option("--address", default="127.0.0.1", show_default=True, help="Local address to listen on.")
@global_options
def port_forward(target: str, ports: tuple[str, ...], address: str) -> int:
    """Forward local ports to a pod (or a pod of a Service, Deployment or ReplicaSet)."""
    wanted = parse_ports(ports)
    targets = parse_targets((target,) if "/" in target else ("pod", target), verb="port-forward")
    kind, name = targets[0].info.kind, targets[0].names[0]
    if kind not in FORWARDABLE:
        raise CliError(f"cannot port-forward to a {kind}: only pods, services, deployments and replicasets")
    s = session()

    async def run(client: Client) -> int:
        pod, pairs = await resolve(client, kind, name, s.namespace, wanted)
        servers = []
        for local, remote in pairs:
            shown = {"port": local}   # the bound port, once known (a free one when local is 0)

            async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, remote: int = remote,
                             shown: dict[str, int] = shown) -> None:
                click.echo(f"Handling connection for {shown['port']}")
                try:
                    await forward_connection(client, namespace=s.namespace, pod=pod, port=remote, reader=reader,
                                             writer=writer)
                except ApiError as exc:
                    report(exc)
            try:
                server = await asyncio.start_server(handle, address, local)
            except OSError as exc:
                raise CliError(f"unable to listen on {address}:{local}: {exc.strerror or exc}") from None
            shown["port"] = server.sockets[0].getsockname()[1]
            servers.append(server)
            click.echo(f"Forwarding from {address}:{shown['port']} -> {remote}")
        await asyncio.gather(*(srv.serve_forever() for srv in servers))
        return 0

    try:
        return s.run(run)
    except KeyboardInterrupt:   # Ctrl-C ends it; that is success
        return 0
