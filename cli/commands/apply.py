"""`ctl apply`, `ctl create` and `ctl replace`: write the objects of manifest files.

All three work in three steps, so that a bad file writes nothing:
  1. read every document (-f FILE|DIR|-, -R) and validate each with api/ on
     the client: any bad document stops the command with one line per problem;
  2. send every object to the server as a dry run, which finds what only the
     server knows (a missing namespace, a name already taken, a stale
     resourceVersion, a field that may not change) — again before any write;
  3. write the objects in file order, printing kubectl's line for each:
     `deployment.apps/web created`, `configmap/settings unchanged`.

`--dry-run=client` stops after step 1 (it only reads the live object to say
created or configured); `--dry-run=server` stops after step 2.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import click

from cli import manifests, validation
from cli.errors import CliError, api_error_line, print_error
from cli.printers import to_json, to_name, to_yaml
from cli.session import global_options, session
from cli.validation import Checked
from controlplane.client import AlreadyExists, ApiError, Client, Forbidden, NotFound

Writer = Callable[[Client, Checked, bool], Awaitable[tuple[dict[str, Any], str]]]


def manifest_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("-R", "--recursive", is_flag=True,
                     help="Read directories given with -f recursively.")(f)
    f = click.option("-f", "--filename", "filenames", multiple=True, metavar="FILE|DIR|-",
                     help="Manifest file, directory of .yaml/.yml/.json files, or - for stdin. Repeatable.")(f)
    return f


def write_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("-o", "--output", type=click.Choice(["name", "yaml", "json"]),
                     help="Print the written objects in this format instead of a status line.")(f)
    f = click.option("--dry-run", "dry_run", type=click.Choice(["none", "client", "server"]), default="none",
                     is_flag=False, flag_value="client", show_default=True,
                     help="client: validate only; server: let the server check without writing.")(f)
    return f


def load_checked(filenames: tuple[str, ...], recursive: bool, *, verb: str) -> list[Checked]:
    if not filenames:
        raise CliError(f"must specify one of -f and -k (ctl {verb} -f FILE|DIR|-)")
    docs = manifests.read(filenames, recursive=recursive)
    if not docs:
        raise CliError(f"no objects passed to {verb}")
    s = session()
    return validation.check_all(docs, namespace=s.namespace, explicit_namespace=s.explicit_namespace)


def _created_by_batch(item: Checked, batch: list[Checked], exc: ApiError) -> bool:
    """The dry run failed only for want of what an earlier object of the batch writes: the
    object's namespace does not exist yet, or (Pod Security) its namespace's level is being
    changed by the batch. The real write, in file order, decides."""
    if isinstance(exc, NotFound) and exc.message == f'namespaces "{item.namespace}" not found':
        pass
    elif not (isinstance(exc, Forbidden) and "violates PodSecurity" in exc.message):
        return False
    for other in batch:
        if other is item:
            return False
        if other.info.kind == "Namespace" and other.name == item.namespace:
            return True
    return False


def _print_result(item: Checked, obj: dict[str, Any], result: str, *, output: str | None, suffix: str = "") -> None:
    if output == "name":
        click.echo(to_name(item.info, obj))
    elif output == "yaml":
        click.echo("---\n" + to_yaml(obj), nl=False)
    elif output == "json":
        click.echo(to_json(obj), nl=False)
    else:
        click.echo(f"{item.ref} {result}{suffix}")


async def write_all(client: Client, batch: list[Checked], write: Writer, *, action: str, dry_run: str,
                    output: str | None) -> int:
    """Steps 2 and 3: a server dry run of every object, then (unless dry-running) the writes."""
    preview: list[tuple[dict[str, Any], str] | None] = []
    failed = False
    for item in batch:
        try:
            preview.append(await write(client, item, True))
        except ApiError as exc:
            preview.append(None)
            if _created_by_batch(item, batch, exc) and dry_run != "server":
                continue
            print_error(api_error_line(exc, f'error when {action} "{item.doc.source}": '))
            failed = True
    if failed:
        return 1
    if dry_run == "server":
        for item, result in zip(batch, preview):
            if result is not None:
                _print_result(item, result[0], result[1], output=output, suffix=" (server dry run)")
        return 0
    code = 0
    for item in batch:
        try:
            obj, result = await write(client, item, False)
        except ApiError as exc:  # the cluster changed between the dry run and now
            print_error(api_error_line(exc, f'error when {action} "{item.doc.source}": '))
            code = 1
            continue
        _print_result(item, obj, result, output=output)
    return code


async def client_dry_run(client: Client, batch: list[Checked], *, output: str | None) -> int:
    """--dry-run=client: nothing goes to the server but reads; say what would happen."""
    for item in batch:
        try:
            await client.get(item.info.kind, item.name, item.namespace)
            result = "configured"
        except NotFound:
            result = "created"
        _print_result(item, item.obj, result, output=output, suffix=" (dry run)")
    return 0


def run_writes(batch: list[Checked], write: Writer, *, action: str, dry_run: str, output: str | None) -> int:
    s = session()
    if dry_run == "client":
        return s.run(lambda c: client_dry_run(c, batch, output=output))
    return s.run(lambda c: write_all(c, batch, write, action=action, dry_run=dry_run, output=output))


# ---- the commands ----

async def _apply(client: Client, item: Checked, dry_run: bool) -> tuple[dict[str, Any], str]:
    return await client.apply(item.obj, dry_run=dry_run)


async def _create(client: Client, item: Checked, dry_run: bool) -> tuple[dict[str, Any], str]:
    if dry_run:
        # The server's dry-run create does not look for an existing object; look here,
        # so that a batch with a taken name stops before its first write.
        try:
            await client.get(item.info.kind, item.name, item.namespace)
        except NotFound:
            pass
        else:
            raise AlreadyExists(f'{item.info.qualified_plural} "{item.name}" already exists')
    return await client.create(item.obj, dry_run=dry_run), "created"


async def _replace(client: Client, item: Checked, dry_run: bool) -> tuple[dict[str, Any], str]:
    return await client.update(item.obj, dry_run=dry_run), "replaced"


# The manifest verbs (apply, create, replace) are one click command each over the same
# helpers: alike in shape by design (the `duplicates` tool pairs them), as kubectl's are.
@click.command(short_help="Create or update objects from manifests.")
@manifest_options
@write_options
@global_options
def apply(filenames: tuple[str, ...], recursive: bool, dry_run: str, output: str | None) -> int:
    """Create or update objects to match manifests (-f FILE|DIR|-).

    Prints `<kind>[.<group>]/<name> created|configured|unchanged` for each object.
    Fields the manifests never set (a controller's, the scheduler's) are kept.
    """
    batch = load_checked(filenames, recursive, verb="apply")
    return run_writes(batch, _apply, action="applying", dry_run=dry_run, output=output)


@click.command()
@manifest_options
@write_options
@global_options
def create(filenames: tuple[str, ...], recursive: bool, dry_run: str, output: str | None) -> int:
    """Create objects from manifests; fails if any already exists."""
    batch = load_checked(filenames, recursive, verb="create")
    return run_writes(batch, _create, action="creating", dry_run=dry_run, output=output)


@click.command()
@manifest_options
@write_options
@global_options
def replace(filenames: tuple[str, ...], recursive: bool, dry_run: str, output: str | None) -> int:
    """Replace objects with manifests. A manifest carrying metadata.resourceVersion
    is refused when the live object has changed since (a stale update)."""
    batch = load_checked(filenames, recursive, verb="replace")
    return run_writes(batch, _replace, action="replacing", dry_run=dry_run, output=output)
