"""Bootstrap tokens: how a new node proves it may join, as kubeadm's join tokens.

A token is `<id>.<secret>` (`[a-z0-9]{6}.[a-z0-9]{16}`). It is stored as Kubernetes
stores it: a Secret `kube-system/bootstrap-token-<id>` of type
`bootstrap.kubernetes.io/token` with `token-id`, `token-secret`, `expiration` (RFC 3339)
and `usage-bootstrap-authentication: "true"`, so `ctl get secrets -n kube-system` lists
them and deleting the Secret revokes the token. A token authenticates as
`system:bootstrap:<id>` in group `system:bootstrappers`, and such an identity may only
join a node (controlplane/pki/nodecerts.py); everything else refuses it.
"""

from __future__ import annotations

import base64
import datetime
import hmac
import re
import secrets
import string
from dataclasses import dataclass
from typing import Any, Callable

from controlplane.auth.authn import AuthenticationError
from controlplane.auth.identity import UserInfo

NAMESPACE = "kube-system"
SECRET_TYPE = "bootstrap.kubernetes.io/token"
SECRET_PREFIX = "bootstrap-token-"
BOOTSTRAPPERS = "system:bootstrappers"
USER_PREFIX = "system:bootstrap:"
TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
ALPHABET = string.ascii_lowercase + string.digits
DEFAULT_TTL = datetime.timedelta(hours=24)


def generate() -> str:
    pick = lambda n: "".join(secrets.choice(ALPHABET) for _ in range(n))  # noqa: E731
    return f"{pick(6)}.{pick(16)}"


def secret_name(token_id: str) -> str:
    return SECRET_PREFIX + token_id


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def rfc3339(when: datetime.datetime) -> str:
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def secret_for(token: str, *, ttl: datetime.timedelta | None, description: str = "",
               now: datetime.datetime | None = None) -> dict[str, Any]:
    """The Secret that stores `token`; ttl None (or 0) means it never expires, as kubeadm's --ttl 0."""
    match = TOKEN_RE.match(token)
    if not match:
        raise ValueError(f"token {token!r} does not have the form [a-z0-9]{{6}}.[a-z0-9]{{16}}")
    token_id, token_secret = match.groups()
    data = {"token-id": _b64(token_id), "token-secret": _b64(token_secret),
            "usage-bootstrap-authentication": _b64("true")}
    if ttl:
        data["expiration"] = _b64(rfc3339((now or datetime.datetime.now(datetime.timezone.utc)) + ttl))
    if description:
        data["description"] = _b64(description)
    return {"apiVersion": "v1", "kind": "Secret", "type": SECRET_TYPE,
            "metadata": {"name": secret_name(token_id), "namespace": NAMESPACE}, "data": data}


@dataclass(frozen=True)
class BootstrapToken:
    token_id: str
    token_secret: str
    expiration: datetime.datetime | None
    description: str
    authentication: bool

    def expired(self, now: datetime.datetime | None = None) -> bool:
        return self.expiration is not None and (now or datetime.datetime.now(datetime.timezone.utc)) >= self.expiration


def parse_secret(secret: dict[str, Any]) -> BootstrapToken | None:
    """The token a bootstrap-token Secret holds; None for any other Secret or a broken one."""
    if secret.get("type") != SECRET_TYPE:
        return None
    data = {k: base64.b64decode(v).decode(errors="replace") for k, v in (secret.get("data") or {}).items()}
    token_id, token_secret = data.get("token-id", ""), data.get("token-secret", "")
    if secret.get("metadata", {}).get("name") != secret_name(token_id) or not token_secret:
        return None
    expiration = None
    if data.get("expiration"):
        try:
            expiration = datetime.datetime.fromisoformat(data["expiration"].replace("Z", "+00:00"))
        except ValueError:
            return None
    return BootstrapToken(token_id, token_secret, expiration, data.get("description", ""),
                          data.get("usage-bootstrap-authentication") == "true")


class BootstrapTokenAuthenticator:
    """A token authenticator (controlplane/auth/authn.py) for join tokens.

    `lookup(name)` returns the Secret kube-system/<name> or None; the API server reads it from
    its watch cache, so a deleted token stops working as soon as the deletion is seen."""

    def __init__(self, lookup: Callable[[str], dict[str, Any] | None],
                 clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.timezone.utc)):
        self.lookup = lookup
        self.clock = clock

    def __call__(self, token: str) -> UserInfo | None:
        match = TOKEN_RE.match(token)
        if not match:
            return None    # not a bootstrap token: another authenticator's
        token_id, token_secret = match.groups()
        secret = self.lookup(secret_name(token_id))
        stored = parse_secret(secret) if secret is not None else None
        if stored is None or not hmac.compare_digest(stored.token_secret, token_secret):
            raise AuthenticationError(f"bootstrap token {token_id!r} is unknown (never created, deleted, "
                                      f"or its secret part is wrong)")
        if stored.expired(self.clock()):
            raise AuthenticationError(f"bootstrap token {token_id!r} expired at {rfc3339(stored.expiration)}"
                                      f"; create a new one with `skiff-controlplane token create`")
        if not stored.authentication:
            raise AuthenticationError(f"bootstrap token {token_id!r} is not marked for authentication")
        return UserInfo(USER_PREFIX + token_id, (BOOTSTRAPPERS,))


def is_bootstrapper(user: UserInfo) -> bool:
    return BOOTSTRAPPERS in user.groups
