"""`ctl rollout`: watch, list, undo, restart, pause and resume the rollouts of Deployments (and StatefulSets).

    ctl rollout status deploy/web [--timeout 2m]    wait until the rollout is complete
    ctl rollout history deploy/web [--revision 2]   REVISION  CHANGE-CAUSE
    ctl rollout undo deploy/web [--to-revision 1]   go back to a previous template
    ctl rollout restart deploy/web                  new pods, same template
    ctl rollout pause deploy/web                    stop rolling out template changes
    ctl rollout resume deploy/web

The Deployment controller (controlplane/controllers/deployment.py) keeps one
ReplicaSet per template, numbered in the `deployment.kubernetes.io/revision`
annotation. As kubectl does, everything here happens on the client: `undo`
copies an old ReplicaSet's template into the Deployment (the controller then
makes that ReplicaSet the new one), `restart` stamps the template with
`kubectl.kubernetes.io/restartedAt`, pause/resume flip spec.paused. `status`
also follows DaemonSets; `restart` works on them too. StatefulSets keep their history as ControllerRevisions
(controlplane/controllers/statefulset_plan.py): `status`, `history`, `undo` and
`restart` follow them as kubectl does.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import datetime, timezone
from typing import Any, Callable

import click

from api.registry import ResourceInfo
from cli.errors import CliError
from cli.printers.tabwriter import TabWriter
from cli.resources import parse_targets
from cli.session import global_options, session
from api.printing.timefmt import parse_duration
from controlplane.client import Client, Conflict, TooOld

# Annotation and label names of the Deployment machinery (kubectl hard-codes the same ones).
REVISION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE = "kubernetes.io/change-cause"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
POD_TEMPLATE_HASH = "pod-template-hash"
# Annotations that stay with the ReplicaSet on rollback (as kubectl's annotationsToSkip).
_NOT_ROLLED_BACK = {"kubectl.kubernetes.io/last-applied-configuration", REVISION,
                    "deployment.kubernetes.io/revision-history", "deployment.kubernetes.io/desired-replicas",
                    "deployment.kubernetes.io/max-replicas", "deprecated.deployment.rollback.to"}
Obj = dict[str, Any]


@click.group()
@global_options
def rollout() -> None:
    """Manage the rollout of a Deployment: status, history, undo, restart, pause, resume."""


# -- shared helpers ----------------------------------------------------------------------

def targets(resources: tuple[str, ...], *, verb: str, kinds: tuple[str, ...]) -> list[tuple[ResourceInfo, str]]:
    """(kind, name) pairs from `deploy web` / `deploy/web` arguments, of the kinds this verb supports."""
    found = []
    for target in parse_targets(resources, verb=f"rollout {verb}"):
        if target.info.kind not in kinds:
            supported = " and ".join(k.lower() + "s" for k in kinds)
            raise CliError(f'rollout {verb} is not supported for {target.info.plural}; it works on {supported}')
        if not target.names:
            raise CliError(f"resource(s) were provided, but no name was specified (e.g. ctl rollout {verb} "
                           f"{target.info.singular}/NAME)")
        found += [(target.info, name) for name in target.names]
    return found


def label(info: ResourceInfo, name: str) -> str:
    return f"{info.qualified}/{name}"


def revision_of(obj: Obj) -> int:
    try:
        return int(((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def without_hash(template: Obj) -> Obj:
    out = copy.deepcopy(template)
    labels = (out.get("metadata") or {}).get("labels")
    if labels is not None:
        labels.pop(POD_TEMPLATE_HASH, None)
        if not labels:
            del out["metadata"]["labels"]
    return out


async def owned_replicasets(client: Client, deployment: Obj) -> list[Obj]:
    """The Deployment's ReplicaSets (controller reference to its uid), by revision."""
    meta = deployment["metadata"]
    items = (await client.list("ReplicaSet", meta.get("namespace", ""))).items
    owned = [rs for rs in items if any(r.get("controller") and r.get("uid") == meta.get("uid")
                                       for r in (rs.get("metadata") or {}).get("ownerReferences") or [])]
    return sorted(owned, key=revision_of)


