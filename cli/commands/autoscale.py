"""`ctl autoscale`: create a HorizontalPodAutoscaler for a Deployment or ReplicaSet, as kubectl does.

    ctl autoscale deployment php-apache --cpu-percent=50 --min=1 --max=10

Prints `horizontalpodautoscaler.autoscaling/php-apache autoscaled`. The HPA is
autoscaling/v2 with one cpu Utilization metric (`--cpu-percent`; without it the
controller's default, 80 %), named after the target unless `--name` says otherwise.
"""

from __future__ import annotations

from typing import Any

import click

from api.registry import lookup
from cli.errors import CliError
from cli.resources import parse_targets
from cli.session import global_options, session
from controlplane.client import Client

SCALABLE = ("Deployment", "ReplicaSet")


def autoscaler(target: dict[str, Any], name: str, *, min_replicas: int, max_replicas: int,
               cpu_percent: int) -> dict[str, Any]:
    meta = target["metadata"]
    spec: dict[str, Any] = {"scaleTargetRef": {"apiVersion": target["apiVersion"], "kind": target["kind"],
                                               "name": meta["name"]},
                            "maxReplicas": max_replicas}
    if min_replicas >= 1:
        spec["minReplicas"] = min_replicas
    if cpu_percent >= 0:
        spec["metrics"] = [{"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": cpu_percent}}}]
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name or meta["name"], "namespace": meta.get("namespace")}, "spec": spec}


@click.command()
@click.argument("resources", nargs=-1, metavar="KIND NAME | KIND/NAME")
@click.option("--min", "min_replicas", type=int, default=-1, metavar="MINPODS",
              help="The lower limit of pods (default 1).")
@click.option("--max", "max_replicas", type=int, default=-1, metavar="MAXPODS", help="The upper limit of pods.")
@click.option("--cpu-percent", type=int, default=-1, metavar="PERCENT",
              help="Target average CPU use over all pods, as a percentage of their requests (default 80).")
@click.option("--name", default="", help="Name of the autoscaler (default: the target's).")
@click.option("--dry-run", type=click.Choice(["none", "server", "client"]), default="none", help="Only check.")
@global_options
def autoscale(resources: tuple[str, ...], min_replicas: int, max_replicas: int, cpu_percent: int, name: str,
              dry_run: str) -> int:
    """Create an autoscaler that scales a Deployment or ReplicaSet to its pods' CPU use."""
    if max_replicas < 1:
        raise CliError(f"--max=MAXPODS is required and must be at least 1, max: {max_replicas}")
    if min_replicas > max_replicas:
        raise CliError(f"--max=MAXPODS must be larger or equal to --min=MINPODS, max: {max_replicas}, "
                       f"min: {min_replicas}")
    targets = parse_targets(resources, verb="autoscale")
    if len(targets) != 1 or len(targets[0].names) != 1:
        raise CliError("autoscale takes one object: ctl autoscale deployment NAME --max=N")
    kind = targets[0].info
    if kind.kind not in SCALABLE:
        raise CliError(f"cannot autoscale a {kind.kind}: only deployments and replicasets")
    s = session()

    async def run(client: Client) -> int:
        target = await client.get(kind.kind, targets[0].names[0], s.namespace)
        hpa = autoscaler(target, name, min_replicas=min_replicas, max_replicas=max_replicas,
                         cpu_percent=cpu_percent)
        await client.create(hpa, dry_run=dry_run != "none")
        suffix = " (server dry run)" if dry_run == "server" else " (dry run)" if dry_run == "client" else ""
        click.echo(f"{lookup('HorizontalPodAutoscaler').qualified}/{hpa['metadata']['name']} autoscaled{suffix}")
        return 0
    return s.run(run)
