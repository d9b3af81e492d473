"""`ctl config view|get-contexts|current-context|use-context`: the client config file (cli/config.py).

    ctl config view [--raw]          the file, keys and tokens redacted unless --raw
    ctl config get-contexts          CURRENT NAME CLUSTER AUTHINFO NAMESPACE
    ctl config current-context       the current context's name
    ctl config use-context NAME      make NAME current
"""

from __future__ import annotations

import click
import yaml

from cli import config
from cli.errors import CliError
from cli.printers.tabwriter import TabWriter
from cli.session import global_options, session


@click.group("config", short_help="Show or change the client config (contexts).")
def config_group() -> None:
    """Show or change the client config file: its clusters, users and contexts."""


def _path():  # type: ignore[no-untyped-def]
    return config.config_path(session().config_flag)


@config_group.command(short_help="Show the client config.")
@click.option("--raw", is_flag=True, help="Show certificates, keys and tokens too.")
@global_options
def view(raw: bool) -> int:
    data = config.read_raw(_path())
    click.echo(yaml.safe_dump(data if raw else config.redacted(data), default_flow_style=False, sort_keys=False),
               nl=False)
    return 0


@config_group.command("get-contexts", short_help="List the contexts.")
@global_options
def get_contexts() -> int:
    data = config.read_raw(_path())
    current = data.get("current-context")
    rows = [["CURRENT", "NAME", "CLUSTER", "AUTHINFO", "NAMESPACE"]]
    for entry in data.get("contexts") or []:
        if isinstance(entry, dict):
            ctx = entry.get("context") or {}
            rows.append(["*" if entry.get("name") == current else "", str(entry.get("name", "")),
                         str(ctx.get("cluster", "")), str(ctx.get("user", "")), str(ctx.get("namespace", "") or "")])
    writer = TabWriter(min_width=6, padding=3)   # kubectl's table settings
    writer.write("".join("\t".join(row) + "\n" for row in rows))
    click.echo(writer.flush(), nl=False)
    return 0


@config_group.command("current-context", short_help="Print the current context.")
@global_options
def current_context() -> int:
    name = config.read_raw(_path()).get("current-context")
    if not name:
        raise CliError(f"current-context is not set in {_path()}")
    click.echo(name)
    return 0


@config_group.command("use-context", short_help="Make a context current.")
@click.argument("name")
@global_options
def use_context(name: str) -> int:
    config.use_context(_path(), name)
    click.echo(f'Switched to context "{name}".')
    return 0
