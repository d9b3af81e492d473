"""Changing live objects in place, as `label`, `annotate`, `taint` and `set image` do.

    objects = await resolve(client, targets, namespace, selector=..., all_=...)
    obj, changed = await change(client, info, name, namespace, compute)

`change_each` does that for a list, reporting failures one by one. `resolve` turns
kubectl's resource arguments (`nodes NAME...`, `pod/NAME`, `-l`, `--all`) into (kind,
name) pairs. `change` reads the object, asks `compute` for a JSON merge patch
(or None: nothing to do; `compute` raises CliError to refuse, e.g. `--overwrite` is
false), and sends it with the resourceVersion it was computed from, so a check made on
the object read still holds when the patch lands; another writer in between means read
and compute again. The patch itself is applied by the server (`Api.Patch`).
"""

from __future__ import annotations

from typing import Any, Callable

from api.registry import ResourceInfo
from cli.errors import CliError, report
from cli.resources import Target
from controlplane.client import ApiError, Client, Conflict

ATTEMPTS = 5

Compute = Callable[[dict[str, Any]], "dict[str, Any] | None"]


def split_arguments(args: tuple[str, ...], is_change: Callable[[str], bool]) -> tuple[list[str], list[str]]:
    """kubectl's split of `label`'s arguments: resources first, then the changes (`k=v`, `k-`)."""
    resources, changes = [], []
    for arg in args:
        (changes if is_change(arg) else resources).append(arg)
    return resources, changes


def check_target_names(targets: list[Target], selector: str, all_: bool) -> None:
    for target in targets:
        if not target.names and not selector and not all_:
            raise CliError("resource(s) were provided, but no name was specified")
        if target.names and (selector or all_):
            raise CliError("names cannot be given together with -l or --all")


async def resolve(client: Client, targets: list[Target], namespace: str, *, selector: str = "",
                  all_: bool = False) -> list[tuple[ResourceInfo, str]]:
    """The (kind, name) of every object the arguments name."""
    check_target_names(targets, selector, all_)
    out: list[tuple[ResourceInfo, str]] = []
    for target in targets:
        ns = namespace if target.info.namespaced else ""
        names = target.names or [o["metadata"]["name"] for o in
                                 (await client.list(target.info.kind, ns, label_selector=selector)).items]
        out += [(target.info, name) for name in names]
    return out


async def change(client: Client, info: ResourceInfo, name: str, namespace: str, compute: Compute, *,
                 dry_run: bool = False) -> tuple[dict[str, Any], bool]:
    """Read, compute a merge patch, send it pinned to the version read. (object, changed)."""
    ns = namespace if info.namespaced else ""
    for _attempt in range(ATTEMPTS):
        current = await client.get(info.kind, name, ns)
        patch = compute(current)
        if patch is None:
            return current, False
        patch.setdefault("metadata", {})["resourceVersion"] = current["metadata"].get("resourceVersion", "")
        try:
            return await client.patch(info.kind, name, ns, patch, patch_type="merge", dry_run=dry_run), True
        except Conflict:
            continue
    raise CliError(f'{info.qualified_plural} "{name}" kept changing; try again')


async def change_each(client: Client, objects: list[tuple[ResourceInfo, str]], namespace: str, compute: Compute,
                      done: Callable[[ResourceInfo, str, dict[str, Any], bool], None], *,
                      dry_run: bool = False) -> int:
    """`change` every object; `done(info, name, object, changed)` says what happened. A failure
    is reported and the rest still go (kubectl's habit); the exit code is 1 if any failed."""
    code = 0
    for info, name in objects:
        try:
            obj, changed = await change(client, info, name, namespace, compute, dry_run=dry_run)
        except (ApiError, CliError) as exc:
            report(exc)
            code = 1
            continue
        done(info, name, obj, changed)
    return code
