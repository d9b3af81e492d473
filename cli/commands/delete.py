"""`ctl delete`: delete objects by name, by label selector, or as listed in manifests.

    ctl delete pod web                 ctl delete -f web.yaml
    ctl delete deploy,svc -l app=web   ctl delete pods --all --wait=false

Prints kubectl's `pod "web" deleted` per object. Like kubectl, it then waits
(`--wait`, on by default) until each object is really gone: a pod running on a
node goes away only after its agent has stopped the containers (its grace
period), and an object with finalizers only after they are removed. Pods that
no node runs disappear at once. `--timeout` bounds the wait (0, the default,
waits as long as it takes; with no agent running a bound pod would wait forever,
so give a timeout or --wait=false there).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import click

from api.registry import ResourceInfo
from cli import manifests, validation
from cli.commands.apply import manifest_options
from cli.commands.get import check_selectors, namespace_for, no_resources_message
from cli.errors import CliError, print_error, report
from cli.resources import parse_targets
from cli.session import global_options, session
from api.printing.timefmt import parse_duration
from controlplane.client import ApiError, Client, NotFound

CASCADE = {"background": "Background", "foreground": "Foreground", "orphan": "Orphan",
           "true": "Background", "false": "Orphan"}


@dataclass
class Victim:
    info: ResourceInfo
    namespace: str
    name: str
    uid: str = ""

    @property
    def label(self) -> str:
        return f'{self.info.qualified} "{self.name}"'


async def wait_until_gone(client: Client, victims: list[Victim], timeout: float) -> list[Victim]:
    """Poll until every object is gone (or replaced by a new one); those still there at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout if timeout > 0 else None
    delay = 0.05
    pending = victims
    while pending:
        still = []
        for v in pending:
            try:
                obj = await client.get(v.info.kind, v.name, v.namespace)
            except NotFound:
                continue
            if not v.uid or (obj.get("metadata") or {}).get("uid") == v.uid:
                still.append(v)
        pending = still
        if not pending:
            break
        if deadline is not None and loop.time() >= deadline:
            return pending
        pause = delay if deadline is None else min(delay, max(0.0, deadline - loop.time()))
        await asyncio.sleep(pause)
        delay = min(delay * 2, 1.0)
    return []


async def find_victims(client: Client, resources: tuple[str, ...], *, selector: str, all_: bool,
                       all_namespaces: bool) -> list[Victim]:
    targets = parse_targets(resources, verb="delete")
    victims = []
    for target in targets:
        ns = namespace_for(target, all_namespaces)
        if target.names:
            victims += [Victim(target.info, ns if target.info.namespaced else "", n) for n in target.names]
            continue
        for obj in (await client.list(target.info.kind, ns, label_selector=selector)).items:
            meta = obj.get("metadata") or {}
            victims.append(Victim(target.info, meta.get("namespace", ""), meta.get("name", "")))
    return victims


@click.command()
@click.argument("resources", nargs=-1, metavar="KIND NAME... | KIND/NAME... | -f FILE")
@manifest_options
@click.option("-l", "--selector", default="", metavar="SELECTOR", help="Delete the objects with these labels.")
@click.option("--all", "all_", is_flag=True, help="Delete every object of the kind(s) in the namespace.")
@click.option("-A", "--all-namespaces", is_flag=True, help="With -l or --all: in every namespace.")
@click.option("--wait", type=click.BOOL, default=True, is_flag=False, flag_value=True, show_default=True,
              metavar="BOOL", help="Wait until the objects are gone (--wait=false returns at once).")
@click.option("--timeout", default="0s", show_default=True, metavar="DURATION",
              help="How long to wait (e.g. 30s, 2m); 0 waits as long as it takes.")
@click.option("--grace-period", type=int, default=-1, show_default=True, metavar="SECONDS",
              help="Seconds a pod gets to stop; -1 uses the pod's own terminationGracePeriodSeconds.")
@click.option("--now", is_flag=True, help="Same as --grace-period=1.")
@click.option("--force", is_flag=True, help="Remove pods from the API at once (grace period 0), without "
                                            "waiting for their agent to confirm.")
@click.option("--cascade", type=click.Choice(sorted(CASCADE)), default="background", show_default=True,
              help="What happens to dependents: background, foreground (they go first) or orphan (they stay).")
@click.option("--ignore-not-found", is_flag=True, help="Treat objects that do not exist as deleted.")
@click.option("--dry-run", "dry_run", type=click.Choice(["none", "client", "server"]), default="none",
              is_flag=False, flag_value="client", help="client: only print; server: let the server check.")
@global_options
def delete(resources: tuple[str, ...], filenames: tuple[str, ...], recursive: bool, selector: str, all_: bool,
           all_namespaces: bool, wait: bool, timeout: str, grace_period: int, now: bool, force: bool,
           cascade: str, ignore_not_found: bool, dry_run: str) -> int:
    """Delete objects, then wait until they are gone."""
    s = session()
    try:
        wait_seconds = parse_duration(timeout)
    except ValueError as exc:
        raise CliError(f"--timeout: {exc}") from None
    check_selectors(selector, "")
    grace: int | None = None if grace_period < 0 else grace_period
    if now:
        grace = 1
    if force and grace is None:
        grace = 0
    if force and grace == 0:
        print_error("Warning: Immediate deletion does not wait for confirmation that the running resource has "
                    "been terminated. The resource may continue to run on the cluster indefinitely.")
    if filenames and resources:
        raise CliError("when -f is given, resources may not be given as arguments too")
    by_file: list[Victim] = []
    if filenames:
        docs = manifests.read(filenames, recursive=recursive)
        if not docs:
            raise CliError("no objects passed to delete")
        checked = validation.identify_all(docs, namespace=s.namespace, explicit_namespace=s.explicit_namespace)
        by_file = [Victim(c.info, c.namespace, c.name) for c in checked]
    else:
        targets = parse_targets(resources, verb="delete")
        if not any(t.names for t in targets) and not selector and not all_:
            raise CliError("resource(s) were provided, but no name was specified; give names, -l SELECTOR or --all")
        if any(t.names for t in targets) and (selector or all_):
            raise CliError("names cannot be given together with -l or --all")

    async def run(client: Client) -> int:
        victims = by_file or await find_victims(client, resources, selector=selector, all_=all_,
                                                all_namespaces=all_namespaces)
        if not victims:
            click.echo(no_resources_message(parse_targets(resources, verb="delete"), all_namespaces), err=True)
            return 0
        code = 0
        waiting: list[Victim] = []
        for v in victims:
            try:
                if dry_run == "client":
                    await client.get(v.info.kind, v.name, v.namespace)
                    click.echo(f"{v.label} deleted (dry run)")
                    continue
                obj, finished = await client.delete(v.info.kind, v.name, v.namespace, propagation=CASCADE[cascade],
                                                    grace_seconds=grace, dry_run=dry_run == "server")
            except NotFound as exc:
                if not ignore_not_found:
                    report(exc)
                    code = 1
                continue
            except ApiError as exc:
                report(exc)
                code = 1
                continue
            click.echo(f"{v.label} deleted" + (" (server dry run)" if dry_run == "server" else ""))
            if not finished and dry_run == "none":
                v.uid = (obj.get("metadata") or {}).get("uid", "")
                waiting.append(v)
        if wait and waiting:
            for v in await wait_until_gone(client, waiting, wait_seconds):
                print_error(f"error: timed out waiting for the condition on {v.info.plural}/{v.name}")
                code = 1
        return code

    return s.run(run)
