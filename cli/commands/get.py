"""`ctl get`: list or fetch objects and print them as kubectl does.

    ctl get pods                      table of the namespace's pods
    ctl get po,deploy -A -o wide      one table per kind, every namespace, extra columns
    ctl get pod web -o yaml           one object; several print as a `kind: List`
    ctl get pods -l app=web -w        the table, then one row per change until Ctrl-C

Output formats are in cli/printers/formats.py, table columns in api/printing/columns.py.
"""

from __future__ import annotations

from typing import Any

import click

from api.errors import ValidationFailed
from api.selectors import parse_field_selector, parse_label_selector
from cli.errors import CliError, report
from cli.printers.formats import OutputFormat, RowPrinter
from cli.printers.structured import without_managed_fields
from cli.resources import Target, parse_targets
from cli.session import global_options, session
from controlplane.client import ApiError, Client, NotFound, TooOld

Results = list[tuple[Target, list[dict[str, Any]]]]


def check_selectors(selector: str | None, field_selector: str | None) -> None:
    try:
        if selector:
            parse_label_selector(selector, path="selector (-l)")
        if field_selector:
            parse_field_selector(field_selector, path="field selector")
    except ValidationFailed as exc:
        raise CliError(str(exc)) from None


def namespace_for(target: Target, all_namespaces: bool) -> str:
    if not target.info.namespaced or all_namespaces:
        return ""
    return session().namespace


def no_resources_message(targets: list[Target], all_namespaces: bool) -> str:
    if all_namespaces or not any(t.info.namespaced for t in targets):
        return "No resources found"
    return f"No resources found in {session().namespace} namespace."


async def fetch(client: Client, targets: list[Target], *, all_namespaces: bool, selector: str,
                field_selector: str) -> tuple[Results, list[ApiError]]:
    """Objects per target, and the NotFound errors of objects asked for by name."""
    results, errors = [], []
    for target in targets:
        ns = namespace_for(target, all_namespaces)
        if target.names:
            objects = []
            for name in target.names:
                try:
                    objects.append(await client.get(target.info.kind, name, ns))
                except NotFound as exc:
                    errors.append(exc)
        else:
            objects = (await client.list(target.info.kind, ns, label_selector=selector,
                                         field_selector=field_selector)).items
        results.append((target, objects))
    return results, errors


def render(results: Results, fmt: OutputFormat, *, single: bool, all_namespaces: bool, show_labels: bool,
           no_headers: bool) -> str:
    if fmt.is_document:
        return fmt.documents([o for _t, objects in results for o in objects], single=single)
    several = len(results) > 1
    blocks = []
    for target, objects in results:
        if objects:
            printer = RowPrinter(fmt, target.info, with_namespace=all_namespaces and target.info.namespaced,
                                 show_labels=show_labels, name_prefix=target.info.qualified if several else "",
                                 headers=not no_headers)
            blocks.append(printer.render(objects))
    # Tables of different kinds are separated by a blank line; names and columns run on.
    return ("\n" if fmt.kind in ("table", "wide") else "").join(blocks)


async def watch_changes(client: Client, target: Target, fmt: OutputFormat, *, all_namespaces: bool,
                        selector: str, field_selector: str, show_labels: bool, no_headers: bool) -> int:
    """Print the current objects, then every change, until interrupted (kubectl get -w)."""
    ns = namespace_for(target, all_namespaces)
    if target.names:
        field_selector = ",".join(filter(None, [field_selector, f"metadata.name={target.names[0]}"]))
    printer = RowPrinter(fmt, target.info, with_namespace=all_namespaces and target.info.namespaced,
                         show_labels=show_labels, headers=not no_headers)

    def show(objects: list[dict[str, Any]]) -> None:
        if objects:
            click.echo(printer.render(objects), nl=False)

    async def relist() -> str:
        listed = await client.list(target.info.kind, ns, label_selector=selector, field_selector=field_selector)
        show(listed.items)
        return listed.resource_version

    version = await relist()
    while True:
        try:
            async for event in client.watch(target.info.kind, ns, label_selector=selector,
                                            field_selector=field_selector, resource_version=version):
                version = event.resource_version or version
                if event.type != "BOOKMARK":
                    show([event.object])
        except TooOld:  # the server no longer has our version: start again from a fresh list
            version = await relist()


@click.command(short_help="Show objects as tables, yaml, json or names.")
@click.argument("resources", nargs=-1, metavar="KIND[,KIND...] [NAME...] | KIND/NAME...")
@click.option("-o", "--output", metavar="FORMAT",
              help="wide, yaml, json, name, jsonpath=TEMPLATE or custom-columns=HEADER:PATH,...")
@click.option("-l", "--selector", default="", metavar="SELECTOR",
              help="Label selector: app=web, tier!=db, env in (a,b), env notin (c), key, !key.")
@click.option("--field-selector", default="", metavar="SELECTOR", help="Field selector: spec.nodeName=n1.")
@click.option("-A", "--all-namespaces", is_flag=True, help="List objects of every namespace.")
@click.option("-w", "--watch", is_flag=True, help="After listing, print every change until interrupted.")
@click.option("--show-labels", is_flag=True, help="Add a LABELS column.")
@click.option("--no-headers", is_flag=True, help="Print tables without their header line.")
@click.option("--show-managed-fields", is_flag=True, help="Keep metadata.managedFields in yaml and json output.")
@global_options
def get(resources: tuple[str, ...], output: str | None, selector: str, field_selector: str, all_namespaces: bool,
        watch: bool, show_labels: bool, no_headers: bool, show_managed_fields: bool = False) -> int:
    """Show objects: a table per kind, or yaml, json, names or chosen fields."""
    fmt = OutputFormat.parse(output)
    targets = parse_targets(resources)
    check_selectors(selector, field_selector)
    named = any(t.names for t in targets)
    if named and selector:
        raise CliError("name cannot be provided when a selector is specified")
    if named and all_namespaces:
        raise CliError("a resource cannot be retrieved by name across all namespaces")
    s = session()
    if watch:
        if len(targets) != 1 or len(targets[0].names) > 1:
            raise CliError("you may only specify a single resource type (and at most one name) with --watch")
        try:
            return s.run(lambda c: watch_changes(c, targets[0], fmt, all_namespaces=all_namespaces,
                                                 selector=selector, field_selector=field_selector,
                                                 show_labels=show_labels, no_headers=no_headers))
        except KeyboardInterrupt:  # Ctrl-C ends a watch; that is success
            return 0
    results, errors = s.run(lambda c: fetch(c, targets, all_namespaces=all_namespaces, selector=selector,
                                            field_selector=field_selector))
    single = len(targets) == 1 and len(targets[0].names) == 1
    found = any(objects for _t, objects in results)
    if fmt.is_document and not show_managed_fields:
        results = [(t, [without_managed_fields(o) for o in objects]) for t, objects in results]
    if found or not (fmt.is_document and single):  # a lone NotFound prints no empty document
        click.echo(render(results, fmt, single=single, all_namespaces=all_namespaces, show_labels=show_labels,
                          no_headers=no_headers), nl=False)
    for exc in errors:
        report(exc)
    if not found and not errors and not fmt.is_document:
        click.echo(no_resources_message(targets, all_namespaces), err=True)
    return 1 if errors else 0
