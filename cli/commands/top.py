"""`ctl top pods|nodes`: CPU and memory in use, as `kubectl top` shows them.

    ctl top pods [NAME] [-n NS | -A] [-l SELECTOR] [--containers] [--sort-by cpu|memory] [--sum]
    ctl top nodes [NAME] [-l SELECTOR] [--sort-by cpu|memory] [--show-capacity]

Each agent samples its node and its pods' cgroups every few seconds
(agent/metrics.py); the API server asks the agents concerned and relays their
answers (controlplane/apiserver/proxy.py). CPU is the rate over the agent's last
window, printed in millicores rounded up (`12m`); memory is the working set
(usage minus inactive file cache), printed in whole MiB (`34Mi`). A node's
percentages are of its allocatable (or, with --show-capacity, its capacity);
nodes whose agent did not answer are listed as `<unknown>` and named on stderr.
"""

from __future__ import annotations

from typing import Any

import click

from cli.errors import CliError
from cli.printers.tabwriter import align
from cli.session import global_options, session
from controlplane.client import Client

# Message strings and one-line formatters: alike in shape to other modules' (the
# `duplicates` tool pairs them), each module's own words.
Obj = dict[str, Any]
UNKNOWN = "<unknown>"
NOT_YET = "metrics not available yet"


# -- formatting (kubectl's printSingleResourceUsage) ---------------------------------------

def format_cpu(nanocores: int) -> str:
    """Millicores, rounded up as resource.Quantity.MilliValue() rounds: 1 nanocore is `1m`."""
    return f"{-(-int(nanocores) // 1_000_000)}m"


def format_memory(num_bytes: int) -> str:
    """Whole MiB, rounded down (kubectl: Value() / (1024*1024))."""
    return f"{int(num_bytes) // (1024 * 1024)}Mi"


def format_percent(used: float, available: float) -> str:
    """kubectl's `int64(used / available * 100)`, truncated; <unknown> without a denominator."""
    if available <= 0:
        return UNKNOWN
    return f"{int(used / available * 100)}%"


def _quantity(value: Any) -> float:
    from api.quantity import parse_quantity
    return float(parse_quantity(str(value))) if value not in (None, "") else 0.0


def _warn(errors: list[str]) -> None:
    for error in errors:
        click.echo(f"warning: {error}", err=True)


def _sort_key(sort_by: str | None):  # type: ignore[no-untyped-def]
    field = {"cpu": "cpuNanocores", "memory": "memoryBytes"}.get(sort_by or "")
    return (lambda usage: -usage[field]) if field else None


# -- pods --------------------------------------------------------------------------------

def pod_total(pod: Obj) -> Obj:
    return {"cpuNanocores": sum(c["cpuNanocores"] for c in pod["containers"]),
            "memoryBytes": sum(c["memoryBytes"] for c in pod["containers"])}


def pod_rows(pods: list[Obj], *, all_namespaces: bool, containers: bool, sort_by: str | None,
             show_sum: bool, headers: bool = True) -> list[list[str]]:
    """The table of `ctl top pods` (a list of rows of cells, header first)."""
    pods = sorted(pods, key=lambda p: (p["namespace"], p["name"]))
    key = _sort_key(sort_by)
    if key is not None:
        pods.sort(key=lambda p: key(pod_total(p)))     # stable: ties keep name order
    lead = ["NAMESPACE"] if all_namespaces else []
    rows = [lead + (["POD", "NAME"] if containers else ["NAME"]) + ["CPU(cores)", "MEMORY(bytes)"]] if headers else []
    for pod in pods:
        ns = [pod["namespace"]] if all_namespaces else []
        if containers:
            items = pod["containers"] if key is None else sorted(pod["containers"], key=key)
            for c in items:
                rows.append(ns + [pod["name"], c["name"], format_cpu(c["cpuNanocores"]),
                                  format_memory(c["memoryBytes"])])
        else:
            total = pod_total(pod)
            rows.append(ns + [pod["name"], format_cpu(total["cpuNanocores"]), format_memory(total["memoryBytes"])])
    if show_sum:
        blank = [""] * (len(lead) + (2 if containers else 1))
        cpu = sum(pod_total(p)["cpuNanocores"] for p in pods)
        memory = sum(pod_total(p)["memoryBytes"] for p in pods)
        rows.append(blank + ["________", "________"])
        rows.append(blank + [format_cpu(cpu), format_memory(memory)])
    return rows


class _KubectlNames(click.Group):
    """`ctl top pod|po` and `ctl top node|no` as well as the plural names."""

    ALIASES = {"pod": "pods", "po": "pods", "node": "nodes", "no": "nodes"}

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, self.ALIASES.get(cmd_name, cmd_name))

    def resolve_command(self, ctx: click.Context, args: list[str]):  # type: ignore[no-untyped-def]
        _name, command, rest = super().resolve_command(ctx, args)
        return (command.name if command else _name), command, rest


