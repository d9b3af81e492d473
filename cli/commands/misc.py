"""`ctl version` and `ctl api-resources`."""

from __future__ import annotations

import click

from cli import client_version
from cli.errors import CliError
from cli.printers import to_json, to_yaml
from cli.printers.tabwriter import align
from cli.session import global_options, session
from controlplane.client import ApiError


@click.command()
@click.option("--client", "client_only", is_flag=True, help="Only the client's version; no server needed.")
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), help="Print as yaml or json.")
@global_options
def version(client_only: bool, output: str | None) -> int:
    """Print the client and server versions."""
    info: dict[str, object] = {"clientVersion": {"version": client_version()}}
    error: ApiError | None = None
    if not client_only:
        try:
            server = session().run(lambda c: c.version())
            info["serverVersion"] = server
        except ApiError as exc:
            error = exc
    if output == "json":
        click.echo(to_json(info), nl=False)
    elif output == "yaml":
        click.echo(to_yaml(info), nl=False)
    else:
        click.echo(f"Client Version: {client_version()}")
        if "serverVersion" in info:
            server = info["serverVersion"]
            assert isinstance(server, dict)
            click.echo(f"Server Version: {server.get('version', '')}")
            if server.get("etcdVersion"):
                click.echo(f"etcd Version: {server['etcdVersion']}")
    if error is not None:
        raise error
    return 0


@click.command("api-resources")
@click.option("-o", "--output", type=click.Choice(["wide", "name"]), help="wide adds VERBS; name prints names.")
@click.option("--namespaced", type=click.BOOL, default=None, metavar="BOOL",
              help="Only namespaced (true) or only cluster-wide (false) kinds.")
@click.option("--api-group", default=None, metavar="GROUP", help='Only kinds of this API group ("" for core).')
@click.option("--no-headers", is_flag=True, help="Omit the header line.")
@global_options
def api_resources(output: str | None, namespaced: bool | None, api_group: str | None, no_headers: bool) -> int:
    """List the kinds the server serves, with their short names."""
    resources = session().run(lambda c: c.discovery())
    if namespaced is not None:
        resources = [r for r in resources if r["namespaced"] == namespaced]
    if api_group is not None:
        resources = [r for r in resources if r["group"] == api_group]
    resources.sort(key=lambda r: (r["group"], r["plural"]))
    if output == "name":
        for r in resources:
            click.echo(f"{r['plural']}.{r['group']}" if r["group"] else r["plural"])
        return 0
    if not resources:
        raise CliError("no resources match")
    rows = [] if no_headers else [["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
                                  + (["VERBS"] if output == "wide" else [])]
    for r in resources:
        api_version = f"{r['group']}/{r['version']}" if r["group"] else r["version"]
        row = [r["plural"], ",".join(r["shortNames"]), api_version, str(r["namespaced"]).lower(), r["kind"]]
        if output == "wide":
            row.append("[" + " ".join(r["verbs"]) + "]")
        rows.append(row)
    click.echo(align(rows), nl=False)
    return 0
