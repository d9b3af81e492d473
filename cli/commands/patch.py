"""`ctl patch`: change fields of a live object with a patch, applied by the server.

    ctl patch deployment web -p '{"spec":{"replicas":3}}'
    ctl patch pod web -p '{"spec":{"containers":[{"name":"web","image":"nginx:1.27"}]}}'   (strategic: by name)
    ctl patch deploy/web --type=merge -p '{"metadata":{"labels":{"tier":null}}}'
    ctl patch deploy web --type=json -p '[{"op":"replace","path":"/spec/replicas","value":1}]'
    ctl patch node node-1 --patch-file=patch.yaml

`--type` is kubectl's: strategic (default; lists of containers, ports, volumes ... merge
by their key), merge (RFC 7386) or json (RFC 6902). The patch may be JSON or YAML. The
server applies it (`Api.Patch`, the same code as the REST front's PATCH) and validates
the result as an update. Prints `deployment.apps/web patched`, or `patched (no change)`.
"""

from __future__ import annotations

import json

import click
import yaml

from cli.errors import CliError
from cli.printers import print_object
from cli.resources import single_target
from cli.session import global_options, session
from controlplane.client import Client


def load_patch(text: str, source: str) -> object:
    try:
        return yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise CliError(f"unable to parse the patch in {source}: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise CliError(f"unable to parse the patch in {source}: nested too deeply") from None


def _comparable(obj: dict) -> str:
    """The object without what every write changes (its resourceVersion)."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "resourceVersion"}
    return json.dumps({**obj, "metadata": meta}, sort_keys=True)


@click.command()
@click.argument("resources", nargs=-1, metavar="KIND NAME | KIND/NAME")
@click.option("-p", "--patch", "patch_text", default=None, help="The patch (JSON or YAML).")
@click.option("--patch-file", default=None, type=click.Path(dir_okay=False), help="A file holding the patch.")
@click.option("--type", "patch_type", default="strategic", type=click.Choice(["strategic", "merge", "json"]),
              show_default=True)
@click.option("--subresource", default="", type=click.Choice(["", "status"]), help="Patch the status instead.")
@click.option("--dry-run", "dry_run", type=click.Choice(["none", "server"]), default="none")
@click.option("-o", "--output", type=click.Choice(["name", "yaml", "json"]), default=None)
@global_options
def patch(resources: tuple[str, ...], patch_text: str | None, patch_file: str | None, patch_type: str,
          subresource: str, dry_run: str, output: str | None) -> int:
    """Update fields of an object with a strategic merge, JSON merge or JSON patch."""
    if (patch_text is None) == (patch_file is None):
        raise CliError("must specify exactly one of --patch (-p) or --patch-file")
    if patch_file is not None:
        try:
            patch_text = open(patch_file).read()
        except OSError as exc:
            raise CliError(f"cannot read {patch_file}: {exc.strerror or exc}") from None
    body = load_patch(patch_text or "", patch_file or "--patch")
    if body is None:
        raise CliError("must specify --patch or --patch-file containing the contents of the patch")
    if patch_type == "json" and not isinstance(body, list):
        raise CliError("a JSON patch (--type=json) must be a list of operations: [{\"op\": ...}]")
    if patch_type != "json" and not isinstance(body, dict):
        raise CliError(f"a {patch_type} patch must be an object: {{\"spec\": ...}}")
    info, name = single_target(resources, verb="patch")
    s = session()
    ns = s.namespace if info.namespaced else ""

    async def run(client: Client) -> int:
        before = await client.get(info.kind, name, ns)
        after = await client.patch(info.kind, name, ns, body, patch_type=patch_type, dry_run=dry_run == "server",
                                   subresource=subresource)
        if not print_object(info, after, output):
            same = _comparable(before) == _comparable(after)
            suffix = " (server dry run)" if dry_run == "server" else ""
            click.echo(f"{info.qualified}/{name} patched{' (no change)' if same else ''}{suffix}")
        return 0
    return s.run(run)
