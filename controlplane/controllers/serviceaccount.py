"""ServiceAccounts controller: every namespace has a `default` ServiceAccount.

As Kubernetes' serviceaccounts-controller: when a namespace appears, or its `default`
ServiceAccount is deleted, the controller creates it again (pods run as `default` unless
they name another). A namespace that is terminating gets none. Tokens are not stored in
Secrets: they are requested per pod (TokenRequest) and bound to it.
"""

from __future__ import annotations

import logging
from typing import Any

from controlplane.client import AlreadyExists, FailedPrecondition, NotFound
from controlplane.controllers.manager import Context, QueueController
from controlplane.controllers.settings import ControllerSettings

log = logging.getLogger(__name__)
DEFAULT = "default"


# The controller pattern (informers in setup, events -> keys, reconcile a key, retry on Conflict):
# alike in shape across controllers by design (the `duplicates` tool pairs them); the rules differ.
class ServiceAccountsController(QueueController):
    def __init__(self, settings: ControllerSettings):
        super().__init__(name="serviceaccount", workers=2)
        self.settings = settings

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        self.namespaces = ctx.informers.get("Namespace")
        self.accounts = ctx.informers.get("ServiceAccount")
        self.namespaces.add_handlers(on_add=self._namespace, on_update=lambda old, new: self._namespace(new))
        self.accounts.add_handlers(on_delete=self._account_deleted)

    def _namespace(self, ns: dict[str, Any]) -> None:
        self.queue.add(ns["metadata"]["name"])

    def _account_deleted(self, account: dict[str, Any]) -> None:
        meta = account.get("metadata") or {}
        if meta.get("name") == DEFAULT:
            self.queue.add(meta.get("namespace") or "default")

    async def reconcile(self, namespace: str) -> float | None:
        assert self.ctx is not None
        ns = self.namespaces.get("", namespace)
        if ns is None or (ns.get("status") or {}).get("phase") == "Terminating" \
                or (ns.get("metadata") or {}).get("deletionTimestamp"):
            return None
        if self.accounts.get(namespace, DEFAULT) is not None:
            return None
        try:
            await self.ctx.client.create({"apiVersion": "v1", "kind": "ServiceAccount",
                                          "metadata": {"name": DEFAULT, "namespace": namespace}})
            log.info("created ServiceAccount %s/%s", namespace, DEFAULT)
        except AlreadyExists:
            pass
        except (NotFound, FailedPrecondition):
            pass   # the namespace went away or is terminating meanwhile
        return None