async def modify(client: Client, info: ResourceInfo, name: str, namespace: str,
                 change: Callable[[Obj], str | None]) -> Obj:
    """Read, change and write back, again on Conflict. `change` edits the object in place and returns
    None, or a message to stop with (the object is not written)."""
    for _attempt in range(5):
        obj = await client.get(info.kind, name, namespace)
        stop = change(obj)
        if stop is not None:
            raise CliError(stop)
        try:
            return await client.update(obj)
        except Conflict:
            continue
    raise CliError(f'{info.plural} "{name}" kept changing; try again')


# -- status -------------------------------------------------------------------------------

def status_message(obj: Obj) -> tuple[str, bool]:
    """kubectl's rollout status line for a Deployment or DaemonSet, and whether the rollout is done."""
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    name = meta.get("name")
    observed = (status.get("observedGeneration") or 0) >= (meta.get("generation") or 0)
    if obj.get("kind") == "StatefulSet":
        return statefulset_status(obj)
    if obj.get("kind") == "DaemonSet":
        if not observed:
            return "Waiting for daemon set spec update to be observed...", False
        desired = status.get("desiredNumberScheduled") or 0
        updated, available = status.get("updatedNumberScheduled") or 0, status.get("numberAvailable") or 0
        if updated < desired:
            return (f'Waiting for daemon set "{name}" rollout to finish: {updated} out of {desired} new pods have '
                    f'been updated...'), False
        if available < desired:
            return (f'Waiting for daemon set "{name}" rollout to finish: {available} of {desired} updated pods are '
                    f'available...'), False
        return f'daemon set "{name}" successfully rolled out', True
    if not observed:
        return "Waiting for deployment spec update to be observed...", False
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            raise CliError(f'deployment "{name}" exceeded its progress deadline')
    replicas = int(spec.get("replicas", 1))
    updated, total = status.get("updatedReplicas") or 0, status.get("replicas") or 0
    available = status.get("availableReplicas") or 0
    if updated < replicas:
        return (f'Waiting for deployment "{name}" rollout to finish: {updated} out of {replicas} new replicas have '
                f'been updated...'), False
    if total > updated:
        return (f'Waiting for deployment "{name}" rollout to finish: {total - updated} old replicas are pending '
                f'termination...'), False
    if available < updated:
        return (f'Waiting for deployment "{name}" rollout to finish: {available} of {updated} updated replicas are '
                f'available...'), False
    return f'deployment "{name}" successfully rolled out', True


def statefulset_status(obj: Obj) -> tuple[str, bool]:
    """kubectl's StatefulSetStatusViewer."""
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        raise CliError("rollout status is only available for RollingUpdate strategy type")
    if (status.get("observedGeneration") or 0) < (meta.get("generation") or 0):
        return "Waiting for statefulset spec update to be observed...", False
    replicas, ready = int(spec.get("replicas", 1)), status.get("readyReplicas") or 0
    if ready < replicas:
        return f"Waiting for {replicas - ready} pods to be ready...", False
    partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
    updated = status.get("updatedReplicas") or 0
    if partition > 0:
        if updated < replicas - partition:
            return (f"Waiting for partitioned roll out to finish: {updated} out of {replicas - partition} new pods "
                    f"have been updated..."), False
        return f"partitioned roll out complete: {updated} new pods have been updated...", True
    if status.get("updateRevision") != status.get("currentRevision"):
        return (f"waiting for statefulset rolling update to complete {updated} pods at revision "
                f"{status.get('updateRevision')}..."), False
    return (f"statefulset rolling update complete {status.get('currentReplicas') or 0} pods at revision "
            f"{status.get('currentRevision')}..."), True


async def owned_revisions(client: Client, owner: Obj) -> list[Obj]:
    """A StatefulSet's ControllerRevisions, by revision number (what kubectl's history reads)."""
    meta = owner["metadata"]
    items = (await client.list("ControllerRevision", meta.get("namespace", ""))).items
    owned = [r for r in items if any(ref.get("controller") and ref.get("uid") == meta.get("uid")
                                     for ref in (r.get("metadata") or {}).get("ownerReferences") or [])]
    return sorted(owned, key=lambda r: int(r.get("revision") or 0))