@click.group(cls=_KubectlNames)
@global_options
def top() -> None:
    """Display resource (CPU/memory) usage of pods or nodes."""


def _common(f):  # type: ignore[no-untyped-def]
    f = click.option("--no-headers", is_flag=True, help="Print no header line.")(f)
    f = click.option("--sort-by", type=click.Choice(["cpu", "memory"]), default=None,
                     help="Sort by cpu or memory, biggest first.")(f)
    f = click.option("-l", "--selector", default="", metavar="SELECTOR",
                     help="Label selector (e.g. app=web,tier!=db).")(f)
    return f


@top.command("pods")
@click.argument("name", required=False, default="")
@_common
@click.option("-A", "--all-namespaces", is_flag=True, help="Pods of every namespace.")
@click.option("--containers", is_flag=True, help="One line per container.")
@click.option("--sum", "show_sum", is_flag=True, help="Print the sum of the usage after the list.")
@global_options
def top_pods(name: str, selector: str, sort_by: str | None, no_headers: bool, all_namespaces: bool,
             containers: bool, show_sum: bool) -> int:
    """Display CPU and memory usage of pods (sum of their containers)."""
    s = session()
    if name and selector:
        raise CliError("only one of NAME or --selector can be provided")
    namespace = "" if all_namespaces and not name else s.namespace

    async def run(c: Client) -> tuple[Obj, bool]:
        result = await c.pod_metrics(namespace, label_selector=selector, name=name)
        exist = bool(result["pods"])
        if not exist:   # no figures: are there pods at all (kubectl's verifyEmptyMetrics)?
            exist = bool(name) or bool((await c.list("pods", namespace, label_selector=selector)).items)
        return result, exist
    result, pods_exist = s.run(run)
    _warn(result["errors"])
    if not result["pods"]:
        if pods_exist:
            raise CliError(NOT_YET)
        click.echo("No resources found" if all_namespaces else f"No resources found in {namespace} namespace.",
                   err=True)
        return 0
    rows = pod_rows(result["pods"], all_namespaces=all_namespaces and not name, containers=containers,
                    sort_by=sort_by, show_sum=show_sum, headers=not no_headers)
    click.echo(align(rows), nl=False)
    return 0


# -- nodes -------------------------------------------------------------------------------

def node_rows(nodes: list[Obj], usage: dict[str, Obj], *, sort_by: str | None, show_capacity: bool,
              headers: bool = True) -> list[list[str]]:
    """The table of `ctl top nodes`: nodes with figures (sorted), then the rest as <unknown>."""
    rows = [["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"]] if headers else []
    known = sorted((n for n in nodes if n["metadata"]["name"] in usage), key=lambda n: n["metadata"]["name"])
    key = _sort_key(sort_by)
    if key is not None:
        known.sort(key=lambda n: key(usage[n["metadata"]["name"]]))
    for node in known:
        name = node["metadata"]["name"]
        u = usage[name]
        available = (node.get("status") or {}).get("capacity" if show_capacity else "allocatable") or {}
        rows.append([name, format_cpu(u["cpuNanocores"]),
                     format_percent(u["cpuNanocores"] / 1e9, _quantity(available.get("cpu"))),
                     format_memory(u["memoryBytes"]),
                     format_percent(u["memoryBytes"], _quantity(available.get("memory")))])
    for node in sorted((n for n in nodes if n["metadata"]["name"] not in usage), key=lambda n: n["metadata"]["name"]):
        rows.append([node["metadata"]["name"]] + [UNKNOWN] * 4)
    return rows


@top.command("nodes")
@click.argument("name", required=False, default="")
@_common
@click.option("--show-capacity", is_flag=True, help="Percentages of capacity instead of allocatable.")
@global_options
def top_nodes(name: str, selector: str, sort_by: str | None, no_headers: bool, show_capacity: bool) -> int:
    """Display CPU and memory usage of nodes (percentages of allocatable)."""
    if name and selector:
        raise CliError("only one of NAME or --selector can be provided")

    async def run(c: Client) -> tuple[list[Obj], Obj]:
        if name:
            nodes = [await c.get("nodes", name)]
        else:
            nodes = (await c.list("nodes", label_selector=selector)).items
        return nodes, await c.node_metrics(name=name, label_selector=selector)
    nodes, result = session().run(run)
    _warn(result["errors"])
    if not nodes:
        click.echo("No resources found", err=True)
        return 0
    usage = {n["name"]: n for n in result["nodes"]}
    if not usage:
        raise CliError(NOT_YET)
    click.echo(align(node_rows(nodes, usage, sort_by=sort_by, show_capacity=show_capacity,
                               headers=not no_headers)), nl=False)
    return 0
