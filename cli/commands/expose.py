"""`ctl expose`: make a Service for a Deployment, ReplicaSet, Pod or Service, as kubectl does.

    ctl expose deployment web --port 80 --target-port 8080
    ctl expose deploy/web --port 80 --type NodePort --name web-public
    ctl expose pod db --port 5432 --protocol TCP

The selector comes from the object: a Deployment's or ReplicaSet's
`spec.selector.matchLabels` (a selector with matchExpressions cannot be a
Service's), a Pod's labels, a Service's own selector. Without --port the ports
are the object's container ports (a Service's ports), named `port-1`, `port-2`
... when there are several. The Service carries the object's labels and is
named after it unless --name says otherwise. Prints `service/NAME exposed`.
"""

from __future__ import annotations

from typing import Any

import click

from cli.errors import CliError
from cli.resources import parse_targets
from cli.session import global_options, session
from controlplane.client import Client

EXPOSABLE = ("Deployment", "ReplicaSet", "Pod", "Service")


def selector_of(obj: dict[str, Any]) -> dict[str, str]:
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if kind == "Pod":
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if not labels:
            raise CliError(f"the pod {obj['metadata']['name']} has no labels and cannot be exposed")
        return dict(labels)
    if kind == "Service":
        if not spec.get("selector"):
            raise CliError(f"the service {obj['metadata']['name']} has no selector and cannot be exposed")
        return dict(spec["selector"])
    selector = spec.get("selector") or {}
    if selector.get("matchExpressions"):
        raise CliError("couldn't convert expressions - \"" + str(selector["matchExpressions"]) +
                       "\" to map-based selector format")
    return dict(selector.get("matchLabels") or {})


def ports_of(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The ports kubectl's introspection finds: containers' ports, or a Service's."""
    spec = obj.get("spec") or {}
    if obj.get("kind") == "Service":
        return [{"port": p["port"], "protocol": p.get("protocol", "TCP"), "targetPort": p.get("targetPort", p["port"])}
                for p in spec.get("ports") or []]
    pod_spec = spec if obj.get("kind") == "Pod" else (spec.get("template") or {}).get("spec") or {}
    return [{"port": p["containerPort"], "protocol": p.get("protocol", "TCP"), "targetPort": p["containerPort"]}
            for c in pod_spec.get("containers") or [] for p in c.get("ports") or []]


def build_service(obj: dict[str, Any], *, name: str, port: int | None, target_port: str | None, type_: str | None,
                  protocol: str | None, namespace: str) -> dict[str, Any]:
    if port is not None:
        target: int | str = target_port if target_port is not None else port
        if isinstance(target, str) and target.isdigit():
            target = int(target)
        ports = [{"port": port, "protocol": protocol or "TCP", "targetPort": target}]
    else:
        ports = ports_of(obj)
        if not ports:
            raise CliError("couldn't find port via --port flag or introspection")
        for p in ports:
            if protocol:
                p["protocol"] = protocol
            if target_port is not None:
                p["targetPort"] = int(target_port) if target_port.isdigit() else target_port
        if len(ports) > 1:
            for i, p in enumerate(ports, start=1):
                p["name"] = f"port-{i}"
    spec: dict[str, Any] = {"selector": selector_of(obj), "ports": ports}
    if type_:
        spec["type"] = type_
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    labels = (obj.get("metadata") or {}).get("labels")
    if labels:
        metadata["labels"] = dict(labels)
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


@click.command(short_help="Make a Service for a deployment, replica set, pod or service.")
@click.argument("resources", nargs=-1, metavar="KIND NAME | KIND/NAME")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="The port the Service serves.")
@click.option("--target-port", default=None, metavar="PORT",
              help="Number or name of the port on the pods (default: --port).")
@click.option("--type", "type_", type=click.Choice(["ClusterIP", "NodePort", "LoadBalancer"]), default=None,
              help="Type of the Service (default ClusterIP).")
@click.option("--name", default="", help="Name of the Service (default: the object's).")
@click.option("--protocol", type=click.Choice(["TCP", "UDP", "SCTP"]), default=None, help="Protocol (default TCP).")
@global_options
def expose(resources: tuple[str, ...], port: int | None, target_port: str | None, type_: str | None, name: str,
           protocol: str | None) -> int:
    """Expose a deployment, replica set, pod or service as a new Service."""
    targets = parse_targets(resources, verb="expose")
    if len(targets) != 1 or len(targets[0].names) != 1:
        raise CliError("expose needs exactly one object: KIND NAME or KIND/NAME")
    target = targets[0]
    if target.info.kind not in EXPOSABLE:
        raise CliError(f"cannot expose a {target.info.kind}: only deployments, replicasets, pods and services")
    s = session()

    async def run(client: Client) -> int:
        obj = await client.get(target.info.kind, target.names[0], s.namespace)
        svc = build_service(obj, name=name or target.names[0], port=port, target_port=target_port, type_=type_,
                            protocol=protocol, namespace=s.namespace)
        created = await client.create(svc)
        click.echo(f"service/{created['metadata']['name']} exposed")
        return 0
    return s.run(run)
