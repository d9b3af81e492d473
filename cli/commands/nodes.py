"""`ctl cordon`, `ctl uncordon` and `ctl drain`: take a node out of service and back, as kubectl does.

    ctl cordon n1                       no new pods on n1 (spec.unschedulable)
    ctl uncordon n1                     pods may be scheduled on n1 again
    ctl drain n1 --ignore-daemonsets    cordon, then evict every pod and wait until they are gone

drain refuses, before evicting anything, when the node runs pods that would
not come back: pods no controller manages (use --force; they are lost),
pods with emptyDir data (--delete-emptydir-data) and DaemonSet pods
(--ignore-daemonsets leaves them, since their DaemonSet would put them right
back — they tolerate the cordon). Finished pods go without asking. Evicting is
through the Eviction subresource (`Client.evict`): a graceful delete
(`--grace-period` overrides the pods' own) that a PodDisruptionBudget may refuse
for now — drain then says so and tries again every 5 s, as kubectl does, while
the controllers of the pods already evicted bring replacements up elsewhere.
`--timeout` bounds the whole wait (0, the default as in kubectl, waits as long as
it takes).
"""

from __future__ import annotations

import asyncio
from typing import Any

import click

from cli.errors import CliError
from cli.session import global_options, session
from api.printing.timefmt import parse_duration
from controlplane.client import Client, Conflict, NotFound, TooManyRequests

Obj = dict[str, Any]
# kubectl drain tries a refused eviction again after 5 s.
EVICTION_RETRY_SECONDS = 5.0


async def set_unschedulable(client: Client, name: str, value: bool, *, dry_run: bool = False) -> bool:
    """Set spec.unschedulable; False when it already had that value."""
    for _ in range(10):
        node = await client.get("nodes", name)
        spec = node.setdefault("spec", {})
        if bool(spec.get("unschedulable")) == value:
            return False
        if dry_run:
            return True
        if value:
            spec["unschedulable"] = True
        else:
            spec.pop("unschedulable", None)
        try:
            await client.update(node)
            return True
        except Conflict:
            continue  # the node changed meanwhile (status, taints): read it again
    raise CliError(f'node "{name}" kept changing; try again')


async def node_names(client: Client, names: tuple[str, ...], selector: str) -> list[str]:
    if names and selector:
        raise CliError("cannot specify both a node name and a selector (-l)")
    if names:
        return list(names)
    if not selector:
        raise CliError("must give a NODE or a selector (-l)")
    found = [n["metadata"]["name"] for n in (await client.list("nodes", label_selector=selector)).items]
    if not found:
        raise CliError("No resources found")
    return found


def _ref(pod: Obj) -> str:
    return f'{pod["metadata"].get("namespace", "")}/{pod["metadata"]["name"]}'


