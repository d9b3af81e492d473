"""`ctl events`: the events of a namespace (or one object), oldest first, as kubectl events prints them.

    ctl events                         ctl events -A
    ctl events --for pod/web           ctl events --for deployment/web -w
    ctl events --types=Warning

Columns LAST SEEN, TYPE, REASON, OBJECT, MESSAGE (the `Event` table of api/printing,
as `ctl get events` prints it), sorted by when each was last seen. `--for KIND/NAME`
keeps the events whose involvedObject is that object (a field selector on the server);
`-w` prints the list, then each new or repeated event as it comes.
"""

from __future__ import annotations

from typing import Any

import click

from api.printing.columns import event_last_seen
from cli.errors import CliError
from cli.printers.table import Table
from cli.resources import find_kind
from cli.session import global_options, session
from controlplane.client import Client, TooOld


def _order(ev: dict[str, Any]) -> str:
    return str(event_last_seen(ev) or "")


@click.command()
@click.option("--for", "for_", default="", metavar="KIND/NAME", help="Only the events of this object.")
@click.option("-w", "--watch", is_flag=True, help="After listing, print events as they come.")
@click.option("-A", "--all-namespaces", is_flag=True, help="Events of every namespace.")
@click.option("--types", default="", metavar="Normal,Warning", help="Only events of these types.")
@click.option("--no-headers", is_flag=True)
@global_options
def events(for_: str, watch: bool, all_namespaces: bool, types: str, no_headers: bool) -> int:
    """List events."""
    selectors = []
    if for_:
        kind, _, name = for_.partition("/")
        if not kind or not name:
            raise CliError(f"--for must be KIND/NAME, got {for_!r}")
        selectors += [f"involvedObject.kind={find_kind(kind).kind}", f"involvedObject.name={name}"]
    wanted = {t.strip().lower() for t in types.split(",") if t.strip()}
    for t in wanted - {"normal", "warning"}:
        raise CliError(f"valid --types are Normal or Warning, got {t!r}")
    field_selector = ",".join(selectors)
    s = session()
    ns = "" if all_namespaces else s.namespace
    table = Table("Event", with_namespace=all_namespaces, headers=not no_headers)

    def show(items: list[dict[str, Any]]) -> None:
        items = [e for e in items if not wanted or str(e.get("type", "")).lower() in wanted]
        if items:
            click.echo(table.render(sorted(items, key=_order)), nl=False)

    async def run(client: Client) -> int:
        listed = await client.list("Event", ns, field_selector=field_selector)
        if not listed.items and not watch:
            click.echo(f"No events found in {ns} namespace." if ns else "No events found.", err=True)
        show(listed.items)
        version = listed.resource_version
        while watch:
            try:
                async for event in client.watch("Event", ns, field_selector=field_selector, resource_version=version):
                    version = event.resource_version or version
                    if event.type in ("ADDED", "MODIFIED"):
                        show([event.object])
            except TooOld:
                version = (await client.list("Event", ns, field_selector=field_selector)).resource_version
        return 0
    try:
        return s.run(run)
    except KeyboardInterrupt:
        return 0
