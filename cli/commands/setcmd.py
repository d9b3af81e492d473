"""`ctl set image`: change container images of workloads (a rollout for Deployments).

    ctl set image deployment/nginx nginx=nginx:1.27
    ctl set image deploy web web=web:2 sidecar=envoy:1.30
    ctl set image pods,deploy -l app=web '*=busybox:1.36'      (* : every container)

Init containers match by name too. A name no container has is refused
(`unable to find container named "x"`). Prints `deployment.apps/nginx image updated`.
"""

from __future__ import annotations

from typing import Any

import click

from cli.changes import change_each, resolve, split_arguments
from cli.errors import CliError
from cli.resources import parse_targets
from cli.session import global_options, session
from controlplane.client import Client


def pod_spec_path(obj: dict[str, Any]) -> list[str]:
    """Where the pod spec lives in an object of this kind."""
    kind = obj.get("kind")
    if kind == "Pod":
        return ["spec"]
    if kind == "CronJob":
        return ["spec", "jobTemplate", "spec", "template", "spec"]
    return ["spec", "template", "spec"]


@click.group(name="set")
def set_group() -> None:
    """Set fields of objects (image)."""


@set_group.command(name="image")
@click.argument("args", nargs=-1, metavar="KIND NAME | KIND/NAME CONTAINER=IMAGE...")
@click.option("-l", "--selector", default="", metavar="SELECTOR")
@click.option("--all", "all_", is_flag=True)
@click.option("--dry-run", "dry_run", type=click.Choice(["none", "server"]), default="none")
@global_options
def set_image(args: tuple[str, ...], selector: str, all_: bool, dry_run: str) -> int:
    """Update the images of containers: CONTAINER=IMAGE (* for every container)."""
    resources, specs = split_arguments(args, lambda a: "=" in a)
    if not specs:
        raise CliError("at least one image update is required")
    images: dict[str, str] = {}
    for spec in specs:
        container, _, image = spec.partition("=")
        if not container or not image:
            raise CliError(f"invalid image update {spec!r}: expected CONTAINER=IMAGE")
        images[container] = image
    targets = parse_targets(resources, verb="set image")
    s = session()

    def compute(obj: dict[str, Any]) -> dict[str, Any] | None:
        spec: Any = obj
        for part in pod_spec_path(obj):
            spec = (spec or {}).get(part) or {}
        lists = {f: [dict(c) for c in spec.get(f) or []] for f in ("initContainers", "containers")}
        names = {c.get("name") for items in lists.values() for c in items}
        for container in images:
            if container != "*" and container not in names:
                raise CliError(f'unable to find container named "{container}"')
        changed = False
        for items in lists.values():
            for c in items:
                image = images.get(c.get("name"), images.get("*"))
                if image is not None and c.get("image") != image:
                    c["image"] = image
                    changed = True
        if not changed:
            return None
        patch: dict[str, Any] = {f: items for f, items in lists.items() if items}
        for part in reversed(pod_spec_path(obj)):
            patch = {part: patch}
        return patch

    async def run(client: Client) -> int:
        objects = await resolve(client, targets, s.namespace, selector=selector, all_=all_)
        return await change_each(client, objects, s.namespace, compute,
                                 lambda info, name, *_: click.echo(f"{info.qualified}/{name} image updated"),
                                 dry_run=dry_run == "server")
    return s.run(run)
