"""The EndpointSlice controller: each selecting Service's endpoints, as discovery.k8s.io/v1 slices.

Keys are Services (namespace, name). Events only make keys: a Service changed;
a pod whose endpoint-relevant state changed (IP, readiness, deletion, labels,
node, hostname — `endpoint_rules.relevant`) wakes the Services whose selectors
match it before or after; a slice we manage changed or went (someone edited or
deleted it) wakes its Service. Services are found from a pod through an index
on one label pair of each selector, pods of a Service through an index on every
label pair of each pod, so an event costs a few dictionary lookups however many
Services there are (1,000 Services × 10 endpoints is the figure to hold).

A reconcile computes the desired groups (endpoint_rules.desired_groups) and the
writes (plan_slices) and makes only those: an unchanged Service writes nothing.
Slices carry `kubernetes.io/service-name`, `endpointslice.kubernetes.io/managed-
by: endpointslice-controller.k8s.io` and an ownerReference to the Service; only
slices with our managed-by label are ever touched, so a Service without a
selector keeps the slices its user writes. After writing, the controller expects
its informer to show what it wrote (names and resourceVersions) before planning
again from it, so a lagging cache never makes it create a slice twice.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from api.endpointslice import MANAGED_BY_LABEL, SERVICE_NAME_LABEL
from controlplane.client import ApiError, Conflict, NotFound
from controlplane.client.errors import AlreadyExists
from controlplane.client.events import WARNING
from controlplane.client.informer import Informer
from controlplane.controllers import endpoint_rules as rules
from controlplane.controllers.manager import Context, QueueController
from controlplane.controllers.settings import ControllerSettings

log = logging.getLogger(__name__)
Obj = dict[str, Any]
Key = tuple[str, str]
SERVICE_BY_PAIR = "service-by-selector-pair"
POD_BY_PAIR = "pod-by-label-pair"
SLICE_BY_SERVICE = "endpointslice-by-service"
EXPECT_TIMEOUT = 5.0     # seconds to wait for the informer to show our own writes
REASON_PORT = "FailedToResolveTargetPort"


def _key(obj: Obj) -> Key:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


def service_pairs(svc: Obj) -> list[str]:
    selector = rules.selector_of(svc)
    return [rules.selector_pair(_key(svc)[0], selector)] if selector else []


def slice_service(s: Obj) -> list[str]:
    labels = (s.get("metadata") or {}).get("labels") or {}
    if labels.get(MANAGED_BY_LABEL) != rules.MANAGED_BY or not labels.get(SERVICE_NAME_LABEL):
        return []
    return [f"{_key(s)[0]}/{labels[SERVICE_NAME_LABEL]}"]


def add_service_indexes(services: Informer, pods: Informer) -> None:
    """The indexes both endpoint controllers use (same names, same functions: idempotent)."""
    services.add_index(SERVICE_BY_PAIR, service_pairs)
    pods.add_index(POD_BY_PAIR, rules.pod_pairs)


def services_of(services: Informer, pod: Obj) -> set[Key]:
    """Services whose selector matches the pod."""
    out = set()
    for pair in rules.pod_pairs(pod):
        for svc in services.by_index(SERVICE_BY_PAIR, pair):
            selector = rules.selector_of(svc)
            if selector and rules.selects(selector, pod):
                out.add(_key(svc))
    return out


def pods_of(pods: Informer, svc: Obj, selector: dict[str, str]) -> list[Obj]:
    pair = rules.selector_pair(_key(svc)[0], selector)
    return [p for p in pods.by_index(POD_BY_PAIR, pair) if rules.selects(selector, p)]


# The controller pattern (informers in setup, events -> keys, reconcile a key, retry on Conflict):
# alike in shape across controllers by design (the `duplicates` tool pairs them); the rules differ.
class EndpointWatcher(QueueController):
    """Events → Service keys, shared by the EndpointSlice and Endpoints controllers."""

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        self.client = ctx.client
        self.recorder = ctx.recorder
        self.services: Informer = ctx.informers.get("Service", namespace=self.namespace)
        self.pods: Informer = ctx.informers.get("Pod", namespace=self.namespace)
        add_service_indexes(self.services, self.pods)
        self.services.add_handlers(on_add=self._enqueue, on_update=lambda old, new: self._enqueue(new),
                                   on_delete=self._enqueue)
        self.pods.add_handlers(on_add=self._pod_changed, on_update=self._pod_updated, on_delete=self._pod_changed)

    def _enqueue(self, obj: Obj) -> None:
        self.queue.add(_key(obj))

    def _pod_changed(self, pod: Obj) -> None:
        for key in services_of(self.services, pod):
            self.queue.add(key)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if rules.relevant(old) == rules.relevant(new):
            return
        keys = services_of(self.services, new)
        if (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels"):
            keys |= services_of(self.services, old)
        for key in keys:
            self.queue.add(key)


class EndpointSliceController(EndpointWatcher):
    def __init__(self, settings: ControllerSettings | None = None, *, namespace: str = "",
                 max_endpoints_per_slice: int = rules.MAX_ENDPOINTS_PER_SLICE):
        settings = settings or ControllerSettings()
        super().__init__(name="endpointslice", workers=settings.workers)
        self.namespace = namespace   # "" watches every namespace; tests narrow it to their own
        self.max_per_slice = max_endpoints_per_slice
        # Our writes the informer has not shown yet: service -> slice name -> resourceVersion (0: deleted).
        self.expected: dict[Key, tuple[float, dict[str, int]]] = {}
        self.reported: dict[Key, set[rules.MissingPort]] = {}

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        self.slices: Informer = ctx.informers.get("EndpointSlice", namespace=self.namespace)
        self.slices.add_index(SLICE_BY_SERVICE, slice_service)
        self.slices.add_handlers(on_add=self._slice_changed, on_update=lambda old, new: self._slice_changed(new),
                                 on_delete=self._slice_changed)

    def _slice_changed(self, s: Obj) -> None:
        for owner in slice_service(s):
            namespace, _, name = owner.partition("/")
            entry = self.expected.get((namespace, name))
            meta = s.get("metadata") or {}
            if entry is not None and entry[1].get(meta.get("name") or "") == \
                    int(meta.get("resourceVersion") or -1) and not meta.get("deletionTimestamp"):
                continue   # our own write coming back: nothing to do
            self.queue.add((namespace, name))

    def _cache_shows_our_writes(self, key: Key, slices: list[Obj]) -> bool:
        entry = self.expected.get(key)
        if entry is None:
            return True
        since, wanted = entry
        seen = {_key(s)[1]: int((s.get("metadata") or {}).get("resourceVersion") or 0) for s in slices}
        for name, version in wanted.items():
            if (version == 0 and name in seen) or (version and seen.get(name, 0) < version):
                if time.monotonic() - since < EXPECT_TIMEOUT:
                    return False
                log.warning("endpointslice %s/%s: the informer never showed our write of %s; going on",
                            key[0], key[1], name)
        del self.expected[key]
        return True

    async def reconcile(self, key: Key) -> float | None:
        namespace, name = key
        slices = self.slices.by_index(SLICE_BY_SERVICE, f"{namespace}/{name}")
        if not self._cache_shows_our_writes(key, slices):
            return 0.01
        svc = self.services.get(namespace, name)
        selector = rules.selector_of(svc) if svc is not None else None
        if svc is None or (selector is None and (svc.get("spec") or {}).get("type") == "ExternalName"):
            plan = rules.SlicePlan(delete=list(slices))     # gone, or no endpoints at all
            self.reported.pop(key, None)
        elif selector is None:
            return None                                     # the user's own slices
        else:
            groups, problems = rules.desired_groups(svc, pods_of(self.pods, svc, selector))
            self._report(key, svc, problems)
            plan = rules.plan_slices(svc, slices, groups, max_per_slice=self.max_per_slice)
        if plan.empty():
            return None
        return await self._write(key, plan)

    def _report(self, key: Key, svc: Obj, problems: list[rules.MissingPort]) -> None:
        before = self.reported.get(key, set())
        now = set(problems)
        for problem in sorted(now - before, key=lambda p: (p.pod, p.index)):
            self.recorder.event(svc, WARNING, REASON_PORT, problem.message())
        if now:
            self.reported[key] = now
        else:
            self.reported.pop(key, None)

    async def _write(self, key: Key, plan: rules.SlicePlan) -> float | None:
        assert self.ctx is not None
        wrote: dict[str, int] = {}
        retry: float | None = None
        try:
            for s in plan.update:
                written = await self.client.update(s)
                wrote[_key(written)[1]] = int(written["metadata"]["resourceVersion"])
            for s in plan.create:
                written = await self.client.create(s)
                wrote[_key(written)[1]] = int(written["metadata"]["resourceVersion"])
            for s in plan.delete:
                try:
                    await self.client.delete("EndpointSlice", _key(s)[1], key[0])
                except NotFound:
                    pass
                wrote[_key(s)[1]] = 0
        except (Conflict, AlreadyExists, NotFound):
            retry = 0.02    # our picture was stale: look again once the informer caught up
        except ApiError as exc:
            log.warning("endpointslice %s/%s: %s", key[0], key[1], exc.message)
            retry = 1.0
        if wrote:
            self.expected[key] = (time.monotonic(), wrote)
        return retry
