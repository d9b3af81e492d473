"""`ctl scale`: set the replicas of Deployments, ReplicaSets and StatefulSets.

    ctl scale deployment web --replicas=5
    ctl scale deploy/web rs/cache --replicas=0
    ctl scale deploy -l app=web --replicas=2 --current-replicas=3

Prints `deployment.apps/web scaled` per object. `--current-replicas` and
`--resource-version` are preconditions: the object is only changed if it
still has that many replicas / that version (kubectl's
`Expected replicas to be 3, was 2` otherwise). The write is a compare-and-swap
on the resourceVersion just read, retried if something else changed the object
meanwhile. The controllers do the rest (a Deployment scales its ReplicaSets
proportionally during a rollout).
"""

from __future__ import annotations

import click

from cli.commands.get import check_selectors
from cli.errors import CliError, report
from cli.resources import parse_targets
from cli.session import global_options, session
from controlplane.client import ApiError, Client, Conflict

SCALABLE = ("Deployment", "ReplicaSet", "StatefulSet")


@click.command()
@click.argument("resources", nargs=-1, metavar="KIND NAME... | KIND/NAME...")
@click.option("--replicas", type=int, default=None, metavar="COUNT", help="The new number of replicas (required).")
@click.option("--current-replicas", type=int, default=-1, metavar="COUNT",
              help="Only scale if the object has this many replicas now (-1: no condition).")
@click.option("--resource-version", default="", metavar="VERSION",
              help="Only scale if the object is at this resourceVersion.")
@click.option("-l", "--selector", default="", metavar="SELECTOR", help="Scale the objects with these labels.")
@click.option("--all", "all_", is_flag=True, help="Scale every object of the kind in the namespace.")
@global_options
def scale(resources: tuple[str, ...], replicas: int | None, current_replicas: int, resource_version: str,
          selector: str, all_: bool) -> int:
    """Set a new size for Deployments, ReplicaSets or StatefulSets."""
    if replicas is None or replicas < 0:
        raise CliError("The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0")
    check_selectors(selector, "")
    targets = parse_targets(resources, verb="scale")
    for target in targets:
        if target.info.kind not in SCALABLE:
            raise CliError(f"cannot scale {target.info.plural}: only deployments, replicasets and statefulsets have replicas")
        if not target.names and not selector and not all_:
            raise CliError("resource(s) were provided, but no name was specified; give names, -l SELECTOR or --all")
        if target.names and (selector or all_):
            raise CliError("names cannot be given together with -l or --all")
    s = session()

    async def scale_one(client: Client, kind: str, name: str) -> dict:
        for _attempt in range(5):
            obj = await client.get(kind, name, s.namespace)
            have = int((obj.get("spec") or {}).get("replicas", 1))
            if current_replicas >= 0 and have != current_replicas:
                raise CliError(f"Expected replicas to be {current_replicas}, was {have}")
            if resource_version and obj["metadata"].get("resourceVersion") != resource_version:
                raise CliError(f"Expected resourceVersion to be {resource_version}, was "
                               f"{obj['metadata'].get('resourceVersion')}")
            obj["spec"]["replicas"] = replicas
            try:
                return await client.update(obj)
            except Conflict:
                if resource_version:
                    raise
        raise CliError(f'{kind.lower()} "{name}" kept changing; try again')

    async def run(client: Client) -> int:
        code = 0
        for target in targets:
            names = target.names or [o["metadata"]["name"] for o in
                                     (await client.list(target.info.kind, s.namespace, label_selector=selector)).items]
            for name in names:
                try:
                    await scale_one(client, target.info.kind, name)
                except (ApiError, CliError) as exc:
                    report(exc)
                    code = 1
                    continue
                click.echo(f"{target.info.qualified}/{name} scaled")
        return code
    return s.run(run)
