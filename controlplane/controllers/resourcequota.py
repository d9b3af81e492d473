"""The ResourceQuota controller: keep `status.hard` and `status.used` true to what the namespace holds.

Keys are (namespace, name) of ResourceQuotas, queued when a quota changes and when any
object of a counted kind in its namespace is added, changed or deleted. A reconcile sums
`admission/usage.py` `usage()` over the namespace's objects of each kind a quota caps
(`count/<plural>.<group>` of any kind: an informer for it starts the first time a quota
asks) and writes the status when it differs.

The quota admission plugin charges `status.used` *before* it creates an object, so for a
moment `used` is ahead of what exists. Raising `used` is always safe; lowering it is
deferred until no charge has been seen for SETTLE_SECONDS, so a recount that runs between
a charge and its object's arrival in our caches cannot hand the charge back and let a
concurrent create through. A charge whose create failed is returned after that delay.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from api.registry import ResourceInfo, lookup
from api.resourcequota import COUNTED
from controlplane.admission.usage import amount, show, usage
from controlplane.client import Conflict, NotFound
from controlplane.client.informer import Informer
from controlplane.controllers.manager import Context, QueueController
from controlplane.controllers.settings import ControllerSettings

log = logging.getLogger(__name__)
Obj = dict[str, Any]
Key = tuple[str, str]
SETTLE_SECONDS = 2.0
# Kinds watched from the start (most quotas are on pods); others from the first quota that
# counts them, so a cluster without such quotas caches no Secrets or ConfigMaps here.
WATCHED = ("pods",)
_COUNT_NAMES = {"pods": "pods", "services": "services", "configmaps": "configmaps", "secrets": "secrets",
                "persistentvolumeclaims": "persistentvolumeclaims", "resourcequotas": "resourcequotas",
                "replicationcontrollers": "replicationcontrollers"}


def kind_of(resource: str) -> str | None:
    """The plural (as the registry knows it) whose objects a quota resource counts, or None."""
    if resource.startswith("count/"):
        return resource[len("count/"):]
    if resource in COUNTED:
        return _COUNT_NAMES.get(resource.split(".")[0], resource.split(".")[0])
    if resource.startswith(("requests.", "limits.")) or resource in ("cpu", "memory", "ephemeral-storage"):
        return "pods"
    return None


# The controller pattern (informers in setup, events -> keys, reconcile a key, retry on Conflict):
# alike in shape across controllers by design (the `duplicates` tool pairs them); the rules differ.
class ResourceQuotaController(QueueController):
    def __init__(self, settings: ControllerSettings | None = None, *, namespace: str = "",
                 clock: Callable[[], float] = time.monotonic):
        super().__init__(name="resourcequota")
        self.settings = settings or ControllerSettings()
        self.workers = self.settings.workers
        self.namespace = namespace
        self.clock = clock
        self.charged_at: dict[Key, float] = {}
        self.informers: dict[str, Informer] = {}

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        self.quotas = ctx.informers.get("ResourceQuota", namespace=self.namespace)
        self.quotas.add_handlers(on_add=self._quota_event, on_update=self._quota_updated,
                                 on_delete=self._quota_event)
        for plural in WATCHED:
            self._informer(plural)

    def _informer(self, name: str) -> tuple[ResourceInfo, Informer] | None:
        try:
            info = lookup(name)
        except Exception:
            return None   # a kind this cluster does not serve: counts as 0
        informer = self.informers.get(info.plural)
        if informer is None:
            informer = self.ctx.informers.get(info.plural, namespace=self.namespace)
            informer.add_handlers(on_add=self._object_event, on_update=lambda _o, new: self._object_event(new),
                                  on_delete=self._object_event)
            self.informers[info.plural] = informer
        return info, informer

    def _quota_event(self, quota: Obj) -> None:
        self.queue.add((quota["metadata"].get("namespace", ""), quota["metadata"]["name"]))

    def _quota_updated(self, old: Obj, new: Obj) -> None:
        if ((old.get("status") or {}).get("used") or {}) != ((new.get("status") or {}).get("used") or {}):
            self.charged_at[(new["metadata"].get("namespace", ""), new["metadata"]["name"])] = self.clock()
        self._quota_event(new)

    def _object_event(self, obj: Obj) -> None:
        namespace = (obj.get("metadata") or {}).get("namespace", "")
        for quota in self.quotas.list(namespace):
            self._quota_event(quota)

    async def reconcile(self, key: Key) -> float | None:
        namespace, name = key
        quota = self.quotas.get(namespace, name)
        if quota is None:
            self.charged_at.pop(key, None)
            return None
        hard = dict((quota.get("spec") or {}).get("hard") or {})
        totals: dict[str, int] = {}
        waiting = False
        for plural in sorted({p for r in hard if (p := kind_of(r))}):
            found = self._informer(plural)
            if found is None:
                continue
            info, informer = found
            if not informer.synced.is_set():
                waiting = True
                continue
            for obj in informer.list(namespace):
                for resource, value in usage(info, obj).items():
                    totals[resource] = totals.get(resource, 0) + value
        if waiting:
            return 0.2
        status = dict(quota.get("status") or {})
        old_used = dict(status.get("used") or {})
        used: dict[str, str] = {}
        later: float | None = None
        since_charge = self.clock() - self.charged_at.get(key, float("-inf"))
        for resource in hard:
            counted = totals.get(resource, 0)
            before = amount(resource, old_used[resource]) if resource in old_used else None
            if before is not None and counted < before and since_charge < SETTLE_SECONDS:
                used[resource] = old_used[resource]       # a charge may not have arrived yet
                later = SETTLE_SECONDS - since_charge
            else:
                used[resource] = show(resource, counted)
        status.update(hard=hard, used=used)
        if status != (quota.get("status") or {}):
            try:
                await self.ctx.client.update_status({**quota, "status": status})
            except Conflict:
                return 0.05     # charged meanwhile: count again from the new version
            except NotFound:
                return None
        return later
