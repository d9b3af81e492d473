"""`ctl schedule --dry-run -f pod.yaml`: where would this pod go, and why not elsewhere?

    ctl schedule --dry-run -f pod.yaml             a Pod
    ctl schedule --dry-run -f web.yaml             a Deployment, ReplicaSet, Job or DaemonSet: its pod template
    ctl schedule --dry-run -f web.yaml -o json     the scheduler's answer as data

Nothing is created. The manifest is validated here (errors name the file, line
and field path, exit 1), then the API server runs the scheduler's framework on
its current nodes and pods (controlplane/scheduler/preview.py): every filter on
every node, every score on every node that passes them. The table has one
column per node, one row per filter (`ok` or the reason it rejects the node)
and per score (weighted; the weight in brackets), and the total (scores only
for nodes that pass every filter, as the scheduler scores them):

    PLUGIN                          gpu                                              large   small
    filter NodeUnschedulable        ok                                               ok      ok
    filter TaintToleration          node(s) had untolerated taint {dedicated: gpu}   ok      ok
    filter NodeResourcesFit         ok                                               ok      Insufficient cpu
    ...
    score TaintToleration (x3)      -                                                300     -
    TOTAL                           -                                                448     -

    pod default/what-if would be scheduled on node "large" (highest total, 448).

or, when no node passes, the line the scheduler would write on the Pending pod:
`0/3 nodes are available: 2 Insufficient cpu, 1 node(s) had untolerated taint {dedicated: gpu}.`
A DaemonSet's pod gets the tolerations every daemon pod gets, and the answer is
every node that passes. Exit status 0 whether or not the pod fits; 1 on bad input.
"""

from __future__ import annotations

import copy
from typing import Any

import click

from cli import manifests, validation
from cli.errors import CliError
from cli.printers.structured import to_json, to_yaml
from cli.printers.tabwriter import align
from cli.session import global_options, session
from cli.validation import Checked
from controlplane.client import Client

Obj = dict[str, Any]
WORKLOADS = ("Deployment", "ReplicaSet", "Job", "DaemonSet")