def _revision_template(revision: Obj) -> Obj:
    return ((revision.get("data") or {}).get("spec") or {}).get("template") or {}


async def statefulset_history(client: Client, info: ResourceInfo, name: str, namespace: str, revision: int) -> None:
    sts = await client.get(info.kind, name, namespace)
    revisions = await owned_revisions(client, sts)
    if revision:
        match = [r for r in revisions if int(r.get("revision") or 0) == revision]
        if not match:
            raise CliError(f"unable to find the specified revision {revision}")
        click.echo(f"{label(info, name)} with revision #{revision}")
        click.echo(describe_template(_revision_template(match[0])), nl=False)
        return
    click.echo(label(info, name))
    w = TabWriter(min_width=0, padding=2)
    w.write("REVISION\tCHANGE-CAUSE\n")
    for r in revisions:
        cause = ((r.get("metadata") or {}).get("annotations") or {}).get(CHANGE_CAUSE) or "<none>"
        w.write(f"{int(r.get('revision') or 0)}\t{cause}\n")
    click.echo(w.flush())


async def statefulset_undo(client: Client, info: ResourceInfo, name: str, namespace: str, to_revision: int) -> None:
    sts = await client.get(info.kind, name, namespace)
    revisions = await owned_revisions(client, sts)
    if to_revision:
        source = next((r for r in revisions if int(r.get("revision") or 0) == to_revision), None)
        if source is None:
            raise CliError(f"unable to find specified revision {to_revision} in history")
    elif len(revisions) < 2:
        raise CliError(f'no rollout history found for statefulset "{name}"')
    else:
        source = revisions[-2]
    template = _revision_template(source)
    if template == sts["spec"]["template"]:
        click.echo(f"{label(info, name)} skipped rollback (current template already matches revision "
                   f"{source.get('revision')})")
        return

    def roll_back(obj: Obj) -> None:
        obj["spec"]["template"] = copy.deepcopy(template)
    await modify(client, info, name, namespace, roll_back)
    click.echo(f"{label(info, name)} rolled back")


async def follow_status(client: Client, info: ResourceInfo, name: str, namespace: str, *, watch: bool,
                        echo: Callable[[str], None]) -> None:
    """Print each new status line until the rollout is done (or once, without watch)."""
    last = ""
    while True:
        obj = await client.get(info.kind, name, namespace)
        message, done = status_message(obj)
        if message != last:
            echo(message)
            last = message
        if done or not watch:
            return
        try:
            async for event in client.watch(info.kind, namespace, field_selector=f"metadata.name={name}",
                                            resource_version=obj["metadata"].get("resourceVersion", "")):
                if event.type == "DELETED":
                    raise CliError(f'{info.qualified} "{name}" was deleted')
                if event.type not in ("ADDED", "MODIFIED"):
                    continue
                message, done = status_message(event.object)
                if message != last:
                    echo(message)
                    last = message
                if done:
                    return
        except TooOld:
            continue  # the server no longer has our version: read again and watch from there


@rollout.command("status")
@click.argument("resources", nargs=-1, metavar="KIND NAME | KIND/NAME")
@click.option("-w", "--watch", type=click.BOOL, default=True, is_flag=False, flag_value=True, show_default=True,
              metavar="BOOL", help="Follow the rollout until it is done (--watch=false prints the status once).")
@click.option("--timeout", default="0s", show_default=True, metavar="DURATION",
              help="How long to wait (e.g. 30s, 2m); 0 waits as long as it takes.")
@global_options
def status(resources: tuple[str, ...], watch: bool, timeout: str) -> int:
    """Show the status of the rollout, waiting until it is complete."""
    try:
        seconds = parse_duration(timeout)
    except ValueError as exc:
        raise CliError(f"--timeout: {exc}") from None
    found = targets(resources, verb="status", kinds=("Deployment", "DaemonSet", "StatefulSet"))
    if len(found) != 1:
        raise CliError("rollout status takes exactly one object")
    (info, name), = found
    s = session()

    async def run(client: Client) -> int:
        work = follow_status(client, info, name, s.namespace, watch=watch, echo=click.echo)
        try:
            await (asyncio.wait_for(work, seconds) if seconds > 0 else work)
        except asyncio.TimeoutError:
            raise CliError("timed out waiting for the condition") from None
        return 0
    return s.run(run)


