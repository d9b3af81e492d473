"""`ctl describe`: one object (or every matching one) in kubectl's human layout, with its Events.

    ctl describe pod web          ctl describe pods -l app=web       ctl describe node/n1

A name that matches no object exactly describes the objects whose names start
with it (`ctl describe pod web` finds `web-5d9c7-x2x4z`), as kubectl does.
Events are those whose involvedObject is the object, oldest first.
"""

from __future__ import annotations

from typing import Any

import click

from api.registry import ResourceInfo
from cli.columns import get
from cli.commands.get import check_selectors, namespace_for, no_resources_message
from cli.describe import describe as render
from cli.errors import report
from cli.resources import Target, parse_targets
from cli.session import global_options, session
from controlplane.client import ApiError, Client, NotFound


async def events_for(client: Client, info: ResourceInfo, obj: dict[str, Any]) -> list[dict[str, Any]]:
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace", "") if info.namespaced else ""
    selector = f"involvedObject.name={meta.get('name', '')}"
    if namespace:
        selector += f",involvedObject.namespace={namespace}"
    events = (await client.list("Event", namespace, field_selector=selector)).items
    uid = meta.get("uid")
    return [e for e in events
            if get(e, "involvedObject.kind") in (None, "", info.kind)
            and (not uid or not get(e, "involvedObject.uid") or get(e, "involvedObject.uid") == uid)]


async def related_for(client: Client, info: ResourceInfo, obj: dict[str, Any]) -> list[dict[str, Any]]:
    """What a layout shows beside the object: a Service's EndpointSlices."""
    if info.kind != "Service":
        return []
    meta = obj.get("metadata") or {}
    return (await client.list("EndpointSlice", meta.get("namespace", ""),
                              label_selector=f"kubernetes.io/service-name={meta.get('name', '')}")).items


async def objects_for(client: Client, target: Target, *, namespace: str, selector: str,
                      errors: list[ApiError]) -> list[dict[str, Any]]:
    if not target.names:
        return (await client.list(target.info.kind, namespace, label_selector=selector)).items
    found = []
    for name in target.names:
        try:
            found.append(await client.get(target.info.kind, name, namespace))
        except NotFound as exc:
            by_prefix = [o for o in (await client.list(target.info.kind, namespace)).items
                         if get(o, "metadata.name", "").startswith(name)]
            if not by_prefix:
                errors.append(exc)
            found.extend(by_prefix)
    return found


@click.command()
@click.argument("resources", nargs=-1, metavar="KIND [NAME...] | KIND/NAME...")
@click.option("-l", "--selector", default="", metavar="SELECTOR", help="Describe the objects with these labels.")
@click.option("-A", "--all-namespaces", is_flag=True, help="Look in every namespace.")
@global_options
def describe(resources: tuple[str, ...], selector: str, all_namespaces: bool) -> int:
    """Show the details of objects and their recent events."""
    targets = parse_targets(resources, verb="describe")
    check_selectors(selector, "")

    async def collect(client: Client) -> tuple[list[str], list[ApiError]]:
        texts: list[str] = []
        errors: list[ApiError] = []
        for target in targets:
            ns = namespace_for(target, all_namespaces)
            for obj in await objects_for(client, target, namespace=ns, selector=selector, errors=errors):
                texts.append(render(target.info, obj, await events_for(client, target.info, obj),
                                    related=await related_for(client, target.info, obj)))
        return texts, errors

    texts, errors = session().run(collect)
    click.echo("\n\n".join(texts), nl=False)
    for exc in errors:
        report(exc)
    if not texts and not errors:
        click.echo(no_resources_message(targets, all_namespaces), err=True)
    return 1 if errors else 0
