"""ResourceQuota admission: refuse a create that would take a namespace over its quota, else charge it.

For each ResourceQuota of the object's namespace that caps something the object uses
(usage.py), the plugin reads the quota *from etcd* and checks `status.used + request <=
spec.hard`; over the cap, the create is refused as Kubernetes words it:

    pods "web-2" is forbidden: exceeded quota: pod-demo, requested: pods=1, used: pods=2, limited: pods=2

Otherwise it writes `status.used + request` back **with a compare on the quota's
resourceVersion** (an etcd transaction comparing the key's mod revision) before the object
is created. Consistency under concurrent creates — the choice, and why:
- two creates in one API server are serialised per namespace (an asyncio.Lock), so they do
  not even conflict;
- two API servers charging the same quota race on the compare: one wins, the other reads
  the new `used` and checks again (up to CHARGE_ATTEMPTS), so the cap is never overrun;
- this is Kubernetes' own design (the quota is the lock). A charge whose create then fails
  (name taken, etcd down) is given back when the ResourceQuota controller next recomputes
  `used` from what exists (controllers/resourcequota.py), so the error is only ever on the
  safe side (refusing too early for a moment, never admitting too much).
A quota the controller has not computed yet (`status.used` lacks a capped resource) refuses
with Kubernetes' "status unknown for quota" until it has. Dry runs check but do not charge.
"""

from __future__ import annotations

import asyncio
import copy
from collections import defaultdict
from typing import TYPE_CHECKING, Any, Mapping

from api.registry import ResourceInfo, lookup
from api.resourcequota import COMPUTE
from controlplane.admission.usage import amount, missing_limits, show, usage
from controlplane.auth.authz import Forbidden
from controlplane.storage import Conflict, NotFound

if TYPE_CHECKING:
    from controlplane.apiserver.handlers import Handlers

CHARGE_ATTEMPTS = 10
Obj = dict[str, Any]


def _forbidden(info: ResourceInfo, obj: Mapping[str, Any], message: str) -> Forbidden:
    name = (obj.get("metadata") or {}).get("name") or ""
    return Forbidden(f'{info.qualified_plural} "{name}" is forbidden: {message}')


def exceeded(quota: Mapping[str, Any], request: Mapping[str, int]) -> str | None:
    """Kubernetes' refusal for one quota, or None if the request fits."""
    hard = (quota.get("spec") or {}).get("hard") or {}
    used = (quota.get("status") or {}).get("used") or {}
    name = quota["metadata"]["name"]
    capped = sorted(r for r in request if r in hard)
    unknown = [r for r in capped if r not in used]
    if unknown:
        return f"status unknown for quota: {name}, resources: {','.join(unknown)}"
    over = [r for r in capped if amount(r, used[r]) + request[r] > amount(r, hard[r])]
    if not over:
        return None
    return (f"exceeded quota: {name}, requested: {','.join(f'{r}={show(r, request[r])}' for r in over)}, "
            f"used: {','.join(f'{r}={show(r, amount(r, used[r]))}' for r in over)}, "
            f"limited: {','.join(f'{r}={show(r, amount(r, hard[r]))}' for r in over)}")


class QuotaAdmission:
    def __init__(self, handlers: "Handlers"):
        self.h = handlers
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def _quota_names(self, namespace: str) -> list[str]:
        cache = self.h.cache(lookup("resourcequotas"))
        prefix = self.h.store.key("resourcequotas", namespace, "")
        return sorted(obj["metadata"]["name"] for key, obj in list(cache.objects.items()) if key.startswith(prefix))

    async def __call__(self, operation: str, info: ResourceInfo, obj: Obj, old: Obj | None, *,
                       dry_run: bool = False) -> None:
        if operation != "CREATE" or not info.namespaced:
            return
        namespace = (obj.get("metadata") or {}).get("namespace") or "default"
        names = self._quota_names(namespace)
        if not names:
            return
        request = usage(info, obj)
        if not request:
            return
        async with self._locks[namespace]:
            for _attempt in range(CHARGE_ATTEMPTS):
                quotas = []
                for name in names:
                    try:
                        quotas.append(await self.h.store.get("resourcequotas", namespace, name))
                    except NotFound:
                        continue
                # A pod matters to a quota on compute resources even when it requests none (it must).
                touched = set(request) | (set(COMPUTE) if info.kind == "Pod" else set())
                relevant = [q for q in quotas if touched & set(((q.get("spec") or {}).get("hard") or {}))]
                for quota in relevant:
                    hard = (quota.get("spec") or {}).get("hard") or {}
                    if info.kind == "Pod" and (missing := missing_limits(obj, hard)):
                        raise _forbidden(info, obj, f"failed quota: {quota['metadata']['name']}: must specify "
                                                    + "; ".join(missing))
                    if (message := exceeded(quota, request)) is not None:
                        raise _forbidden(info, obj, message)
                if dry_run:
                    return
                try:
                    for quota in relevant:
                        await self._charge(quota, request)
                    return
                except Conflict:
                    continue   # another API server charged meanwhile: read again and re-check
            raise _forbidden(info, obj, "quota was changed by others too often; try again")

    async def _charge(self, quota: Obj, request: Mapping[str, int]) -> None:
        hard = (quota.get("spec") or {}).get("hard") or {}
        charged = copy.deepcopy(quota)
        status = charged.setdefault("status", {}) or {}
        used = dict(status.get("used") or {})
        for resource, value in request.items():
            if resource in hard:
                used[resource] = show(resource, amount(resource, used.get(resource, 0)) + value)
        status["used"] = used
        charged["status"] = status
        await self.h.update_status(charged)