def _controller_kind(pod: Obj) -> str | None:
    for ref in pod["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("kind")
    return None


def classify(pods: list[Obj], *, force: bool, ignore_daemonsets: bool,
             delete_emptydir_data: bool) -> tuple[list[Obj], list[str], list[str]]:
    """(pods to evict, warnings, errors), with kubectl's wording."""
    evict, ignored, unmanaged, errors = [], [], [], []
    daemon_blockers, bare_blockers, local_blockers = [], [], []
    for pod in pods:
        finished = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        kind = _controller_kind(pod)
        if kind == "DaemonSet" and not finished:
            (ignored if ignore_daemonsets else daemon_blockers).append(_ref(pod))
            continue
        if kind is None and not finished:
            if not force:
                bare_blockers.append(_ref(pod))
                continue
            unmanaged.append(_ref(pod))
        if not finished and not delete_emptydir_data and \
                any("emptyDir" in v for v in (pod.get("spec") or {}).get("volumes") or []):
            local_blockers.append(_ref(pod))
            continue
        evict.append(pod)
    if daemon_blockers:
        errors.append("cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): "
                      + ", ".join(daemon_blockers))
    if bare_blockers:
        errors.append("cannot delete Pods that declare no controller (use --force to override): "
                      + ", ".join(bare_blockers))
    if local_blockers:
        errors.append("cannot delete Pods with local storage (use --delete-emptydir-data to override): "
                      + ", ".join(local_blockers))
    warnings = []
    if ignored:
        warnings.append("ignoring DaemonSet-managed Pods: " + ", ".join(ignored))
    if unmanaged:
        warnings.append("deleting Pods that declare no controller: " + ", ".join(unmanaged))
    return evict, warnings, errors


async def evict_and_wait(client: Client, pods: list[Obj], *, grace: int | None, timeout: float,
                         suffix: str, retry_seconds: float = EVICTION_RETRY_SECONDS) -> list[Obj]:
    """Evict each pod through the Eviction subresource, all at once as kubectl does: a pod whose
    PodDisruptionBudget refuses for now (TooManyRequests) is tried again every `retry_seconds`
    with kubectl's line on stderr; then wait until each is gone. Returns the pods still there
    (or never evicted) at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout if timeout > 0 else None

    def left() -> float | None:
        return None if deadline is None else max(0.0, deadline - loop.time())

    async def one(pod: Obj) -> bool:
        """True when the pod is gone."""
        name, namespace = pod["metadata"]["name"], pod["metadata"].get("namespace", "")
        click.echo(f"evicting pod {_ref(pod)}{suffix}")
        if suffix:
            return True
        while True:
            try:
                await client.evict(name, namespace, grace_seconds=grace)
                break
            except NotFound:
                break
            except TooManyRequests as exc:
                remaining = left()
                if remaining is not None and remaining <= 0:
                    return False
                click.echo(f'error when evicting pods/"{name}" -n "{namespace}" (will retry after '
                           f'{retry_seconds:g}s): {exc.message}', err=True)
                await asyncio.sleep(retry_seconds if remaining is None else min(retry_seconds, remaining))
        delay = 0.05
        while True:
            try:
                current = await client.get("pods", name, namespace)
                gone = current["metadata"].get("uid") != pod["metadata"].get("uid")
            except NotFound:
                gone = True
            if gone:
                click.echo(f"pod/{name} evicted")
                return True
            remaining = left()
            if remaining is not None and remaining <= 0:
                return False
            await asyncio.sleep(delay if remaining is None else min(delay, remaining))
            delay = min(delay * 2, 1.0)

    done = await asyncio.gather(*(one(p) for p in pods))
    return [pod for pod, ok in zip(pods, done) if not ok and not suffix]


_node_args = [click.argument("names", nargs=-1, metavar="NODE"),
              click.option("-l", "--selector", default="", metavar="SELECTOR", help="Select nodes by label."),
              click.option("--dry-run", "dry_run", type=click.Choice(["none", "client"]), default="none",
                           is_flag=False, flag_value="client", help="client: only print what would happen.")]


def node_options(f: Any) -> Any:
    for option in reversed(_node_args):
        f = option(f)
    return global_options(f)


def _toggle(names: tuple[str, ...], selector: str, dry_run: str, *, value: bool) -> int:
    verb = "cordoned" if value else "uncordoned"
    suffix = " (dry run)" if dry_run == "client" else ""

    async def run(client: Client) -> int:
        for name in await node_names(client, names, selector):
            changed = await set_unschedulable(client, name, value, dry_run=bool(suffix))
            click.echo(f"node/{name} {verb}{suffix}" if changed else f"node/{name} already {verb}")
        return 0
    return session().run(run)


@click.command()
@node_options
def cordon(names: tuple[str, ...], selector: str, dry_run: str) -> int:
    """Mark a node unschedulable: running pods stay, new pods go elsewhere."""
    return _toggle(names, selector, dry_run, value=True)


@click.command()
@node_options
def uncordon(names: tuple[str, ...], selector: str, dry_run: str) -> int:
    """Mark a node schedulable again."""
    return _toggle(names, selector, dry_run, value=False)


@click.command()
@node_options
@click.option("--ignore-daemonsets", is_flag=True, help="Leave DaemonSet-managed pods (they would come back).")
@click.option("--force", is_flag=True, help="Also delete pods that no controller manages (they are lost).")
@click.option("--delete-emptydir-data", is_flag=True, help="Also delete pods using emptyDir (their data is lost).")
@click.option("--grace-period", type=int, default=-1, show_default=True, metavar="SECONDS",
              help="Seconds each pod gets to stop; -1 uses the pod's own terminationGracePeriodSeconds.")
@click.option("--timeout", default="0s", show_default=True, metavar="DURATION",
              help="How long to wait for the pods to go (e.g. 60s); 0 waits as long as it takes.")
def drain(names: tuple[str, ...], selector: str, dry_run: str, ignore_daemonsets: bool, force: bool,
          delete_emptydir_data: bool, grace_period: int, timeout: str) -> int:
    """Cordon a node, then evict its pods and wait until they are gone."""
    try:
        wait_seconds = parse_duration(timeout)
    except ValueError as exc:
        raise CliError(f"--timeout: {exc}") from None
    grace = None if grace_period < 0 else grace_period
    suffix = " (dry run)" if dry_run == "client" else ""

    async def run(client: Client) -> int:
        for name in await node_names(client, names, selector):
            changed = await set_unschedulable(client, name, True, dry_run=bool(suffix))
            click.echo(f"node/{name} cordoned{suffix}" if changed else f"node/{name} already cordoned")
            pods = (await client.list("pods", field_selector=f"spec.nodeName={name}")).items
            evict, warnings, errors = classify(pods, force=force, ignore_daemonsets=ignore_daemonsets,
                                               delete_emptydir_data=delete_emptydir_data)
            if errors:
                raise CliError(f'unable to drain node "{name}" due to error: {"; ".join(errors)}')
            for warning in warnings:
                click.echo(f"Warning: {warning}", err=True)
            left = await evict_and_wait(client, evict, grace=grace, timeout=wait_seconds, suffix=suffix)
            if left:
                raise CliError(f'unable to drain node "{name}": timed out after {timeout} waiting for pods to be '
                               f'evicted: {", ".join(_ref(p) for p in left)}')
            click.echo(f"node/{name} drained{suffix}")
        return 0
    return session().run(run)
