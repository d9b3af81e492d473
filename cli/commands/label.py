"""`ctl label` and `ctl annotate`: set or remove labels and annotations, as kubectl does.

    ctl label nodes node-1 disktype=ssd
    ctl label pods web env=prod tier-            (tier- removes the label)
    ctl label pods --all -n dev env=dev --overwrite
    ctl annotate deploy/web description='my frontend'

A key that already has another value is refused unless `--overwrite`
(`error: 'env' already has a value (dev), and --overwrite is false`). Prints
`node/node-1 labeled` (`unlabeled` when only removing, `not labeled` when nothing
changed); annotate prints `annotated`. Keys and values are validated by the server.
"""

from __future__ import annotations

import re
from typing import Any

import click

from cli.changes import change_each, resolve, split_arguments
from cli.errors import CliError
from cli.printers import print_object
from cli.resources import parse_targets
from cli.session import global_options, session
from controlplane.client import Client

_CHANGE = re.compile(r"^[^=\s]+=|^[^=\s/]+(/[^=\s]+)?-$")


def _is_change(arg: str) -> bool:
    return bool(_CHANGE.match(arg)) and not arg.startswith("-")


def parse_changes(changes: list[str], what: str) -> tuple[dict[str, str], list[str]]:
    """`k=v` and `k-` arguments → (to set, to remove)."""
    to_set: dict[str, str] = {}
    to_remove: list[str] = []
    for arg in changes:
        if "=" in arg:
            key, _, value = arg.partition("=")
            if not key:
                raise CliError(f"invalid {what} spec: {arg}")
            to_set[key] = value
        else:
            to_remove.append(arg[:-1])
    both = set(to_set) & set(to_remove)
    if both:
        raise CliError(f"can not both modify and remove the following {what}(s) in the same command: "
                       f"{', '.join(sorted(both))}")
    return to_set, to_remove


def _metadata_verb(field: str, what: str, done_word: str, undone: str, nothing: str):
    """The command for one metadata map (labels or annotations)."""

    @click.command(name=what if what == "annotate" else "label",
                   context_settings={"ignore_unknown_options": False})
    @click.argument("args", nargs=-1, metavar="KIND NAME... | KIND/NAME... KEY=VAL... KEY-...")
    @click.option("--overwrite", is_flag=True, help=f"Replace {field} that already have a value.")
    @click.option("-l", "--selector", default="", metavar="SELECTOR", help="Change the objects with these labels.")
    @click.option("--all", "all_", is_flag=True, help="Change every object of the kind in the namespace.")
    @click.option("--resource-version", default="", metavar="VERSION",
                  help="Only change the object if it is at this resourceVersion.")
    @click.option("--dry-run", "dry_run", type=click.Choice(["none", "client", "server"]), default="none")
    @click.option("-o", "--output", type=click.Choice(["name", "yaml", "json"]), default=None)
    @global_options
    def command(args: tuple[str, ...], overwrite: bool, selector: str, all_: bool, resource_version: str,
                dry_run: str, output: str | None) -> int:
        resources, changes = split_arguments(args, _is_change)
        if not changes:
            raise CliError(f"at least one {field[:-1]} update is required")
        to_set, to_remove = parse_changes(changes, field[:-1])
        targets = parse_targets(resources, verb=what)
        s = session()

        def compute(obj: dict[str, Any]) -> dict[str, Any] | None:
            meta = obj.get("metadata") or {}
            if resource_version and meta.get("resourceVersion") != resource_version:
                raise CliError(f"Expected resourceVersion to be {resource_version}, was {meta.get('resourceVersion')}")
            have = meta.get(field) or {}
            if not overwrite:
                for key, value in to_set.items():
                    if key in have and have[key] != value:
                        raise CliError(f"'{key}' already has a value ({have[key]}), and --overwrite is false")
            patch: dict[str, Any] = {k: v for k, v in to_set.items() if have.get(k) != v}
            patch.update({k: None for k in to_remove if k in have})
            if not patch:
                return None
            return {"metadata": {field: patch}}

        def done(info: Any, name: str, obj: dict[str, Any], changed: bool) -> None:
            if not print_object(info, obj, output):
                word = nothing if not changed else (undone if to_remove and not to_set else done_word)
                suffix = " (server dry run)" if dry_run == "server" else ""
                click.echo(f"{info.qualified}/{name} {word}{suffix}")

        async def run(client: Client) -> int:
            objects = await resolve(client, targets, s.namespace, selector=selector, all_=all_)
            return await change_each(client, objects, s.namespace, compute, done, dry_run=dry_run == "server")

        if dry_run == "client":
            # Nothing is written: read, check, and say what would happen.
            async def preview(client: Client) -> int:
                for info, name in await resolve(client, targets, s.namespace, selector=selector, all_=all_):
                    obj = await client.get(info.kind, name, s.namespace if info.namespaced else "")
                    word = done_word if compute(obj) is not None else nothing
                    click.echo(f"{info.qualified}/{name} {word} (dry run)")
                return 0
            return s.run(preview)
        return s.run(run)

    command.help = (f"Update the {field} of objects: KEY=VALUE sets, KEY- removes.\n\n"
                    f"    ctl {what} nodes node-1 disktype=ssd\n"
                    f"    ctl {what} pod/web env- --overwrite")
    return command


label = _metadata_verb("labels", "label", "labeled", "unlabeled", "not labeled")
annotate = _metadata_verb("annotations", "annotate", "annotated", "annotated", "not annotated")
