"""`ctl image load|ls|pull|rm [--node N]`: images in nodes' stores.

`load` imports an OCI-layout or `docker save` archive into every node's store
(or one node's), as `kind load` and `k3s ctr images import` do, so air-gapped
clusters run images without a registry. The API server forwards each request
to the agents.
"""

from __future__ import annotations

from pathlib import Path

import click

from cli.errors import CliError
from cli.printers.tabwriter import align
from cli.session import global_options, session

node_option = click.option("--node", default="", metavar="NODE", help="Only this node (default: every node).")


def _report(result: dict, verb: str) -> int:
    for image in result["images"]:
        click.echo(f"{image['node']}: {verb} {', '.join(n for n in image['names'] if '@' not in n) or image['digest']}")
    for error in result["errors"]:
        click.echo(f"error: {error}", err=True)
    return 1 if result["errors"] else 0


@click.group()
def image() -> None:
    """Manage images in the nodes' stores."""


@image.command()
@click.argument("archive", type=click.Path(dir_okay=False, path_type=Path))
@node_option
@global_options
def load(archive: Path, node: str) -> int:
    """Import an image archive (OCI layout or docker save tarball) into nodes."""
    if not archive.is_file():
        raise CliError(f"image load: {archive}: no such file")
    return _report(session().run(lambda c: c.load_image(str(archive), node=node)), "loaded")


@image.command("ls")
@node_option
@global_options
def ls(node: str) -> int:
    """List the images on nodes."""
    result = session().run(lambda c: c.list_images(node=node))
    rows = [["NODE", "IMAGE", "DIGEST", "SIZE"]]
    for i in sorted(result["images"], key=lambda i: (i["node"], i["names"])):
        names = [n for n in i["names"] if "@" not in n] or i["names"]
        for name in names:
            rows.append([i["node"], name, i["digest"][:19], _size(i["size"])])
    click.echo(align(rows), nl=False)
    for error in result["errors"]:
        click.echo(f"error: {error}", err=True)
    return 1 if result["errors"] else 0


@image.command()
@click.argument("name")
@node_option
@global_options
def pull(name: str, node: str) -> int:
    """Pull an image from its registry into nodes."""
    return _report(session().run(lambda c: c.pull_image(name, node=node)), "pulled")


@image.command()
@click.argument("name")
@node_option
@global_options
def rm(name: str, node: str) -> int:
    """Remove an image from nodes (refused while a pod uses it)."""
    result = session().run(lambda c: c.remove_image(name, node=node))
    if not result["errors"]:
        click.echo(f"removed {name}")
    return _report(result, "removed")


def _size(n: int) -> str:
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n}B"