# -- history ------------------------------------------------------------------------------

def describe_template(template: Obj) -> str:
    """The `Pod Template:` section of `rollout history --revision N`."""
    w = TabWriter(min_width=0, padding=2)
    meta, spec = template.get("metadata") or {}, template.get("spec") or {}
    w.write("Pod Template:\n")
    for title, items in (("Labels", meta.get("labels")), ("Annotations", meta.get("annotations"))):
        pairs = [f"{k}={v}" for k, v in sorted((items or {}).items())] or ["<none>"]
        w.write(f"  {title}:\t{pairs[0]}\n")
        for pair in pairs[1:]:
            w.write(f"  \t{pair}\n")
    w.write("  Containers:\n")
    for c in spec.get("containers") or []:
        w.write(f"   {c.get('name')}:\n")
        w.write(f"    Image:\t{c.get('image', '')}\n")
        ports = ", ".join(f"{p.get('containerPort')}/{p.get('protocol', 'TCP')}" for p in c.get("ports") or [])
        w.write(f"    Port:\t{ports or '<none>'}\n")
        env = c.get("env") or []
        w.write(f"    Environment:\t{'<none>' if not env else ''}\n")
        for e in env:
            w.write(f"      {e.get('name')}:\t{e.get('value', '')}\n")
    return w.flush()


@rollout.command("history")
@click.argument("resources", nargs=-1, metavar="KIND NAME | KIND/NAME")
@click.option("--revision", type=int, default=0, metavar="N", help="Show the pod template of this revision.")
@global_options
def history(resources: tuple[str, ...], revision: int) -> int:
    """List a Deployment's revisions (REVISION, CHANGE-CAUSE)."""
    found = targets(resources, verb="history", kinds=("Deployment", "StatefulSet"))
    s = session()

    async def run(client: Client) -> int:
        for info, name in found:
            if info.kind == "StatefulSet":
                await statefulset_history(client, info, name, s.namespace, revision)
                continue
            deployment = await client.get(info.kind, name, s.namespace)
            replicasets = await owned_replicasets(client, deployment)
            if revision:
                match = [rs for rs in replicasets if revision_of(rs) == revision]
                if not match:
                    raise CliError(f"unable to find the specified revision {revision}")
                click.echo(f"{label(info, name)} with revision #{revision}")
                click.echo(describe_template(without_hash(match[-1]["spec"]["template"])), nl=False)
                continue
            click.echo(label(info, name))
            w = TabWriter(min_width=0, padding=2)
            w.write("REVISION\tCHANGE-CAUSE\n")
            for rs in replicasets:
                if revision_of(rs):
                    cause = ((rs.get("metadata") or {}).get("annotations") or {}).get(CHANGE_CAUSE) or "<none>"
                    w.write(f"{revision_of(rs)}\t{cause}\n")
            click.echo(w.flush())
        return 0
    return s.run(run)


# -- undo -----------------------------------------------------------------------------------

def pick_revision(replicasets: list[Obj], to_revision: int, name: str) -> Obj:
    """The ReplicaSet to roll back to: the given revision, or the one before the newest."""
    if to_revision:
        for rs in replicasets:
            if revision_of(rs) == to_revision:
                return rs
        raise CliError(f"unable to find specified revision {to_revision} in history")
    numbered = sorted((revision_of(rs), i) for i, rs in enumerate(replicasets) if revision_of(rs))
    if len(numbered) < 2:
        raise CliError(f'no rollout history found for deployment "{name}"')
    return replicasets[numbered[-2][1]]


@rollout.command("undo")
@click.argument("resources", nargs=-1, metavar="KIND NAME | KIND/NAME")
@click.option("--to-revision", type=int, default=0, metavar="N",
              help="The revision to go back to; 0 (the default) means the previous one.")
