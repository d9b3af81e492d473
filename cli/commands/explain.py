"""`ctl explain KIND[.field.path]`: the documentation of a kind or field (see cli/explain.py)."""

from __future__ import annotations

import click

from cli.explain import explain as render
from cli.session import global_options


@click.command(short_help="Document a kind or one of its fields.")
@click.argument("path", metavar="KIND[.FIELD.PATH]")
@click.option("--recursive", is_flag=True, help="Print every nested field, without descriptions.")
@global_options
def explain(path: str, recursive: bool) -> int:
    """Document a kind or one of its fields: `ctl explain pod.spec.containers`.

    Read from the same schema the API server validates with; needs no server.
    """
    click.echo(render(path, recursive=recursive), nl=False)
    return 0