def pod_for(item: Checked) -> Obj:
    """The Pod to preview for a checked manifest: the Pod itself, or a workload's pod template
    (named after the workload, with the template's labels, in the workload's namespace)."""
    obj = item.obj
    if item.info.kind == "Pod":
        return copy.deepcopy(obj)
    if item.info.kind not in WORKLOADS:
        raise CliError(f'{item.doc.where}: {item.info.kind} "{item.name}" has no pod to schedule; '
                       f'ctl schedule --dry-run takes a Pod, {", ".join(WORKLOADS[:-1])} or {WORKLOADS[-1]}')
    template = (obj.get("spec") or {}).get("template") or {}
    tmeta = template.get("metadata") or {}
    meta: Obj = {"name": item.name or "preview", "namespace": item.namespace}
    for key in ("labels", "annotations"):
        if tmeta.get(key):
            meta[key] = dict(tmeta[key])
    spec = copy.deepcopy(template.get("spec") or {})
    if item.info.kind == "DaemonSet":
        from api.taints import daemon_tolerations
        spec["tolerations"] = daemon_tolerations(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def render(result: Obj, *, what: str, daemon: bool = False) -> str:
    """The table and the verdict line for one preview result (see the module docstring)."""
    nodes = result.get("nodes") or []
    if not nodes:
        return f"{what}: {result.get('message') or '0/0 nodes are available.'}\n"
    rows = [["PLUGIN", *(n["name"] for n in nodes)]]
    for i, first in enumerate(nodes[0]["filters"]):
        cells = []
        for n in nodes:
            verdict = n["filters"][i] if i < len(n["filters"]) else {"ok": True, "reason": ""}
            cells.append("ok" if verdict["ok"] else (verdict["reason"] or "rejected"))
        rows.append([f"filter {first['plugin']}", *cells])
    if any(n["feasible"] for n in nodes):       # scores exist only for nodes that pass every filter
        for plugin, weight in (result.get("weights") or {}).items():
            rows.append([f"score {plugin} (x{weight})",
                         *(str(n["scores"][plugin]) if n["feasible"] and plugin in n["scores"] else "-"
                           for n in nodes)])
        rows.append(["TOTAL", *(str(n["total"]) if n["feasible"] else "-" for n in nodes)])
    return align(rows) + "\n" + verdict_line(result, what=what, daemon=daemon) + "\n"


def verdict_line(result: Obj, *, what: str, daemon: bool = False) -> str:
    nodes = result.get("nodes") or []
    feasible = [n for n in nodes if n["feasible"]]
    if daemon:
        if not feasible:
            return f"{what} would run on no node: {result.get('message', '')}"
        names = ", ".join(n["name"] for n in feasible)
        return f"{what} would run one pod on each of {len(feasible)}/{len(nodes)} nodes: {names}."
    chosen = result.get("node") or ""
    if not chosen:
        return f"{what} would stay Pending: {result.get('message', '')}"
    best = next(n for n in nodes if n["name"] == chosen)
    ties = [n["name"] for n in feasible if n["total"] == best["total"]]
    if len(ties) > 1:
        return (f'{what} would be scheduled on one of {", ".join(ties)} (tied at {best["total"]}; the scheduler '
                f'picks among them at random, this preview shows "{chosen}").')
    return f'{what} would be scheduled on node "{chosen}" (highest total, {best["total"]}).'


def _what(item: Checked, pod: Obj) -> str:
    ns = pod["metadata"].get("namespace") or "default"
    if item.info.kind == "Pod":
        return f"pod {ns}/{pod['metadata']['name']}"
    return f"the pod template of {item.info.qualified} {ns}/{item.name}"


@click.command()
@click.option("-f", "--filename", "filenames", multiple=True, metavar="FILE|DIR|-",
              help="Manifest with a Pod, Deployment, ReplicaSet, Job or DaemonSet. Repeatable.")
@click.option("-R", "--recursive", is_flag=True, help="Read directories given with -f recursively.")
@click.option("--dry-run", "dry_run", is_flag=True,
              help="Required: only show where the pod would go (nothing is ever created).")
@click.option("-o", "--output", type=click.Choice(["json", "yaml"]), default=None,
              help="Print the scheduler's answer as data instead of a table.")
@global_options
def schedule(filenames: tuple[str, ...], recursive: bool, dry_run: bool, output: str | None) -> int:
    """Show where pods would be scheduled: each node's filter verdicts and scores."""
    if not dry_run:
        raise CliError("ctl schedule only previews: pass --dry-run (ctl schedule --dry-run -f pod.yaml); "
                       "it never creates or binds anything")
    if not filenames:
        raise CliError("must specify -f (ctl schedule --dry-run -f FILE|DIR|-)")
    s = session()
    docs = manifests.read(filenames, recursive=recursive)
    if not docs:
        raise CliError("no objects passed to schedule")
    checked = validation.check_all(docs, namespace=s.namespace, explicit_namespace=s.explicit_namespace)
    wanted = [item for item in checked if item.info.kind == "Pod" or item.info.kind in WORKLOADS]
    if not wanted:
        pod_for(checked[0])            # raises the "has no pod to schedule" error
    for item in checked:
        if item not in wanted:
            click.echo(f"skipping {item.info.qualified}/{item.name}: it has no pod to schedule", err=True)
    pods = [(item, pod_for(item)) for item in wanted]

    async def run(c: Client) -> list[Obj]:
        return [await c.schedule_preview(pod) for _, pod in pods]
    results = s.run(run)

    if output:
        data = results[0] if len(results) == 1 else results
        click.echo(to_json(data) if output == "json" else to_yaml(data), nl=False)
        return 0
    for n, ((item, pod), result) in enumerate(zip(pods, results)):
        if n:
            click.echo()
        click.echo(render(result, what=_what(item, pod), daemon=item.info.kind == "DaemonSet"), nl=False)
    return 0
