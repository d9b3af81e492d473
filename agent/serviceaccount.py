"""A pod's ServiceAccount token, mounted at /var/run/secrets/kubernetes.io/serviceaccount.

As the kubelet does for the `kube-api-access-*` projected volume Kubernetes injects: unless
`automountServiceAccountToken` is false on the pod (or, when the pod leaves it unset, on
its ServiceAccount), every container gets, read-only:

    token       a JWT bound to this pod (TokenRequest on the API server; the Node authorizer
                lets a node ask only for its own pods' accounts)
    namespace   the pod's namespace
    ca.crt      the cluster CA the agent pinned at join (none when it runs --insecure)

The files live in `<pods>/<uid>/volumes/kubernetes.io~serviceaccount/kube-api-access` (a
tmpfs, like a Secret volume) and are rewritten atomically: the token is requested again
once 80 % of its life has passed (the kubelet's rule), so a long-running pod always holds
a valid one. A container that mounts something of its own at that path keeps it.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Awaitable, Callable

log = logging.getLogger(__name__)

MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
VOLUME_NAME = "kube-api-access"
REFRESH_AT = 0.8

# (service account, namespace, pod name, pod uid) -> (token, expiry in unix seconds)
RequestToken = Callable[[str, str, str, str], Awaitable[tuple[str, int]]]


def account_name(pod: dict[str, Any]) -> str:
    return (pod.get("spec") or {}).get("serviceAccountName") or "default"


def wants_token(pod: dict[str, Any], account: dict[str, Any] | None) -> bool:
    """Kubernetes' rule: the pod's automountServiceAccountToken, else the account's, else true."""
    choice = (pod.get("spec") or {}).get("automountServiceAccountToken")
    if choice is None and account is not None:
        choice = account.get("automountServiceAccountToken")
    return choice is not False


def has_own_mount(container: dict[str, Any]) -> bool:
    return any((m.get("mountPath") or "").rstrip("/") == MOUNT_PATH for m in container.get("volumeMounts") or [])


class TokenFiles:
    """When each pod's token was issued and when it expires, to know when to ask again."""

    def __init__(self, *, request: RequestToken, ca_cert: Callable[[], bytes | None],
                 clock: Callable[[], float] = time.time):
        self.request = request
        self.ca_cert = ca_cert
        self.clock = clock
        self._issued: dict[str, tuple[float, int]] = {}   # pod uid -> (issued at, expires at)

    def due(self, uid: str) -> bool:
        issued = self._issued.get(uid)
        if issued is None:
            return True
        start, expires = issued
        return self.clock() >= start + (expires - start) * REFRESH_AT

    async def files(self, pod: dict[str, Any]) -> dict[str, bytes]:
        """The files of the mount, with a fresh token."""
        meta = pod.get("metadata") or {}
        ns, uid = meta.get("namespace") or "default", meta.get("uid") or ""
        now = self.clock()
        token, expires = await self.request(account_name(pod), ns, meta.get("name") or "", uid)
        self._issued[uid] = (now, expires)
        out = {"token": token.encode(), "namespace": ns.encode()}
        ca = self.ca_cert()
        if ca:
            out["ca.crt"] = ca
        return out

    def forget(self, uid: str) -> None:
        self._issued.pop(uid, None)
