"""`ctl logs POD|TYPE/NAME [-c C] [-f] [--previous] [--tail N] [--since 5m] [--timestamps]`.

The API server forwards the request to the agent of the pod's node, which reads
the container's log file; with -f the stream stays open until Ctrl-C or the
container ends.

As with kubectl, the argument may name a workload instead of a pod
(`deploy/web`, `rs/web-5d8f`, `job/backup`, `ds/agent`, `svc/web`, and `pod/web`):
its pods are found by its label selector and the most active one is used
(scheduled, Running, Ready for longest, fewest restarts, oldest: kubectl's
order), with `Found 2 pods, using pod/web-xxx` on stderr when there are several.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import click

from api.selectors import selector_from_spec
from api.printing.columns import format_labels
from cli.errors import CliError
from cli.resources import find_kind
from cli.session import global_options, session
from controlplane.client import Client

Obj = dict[str, Any]
# Kinds whose pods `ctl logs TYPE/NAME` can pick from, by their label selector.
SELECTING_KINDS = ("Deployment", "ReplicaSet", "Job", "DaemonSet", "Service")

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> int:
    """`90s`, `5m`, `1h30m` -> seconds (kubectl's --since)."""
    m = _DURATION.match(text.strip())
    if not text.strip() or not m or not any(m.groups()):
        raise CliError(f'invalid argument "{text}" for "--since" flag: expected a duration like 30s, 5m or 1h')
    h, mi, s = (int(g or 0) for g in m.groups())
    return h * 3600 + mi * 60 + s


def _ready_since(pod: Obj) -> str | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("lastTransitionTime") or "" if c.get("status") == "True" else None
    return None


def most_active_first(pods: list[Obj]) -> list[Obj]:
    """kubectl's order for picking a workload's pod (the reverse of controller.ActivePods):
    scheduled before not, Running before Unknown before the rest, Ready before not, Ready for
    longer first, fewer restarts first, older first."""
    phase_rank = {"Running": 0, "Unknown": 1}

    def key(pod: Obj) -> tuple:
        status = pod.get("status") or {}
        since = _ready_since(pod)
        restarts = max((c.get("restartCount") or 0 for c in status.get("containerStatuses") or []), default=0)
        created = (pod.get("metadata") or {}).get("creationTimestamp") or ""
        return (not (pod.get("spec") or {}).get("nodeName"), phase_rank.get(status.get("phase", ""), 2),
                since is None, since or "", restarts, not created, created)
    return sorted(pods, key=key)


def selector_of(kind: str, obj: Obj) -> str:
    spec = obj.get("spec") or {}
    if kind == "Service":
        return format_labels(spec.get("selector"))
    return str(selector_from_spec(spec.get("selector"))) if spec.get("selector") else ""


async def pick_pod(c: Client, namespace: str, target: str) -> str:
    """The pod whose logs `ctl logs TARGET` shows: TARGET itself, or one of the pods of TYPE/NAME."""
    if "/" not in target:
        return target
    kind, _, name = target.partition("/")
    if not kind or not name:
        raise CliError(f'arguments in resource/name form must have a single resource and name, got "{target}"')
    info = find_kind(kind)
    if info.kind == "Pod":
        return name
    if info.kind not in SELECTING_KINDS:
        raise CliError(f"cannot get logs of {info.plural}: name a pod, or a deployment, replicaset, job, "
                       f"daemonset or service whose pods to use")
    obj = await c.get(info.kind, name, namespace)
    selector = selector_of(info.kind, obj)
    if not selector:
        raise CliError(f"{info.qualified}/{name} has no selector: cannot tell which pods are its own")
    pods = (await c.list("pods", namespace, label_selector=selector)).items
    if not pods:
        raise CliError(f"no pods found for {info.qualified}/{name} (selector {selector})")
    chosen = most_active_first(pods)[0]["metadata"]["name"]
    if len(pods) > 1:
        click.echo(f"Found {len(pods)} pods, using pod/{chosen}", err=True)
    return chosen


@click.command()
@click.argument("pod")
@click.argument("container_arg", required=False, metavar="[CONTAINER]")
@click.option("-c", "--container", default="", help="Container name (needed when the pod has several).")
@click.option("-f", "--follow", is_flag=True, help="Keep streaming new lines.")
@click.option("-p", "--previous", is_flag=True, help="The previous instance of a restarted container.")
@click.option("--tail", type=int, default=-1, help="Lines from the end to show (-1: all).")
@click.option("--since", "since", default=None, metavar="DURATION", help="Only lines newer than this (5s, 2m, 1h).")
@click.option("--timestamps", is_flag=True, help="Prefix each line with its RFC3339 timestamp.")
@global_options
def logs(pod: str, container_arg: str | None, container: str, follow: bool, previous: bool, tail: int, since: str | None,
         timestamps: bool) -> int:
    """Print the logs of a container in a pod (or in a pod of deploy/NAME, rs/, job/, ds/, svc/)."""
    s = session()
    if container_arg:                       # kubectl's `logs POD CONTAINER`
        if container and container != container_arg:
            raise CliError("only one of -c or an inline [CONTAINER] arg is allowed")
        container = container_arg
    since_seconds = parse_duration(since) if since else 0

    async def stream(c: Client) -> None:
        name = await pick_pod(c, s.namespace, pod)
        async for chunk in c.logs(s.namespace, name, container=container, follow=follow, previous=previous,
                                  tail_lines=tail, since_seconds=since_seconds, timestamps=timestamps):
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
    try:
        s.run(stream)
    except KeyboardInterrupt:
        pass
    return 0
