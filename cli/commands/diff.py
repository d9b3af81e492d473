"""`ctl diff -f FILE`: what `apply` would change, as a unified diff of YAML.

For each object the server computes the result of applying it (a server dry
run, so defaults, the three-way merge and every server-owned field are exactly
what apply would produce) and ctl compares it with the live object. Fields that
change on every write and say nothing about the object (resourceVersion,
generation, managedFields, the last-applied annotation) are left out; so are
uid and creationTimestamp, which a new object does not have yet.

Exit status, as kubectl's: 0 no differences, 1 differences, 2 (>1) an error.
"""

from __future__ import annotations

import copy
import difflib
from typing import Any

import click

from cli.commands.apply import load_checked, manifest_options
from cli.errors import CliError, api_error_line, print_error, report
from cli.printers import to_yaml
from cli.session import global_options, session
from cli.validation import Checked
from controlplane.client import ApiError, Client, NotFound

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
VOLATILE_METADATA = ("resourceVersion", "generation", "managedFields", "uid", "creationTimestamp")
ERROR_EXIT = 2


def comparable(obj: dict[str, Any] | None) -> str:
    """The object as YAML without the fields that differ on every write; "" for no object."""
    if obj is None:
        return ""
    obj = copy.deepcopy(obj)
    meta = obj.get("metadata") or {}
    for key in VOLATILE_METADATA:
        meta.pop(key, None)
    annotations = meta.get("annotations") or {}
    annotations.pop(LAST_APPLIED, None)
    if not annotations:
        meta.pop("annotations", None)
    return to_yaml(obj)


def file_name(item: Checked) -> str:
    """kubectl's file name for an object in a diff: `apps.v1.Deployment.default.web`."""
    group_version = item.info.api_version.replace("/", ".")
    return ".".join(filter(None, [group_version, item.info.kind, item.namespace, item.name]))


def unified(item: Checked, live: dict[str, Any] | None, merged: dict[str, Any]) -> str:
    before, after = comparable(live), comparable(merged)
    if before == after:
        return ""
    name = file_name(item)
    lines = difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                 fromfile=f"LIVE/{name}", tofile=f"MERGED/{name}")
    body = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    return f"diff -u -N LIVE/{name} MERGED/{name}\n{body}"


@click.command(short_help="Diff live objects against manifests.")
@manifest_options
@global_options
def diff(filenames: tuple[str, ...], recursive: bool) -> int:
    """Show how the live objects differ from what applying the manifests would make them.

    Exit status: 0 no differences, 1 differences, 2 an error.
    """
    try:
        batch = load_checked(filenames, recursive, verb="diff")
    except CliError as exc:
        report(exc)
        return ERROR_EXIT

    async def run(client: Client) -> int:
        changed = False
        for item in batch:
            try:
                merged, _result = await client.apply(item.obj, dry_run=True)
                try:
                    live = await client.get(item.info.kind, item.name, item.namespace)
                except NotFound:
                    live = None
            except ApiError as exc:
                print_error(api_error_line(exc, f'error when diffing "{item.doc.source}": '))
                return ERROR_EXIT
            text = unified(item, live, merged)
            if text:
                changed = True
                click.echo(text, nl=False)
        return 1 if changed else 0

    try:
        return session().run(run)
    except (ApiError, CliError) as exc:
        report(exc)
        return ERROR_EXIT
