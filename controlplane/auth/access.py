"""Access control in the API server: authorization of every request, admission, ServiceAccount tokens.

One `AccessControl` per API server, built on its Handlers' watch caches:

- `chain`: system:masters (always allowed), then the Node authorizer, then RBAC — as
  kube-apiserver's `--authorization-mode=Node,RBAC` with its privileged group;
- `Handlers.admission` is set to NodeRestriction + Pod Security (admission.py);
- `issuer` / `tokens`: the ServiceAccount token issuer and the bearer-token authenticator
  (serviceaccount_tokens.py) that the API server's authenticator asks for `Bearer` tokens.

`check()` is what each verb of the servicer (controlplane/apiserver/service.py) calls with
the caller and what it asks; it raises Forbidden (PERMISSION_DENIED) or returns. It also
records the caller for admission (admission.REQUEST_USER).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Mapping

from cryptography.hazmat.primitives.asymmetric import ec

from api.registry import ResourceInfo, lookup
from controlplane.auth import rbac
from controlplane.auth.admission import REQUEST_USER, Admission
from controlplane.auth.authz import Attributes, Chain, Decision
from controlplane.auth.identity import MASTERS, UserInfo
from controlplane.auth.node import NodeAuthorizer
from controlplane.storage import NotFound
from controlplane.auth.serviceaccount_tokens import ServiceAccountTokenAuthenticator, TokenIssuer

if TYPE_CHECKING:
    from controlplane.apiserver.handlers import Handlers

log = logging.getLogger(__name__)


class AccessControl:
    def __init__(self, handlers: "Handlers", *, token_key: ec.EllipticCurvePrivateKey | None = None):
        self.handlers = handlers
        self.rbac = rbac.RBACAuthorizer({kind: handlers.cache(lookup(kind)) for kind in rbac.KINDS})
        for plural in ("persistentvolumes", "persistentvolumeclaims"):   # the Node authorizer reads them
            handlers.cache(lookup(plural))
        self.node = NodeAuthorizer(handlers.cache(lookup("pods")), lookup=self.cached)
        self.chain = Chain(rbac.PrivilegedGroups(MASTERS), self.node, self.rbac)
        from controlplane.admission.limitrange import LimitRangeAdmission
        from controlplane.admission.quota import QuotaAdmission
        handlers.admission = Admission(self._namespace, self._stored_namespace,
                                       resources=[LimitRangeAdmission(handlers), QuotaAdmission(handlers)])
        if token_key is None:
            log.info("no ServiceAccount signing key given: using a new one (tokens die with this process)")
            token_key = ec.generate_private_key(ec.SECP256R1())
        self.issuer = TokenIssuer(token_key)
        self.tokens = ServiceAccountTokenAuthenticator(self.issuer, lookup=self.cached)

    def cached(self, plural: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        """An object as the API server's watch cache holds it (no etcd read)."""
        return self.handlers.cache(lookup(plural)).objects.get(self.handlers.store.key(plural, namespace, name))

    async def _namespace(self, name: str) -> Mapping[str, Any] | None:
        """A Namespace for admission: the watch cache's, or etcd's when the cache has not seen it yet
        (a namespace created a moment ago, its Pod Security label with it)."""
        cached = self.cached("namespaces", "", name)
        if cached is not None:
            return cached
        return await self._stored_namespace(name)

    async def _stored_namespace(self, name: str) -> Mapping[str, Any] | None:
        try:
            return await self.handlers.store.get("namespaces", "", name)
        except NotFound:
            return None

    def check(self, user: UserInfo, verb: str, info: ResourceInfo, namespace: str = "", name: str = "", *,
              subresource: str = "", field_selector: str = "") -> None:
        """Raise Forbidden unless `user` may `verb` the resource; remember the user for admission."""
        REQUEST_USER.set(user)
        self.chain.check(Attributes(user, verb, info.plural, info.group, subresource,
                                    namespace if info.namespaced else "", name, field_selector))

    def check_resource(self, user: UserInfo, verb: str, resource: str, group: str, namespace: str = "",
                       name: str = "", *, subresource: str = "") -> None:
        """As check(), for resources that are not kinds (images, metrics)."""
        REQUEST_USER.set(user)
        self.chain.check(Attributes(user, verb, resource, group, subresource, namespace, name))

    def allowed(self, attrs: Attributes) -> tuple[bool, str]:
        decision, reason = self.chain.authorize(attrs)
        return decision is Decision.ALLOW, reason
