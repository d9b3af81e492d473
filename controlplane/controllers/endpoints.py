"""The Endpoints controller: each selecting Service's v1 Endpoints object (same name).

What `ctl get endpoints` and `ctl describe svc` show; proxies and DNS read
EndpointSlices (endpointslice.py), which the same events and the same rules
(endpoint_rules.py) keep. Ready pods are `addresses`, the others
`notReadyAddresses`; terminating pods are left out unless the Service publishes
not-ready addresses — as Kubernetes' endpoints controller does. The object is
written only when its subsets or labels differ from the stored ones; it is
deleted with its Service. Services without a selector keep the Endpoints their
user writes.
"""

from __future__ import annotations

import logging
from typing import Any

from controlplane.client import ApiError, Conflict, NotFound
from controlplane.client.errors import AlreadyExists
from controlplane.client.informer import Informer
from controlplane.controllers import endpoint_rules as rules
from controlplane.controllers.endpointslice import EndpointWatcher, Key, pods_of
from controlplane.controllers.manager import Context
from controlplane.controllers.settings import ControllerSettings

log = logging.getLogger(__name__)
Obj = dict[str, Any]


class EndpointsController(EndpointWatcher):
    def __init__(self, settings: ControllerSettings | None = None, *, namespace: str = ""):
        settings = settings or ControllerSettings()
        super().__init__(name="endpoints", workers=settings.workers)
        self.namespace = namespace

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        self.endpoints: Informer = ctx.informers.get("Endpoints", namespace=self.namespace)
        self.endpoints.add_handlers(on_delete=self._enqueue)   # deleted by hand: write it again

    async def reconcile(self, key: Key) -> float | None:
        namespace, name = key
        svc = self.services.get(namespace, name)
        current = self.endpoints.get(namespace, name)
        try:
            if svc is None:
                if current is not None:
                    await self.client.delete("Endpoints", name, namespace)
                return None
            selector = rules.selector_of(svc)
            if selector is None:
                return None
            subsets = rules.endpoints_subsets(svc, pods_of(self.pods, svc, selector))
            labels = rules.endpoints_labels(svc)
            if current is None:
                body: Obj = {"apiVersion": "v1", "kind": "Endpoints",
                             "metadata": {"name": name, "namespace": namespace, "labels": labels}}
                if subsets:
                    body["subsets"] = subsets
                await self.client.create(body)
                return None
            if (current.get("subsets") or []) == subsets and \
                    ((current.get("metadata") or {}).get("labels") or {}) == labels:
                return None
            updated = {**current, "metadata": {**current["metadata"], "labels": labels}}
            updated.pop("subsets", None)
            if subsets:
                updated["subsets"] = subsets
            await self.client.update(updated)
        except (Conflict, AlreadyExists, NotFound):
            return 0.02
        except ApiError as exc:
            log.warning("endpoints %s/%s: %s", namespace, name, exc.message)
            return 1.0
        return None
