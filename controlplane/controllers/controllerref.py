"""Claiming by selector: adopt orphans that match, release what no longer matches.

An object belongs to the controller named in its ownerReference with
`controller: true` (owned.py reads and builds that reference). Ownership
follows the owner's selector, as kube-controller-manager's
`ControllerRefManager` does it:

- owned and matching: keep it;
- owned but its labels no longer match: *release* it (remove our reference),
  unless the owner is being deleted;
- an orphan (no controller) that matches: *adopt* it (add our reference) —
  unless either side is being deleted, and only after a fresh read of the owner
  confirms it still exists with the same uid (the cache may be stale, and
  adopting for a deleted owner would hand the object to the garbage collector).

Objects owned by another controller are never touched. The ReplicaSet
controller claims pods with this, the Deployment controller ReplicaSets.
Writes use the cached resourceVersion, so a stale view fails with Conflict
and the caller's reconcile is retried.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Awaitable, Callable, Mapping

from api.selectors import Selector
from controlplane.client import Client, NotFound
from controlplane.controllers.owned import controller_of, owner_reference

log = logging.getLogger(__name__)
Obj = Mapping[str, Any]


def is_deleting(obj: Obj) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def uid_of(obj: Obj) -> str:
    return (obj.get("metadata") or {}).get("uid") or ""


def labels_of(obj: Obj) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def orphan_namespace(obj: Obj) -> list[str]:
    """Index function: the namespace of an object without a controller (orphans by namespace)."""
    return [] if controller_of(obj) else [(obj.get("metadata") or {}).get("namespace") or ""]


def can_adopt_check(client: Client, owner: Obj) -> Callable[[], Awaitable[bool]]:
    """A check, run at most once, that `owner` still exists (same uid) and is not being deleted."""
    answer: list[bool] = []

    async def check() -> bool:
        if not answer:
            meta = owner.get("metadata") or {}
            try:
                fresh = await client.get(str(owner.get("kind")), meta.get("name", ""), meta.get("namespace", ""))
                answer.append(uid_of(fresh) == uid_of(owner) and not is_deleting(fresh))
            except NotFound:
                answer.append(False)
        return answer[0]
    return check


async def claim(client: Client, *, owner: Obj, selector: Selector, candidates: list[Obj],
                can_adopt: Callable[[], Awaitable[bool]]) -> list[Obj]:
    """The candidates that belong to `owner` after adopting and releasing (see module docstring)."""
    owner_uid = uid_of(owner)
    owner_ns = (owner.get("metadata") or {}).get("namespace") or ""
    claimed: list[Obj] = []
    for obj in candidates:
        ref = controller_of(obj)
        matches = selector.matches(labels_of(obj))
        if ref is not None:
            if ref.get("uid") != owner_uid:
                continue  # another controller's
            if matches:
                claimed.append(obj)
            elif not is_deleting(owner):
                await release(client, obj, owner_uid)
            continue
        if not matches or is_deleting(owner) or is_deleting(obj):
            continue
        if (obj.get("metadata") or {}).get("namespace", "") != owner_ns:
            continue
        if not await can_adopt():
            continue
        adopted = await adopt(client, obj, owner)
        if adopted is not None:
            claimed.append(adopted)
    return claimed


async def adopt(client: Client, obj: Obj, owner: Obj) -> dict[str, Any] | None:
    """Add owner's controller reference to obj; the updated object, or None if obj is gone."""
    fresh = copy.deepcopy(dict(obj))
    meta = fresh.setdefault("metadata", {})
    meta["ownerReferences"] = list(meta.get("ownerReferences") or []) + [owner_reference(owner)]
    try:
        updated = await client.update(fresh)
    except NotFound:
        return None
    log.info("%s %s/%s adopted by %s %s", obj.get("kind"), meta.get("namespace"), meta.get("name"),
             owner.get("kind"), (owner.get("metadata") or {}).get("name"))
    return updated


async def release(client: Client, obj: Obj, owner_uid: str) -> None:
    """Remove the reference to owner_uid from obj (a no-op if obj is gone)."""
    fresh = copy.deepcopy(dict(obj))
    meta = fresh.setdefault("metadata", {})
    meta["ownerReferences"] = [r for r in meta.get("ownerReferences") or [] if r.get("uid") != owner_uid]
    if not meta["ownerReferences"]:
        del meta["ownerReferences"]
    try:
        await client.update(fresh)
    except NotFound:
        return
    log.info("%s %s/%s released by owner %s", obj.get("kind"), meta.get("namespace"), meta.get("name"), owner_uid)
