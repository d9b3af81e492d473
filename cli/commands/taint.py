"""`ctl taint nodes`: add or remove node taints, in kubectl's syntax.

    ctl taint nodes node-1 key1=value1:NoSchedule
    ctl taint nodes node-1 key1=value1:NoSchedule-     (removes that taint)
    ctl taint nodes node-1 key1:NoSchedule-            (removes key1's NoSchedule taint)
    ctl taint nodes node-1 key1-                       (removes every taint with key1)
    ctl taint nodes -l disktype=ssd dedicated=gpu:NoExecute --overwrite

A taint with the same key and effect is replaced only with `--overwrite`; removing a
taint the node does not have is an error (`taint "key1:NoSchedule" not found`).
Prints `node/node-1 tainted` or `untainted`.
"""

from __future__ import annotations

import time
from typing import Any

import click

from api.taints import NO_EXECUTE, NO_SCHEDULE, PREFER_NO_SCHEDULE
from cli.changes import change_each, resolve, split_arguments
from cli.errors import CliError
from cli.resources import parse_targets
from cli.session import global_options, session
from controlplane.client import Client

EFFECTS = (NO_SCHEDULE, PREFER_NO_SCHEDULE, NO_EXECUTE)


def _is_taint(arg: str) -> bool:
    return ":" in arg or "=" in arg or (arg.endswith("-") and "/" not in arg)


def parse_taint(spec: str) -> tuple[dict[str, str], bool]:
    """`key=value:Effect` (or `key:Effect`, `key=value:Effect-`, `key-`) → (taint, remove)."""
    remove = spec.endswith("-")
    body = spec[:-1] if remove else spec
    key_value, sep, effect = body.rpartition(":") if ":" in body else (body, "", "")
    key, _, value = key_value.partition("=")
    if not key or (not remove and not sep):
        raise CliError(f'invalid taint spec: {spec}; give key=value:Effect (Effect: {", ".join(EFFECTS)})')
    if effect and effect not in EFFECTS:
        raise CliError(f"invalid taint spec: {spec}, unsupported taint effect {effect!r}; "
                       f"supported: {', '.join(EFFECTS)}")
    taint = {"key": key, "effect": effect}
    if value:
        taint["value"] = value
    return taint, remove


@click.command()
@click.argument("args", nargs=-1, metavar="nodes NAME... KEY[=VALUE]:EFFECT[-]...")
@click.option("--overwrite", is_flag=True, help="Replace a taint with the same key and effect.")
@click.option("-l", "--selector", default="", metavar="SELECTOR", help="Taint the nodes with these labels.")
@click.option("--all", "all_", is_flag=True, help="Taint every node.")
@global_options
def taint(args: tuple[str, ...], overwrite: bool, selector: str, all_: bool) -> int:
    """Add (KEY=VALUE:EFFECT) or remove (KEY:EFFECT-, KEY-) taints on nodes."""
    resources, specs = split_arguments(args, _is_taint)
    if not specs:
        raise CliError("at least one taint update is required")
    targets = parse_targets(resources, verb="taint")
    if any(t.info.kind != "Node" for t in targets):
        raise CliError("taints apply only to nodes: ctl taint nodes NAME KEY=VALUE:EFFECT")
    adds, removes = [], []
    for spec in specs:
        one, remove = parse_taint(spec)
        (removes if remove else adds).append(one)
    s = session()

    def compute(node: dict[str, Any]) -> dict[str, Any] | None:
        name = node["metadata"]["name"]
        taints: list[dict[str, Any]] = list((node.get("spec") or {}).get("taints") or [])
        for gone in removes:
            keep = [t for t in taints if not (t.get("key") == gone["key"]
                                              and (not gone["effect"] or t.get("effect") == gone["effect"]))]
            if len(keep) == len(taints):
                label = gone["key"] + (f":{gone['effect']}" if gone["effect"] else "")
                raise CliError(f'taint "{label}" not found')
            taints = keep
        for new in adds:
            same = [t for t in taints if t.get("key") == new["key"] and t.get("effect") == new["effect"]]
            if same and not overwrite:
                raise CliError(f"node {name} already has {new['key']} taint(s) with same effect(s) "
                               f"and --overwrite is false")
            taints = [t for t in taints if t not in same]
            added = dict(new)
            if new["effect"] == NO_EXECUTE:
                added["timeAdded"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            taints.append(added)
        return {"spec": {"taints": taints}}

    async def run(client: Client) -> int:
        objects = await resolve(client, targets, "", selector=selector, all_=all_)
        return await change_each(client, objects, "", compute,
                                 lambda _info, name, _obj, _changed: click.echo(
                                     f"node/{name} {'tainted' if adds else 'untainted'}"))
    return s.run(run)