@global_options
def undo(resources: tuple[str, ...], to_revision: int) -> int:
    """Roll back to the pod template of a previous revision."""
    if to_revision < 0:
        raise CliError(f"--to-revision must be a revision number (>= 0), got {to_revision}")
    found = targets(resources, verb="undo", kinds=("Deployment", "StatefulSet"))
    s = session()

    async def run(client: Client) -> int:
        for info, name in found:
            if info.kind == "StatefulSet":
                await statefulset_undo(client, info, name, s.namespace, to_revision)
                continue
            deployment = await client.get(info.kind, name, s.namespace)
            if (deployment.get("spec") or {}).get("paused"):
                raise CliError(f"you cannot rollback a paused deployment; resume it first with "
                               f"'ctl rollout resume {label(info, name)}' and try again")
            source = pick_revision(await owned_replicasets(client, deployment), to_revision, name)
            template = without_hash(source["spec"]["template"])
            if template == without_hash(deployment["spec"]["template"]):
                click.echo(f"{label(info, name)} skipped rollback (current template already matches revision "
                           f"{revision_of(source)})")
                continue
            carried = {k: v for k, v in ((source.get("metadata") or {}).get("annotations") or {}).items()
                       if k not in _NOT_ROLLED_BACK}

            # Writes as _modify_each does (the `duplicates` tool pairs them by shape), but only after
            # per-target checks that read the cluster first, so it keeps its own loop.
            def roll_back(obj: Obj) -> None:
                obj["spec"]["template"] = copy.deepcopy(template)
                obj["metadata"]["annotations"] = {**(obj["metadata"].get("annotations") or {}), **carried}
            await modify(client, info, name, s.namespace, roll_back)
            click.echo(f"{label(info, name)} rolled back")
        return 0
    return s.run(run)


# -- restart, pause, resume -------------------------------------------------------------------

@rollout.command("restart")
@click.argument("resources", nargs=-1, metavar="KIND NAME | KIND/NAME")
@global_options
def restart(resources: tuple[str, ...]) -> int:
    """Replace every pod (a new rollout of the same template)."""
    found = targets(resources, verb="restart", kinds=("Deployment", "DaemonSet", "StatefulSet"))
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def stamp_template(obj: Obj) -> str | None:
        if (obj.get("spec") or {}).get("paused"):
            return f"can't restart paused {obj['kind'].lower()} (run rollout resume first)"
        tmeta = obj["spec"]["template"].setdefault("metadata", {})
        tmeta["annotations"] = {**(tmeta.get("annotations") or {}), RESTARTED_AT: stamp}
        return None
    return _modify_each(found, lambda info, name: stamp_template, done="restarted")


def _set_paused(resources: tuple[str, ...], *, paused: bool) -> int:
    verb = "pause" if paused else "resume"
    found = targets(resources, verb=verb, kinds=("Deployment",))

    def flip_for(info: ResourceInfo, name: str) -> Callable[[Obj], str | None]:
        def flip(obj: Obj) -> str | None:
            if bool((obj.get("spec") or {}).get("paused")) == paused:
                return f'{info.qualified_plural} "{name}" is {"already" if paused else "not"} paused'
            if paused:
                obj["spec"]["paused"] = True
            else:
                obj["spec"].pop("paused", None)
            return None
        return flip
    return _modify_each(found, flip_for, done="paused" if paused else "resumed")


def _modify_each(found: list[tuple[ResourceInfo, str]],
                 change_for: Callable[[ResourceInfo, str], Callable[[Obj], str | None]], *, done: str) -> int:
    """`modify` every target with the change made for it; say "<kind>/<name> <done>" for each."""
    s = session()

    async def run(client: Client) -> int:
        for info, name in found:
            await modify(client, info, name, s.namespace, change_for(info, name))
            click.echo(f"{label(info, name)} {done}")
        return 0
    return s.run(run)


@rollout.command("pause")
@click.argument("resources", nargs=-1, metavar="KIND NAME | KIND/NAME")
@global_options
def pause(resources: tuple[str, ...]) -> int:
    """Stop rolling out template changes (scaling still works)."""
    return _set_paused(resources, paused=True)


@rollout.command("resume")
@click.argument("resources", nargs=-1, metavar="KIND NAME | KIND/NAME")
@global_options
def resume(resources: tuple[str, ...]) -> int:
    """Roll out template changes again."""
    return _set_paused(resources, paused=False)
