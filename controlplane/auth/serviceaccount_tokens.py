"""ServiceAccount tokens: JWTs the control plane signs, bound to a pod, and their authenticator.

The signing key is an ECDSA P-256 key the control plane creates on first start in its
state directory (`sa.key`, mode 0600; every API server sharing the state directory, or
given the same file, issues and accepts the same tokens). Tokens are ES256 JWTs shaped
like Kubernetes' bound ServiceAccount tokens:

    iss  "skiff"            aud  ["skiff"] or the audiences asked for
    sub  system:serviceaccount:<ns>:<sa>
    iat, nbf, exp           1 hour by default (10 minutes at least, 48 hours at most)
    kubernetes.io: {namespace, serviceaccount: {name, uid}, pod: {name, uid}}

`ServiceAccountTokenAuthenticator` is the `Callable[[str], UserInfo | None]` the API server's
authenticator list takes for bearer tokens: a token is accepted while its signature,
issuer, audience and expiry hold *and* its pod and ServiceAccount still exist with the
uids it names (so deleting the pod revokes the token, as in Kubernetes). The identity is
`system:serviceaccount:<ns>:<sa>` in groups `system:serviceaccounts`,
`system:serviceaccounts:<ns>` and `system:authenticated`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Mapping

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from controlplane.auth.identity import AUTHENTICATED, SERVICE_ACCOUNT_PREFIX, SERVICE_ACCOUNTS, UserInfo
from controlplane.client.privatefile import write_private

ISSUER = "skiff"
DEFAULT_AUDIENCE = "skiff"
ALGORITHM = "ES256"
DEFAULT_SECONDS = 3600
MIN_SECONDS, MAX_SECONDS = 600, 48 * 3600
KEY_FILE = "sa.key"


def load_or_create_key(state_dir: Path) -> ec.EllipticCurvePrivateKey:
    """The signing key in <state_dir>/sa.key, created (0600, atomically) if absent."""
    path = state_dir / KEY_FILE
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{path}: not an EC private key")
        return key
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    write_private(path, pem)
    return key


def service_account_user(namespace: str, name: str, uid: str = "") -> UserInfo:
    return UserInfo(f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}",
                    (SERVICE_ACCOUNTS, f"{SERVICE_ACCOUNTS}:{namespace}", AUTHENTICATED), uid)


class TokenIssuer:
    def __init__(self, key: ec.EllipticCurvePrivateKey, *, clock: Callable[[], float] = time.time):
        self.key = key
        self.public = key.public_key()
        self.clock = clock

    def issue(self, *, service_account: Mapping[str, Any], pod: Mapping[str, Any],
              audiences: list[str] | None = None, seconds: int = 0) -> tuple[str, int]:
        """A token for the ServiceAccount, bound to the pod; (token, expiry as unix seconds)."""
        seconds = min(max(seconds or DEFAULT_SECONDS, MIN_SECONDS), MAX_SECONDS)
        now = int(self.clock())
        sa_meta, pod_meta = service_account.get("metadata") or {}, pod.get("metadata") or {}
        ns = sa_meta.get("namespace") or "default"
        claims = {
            "iss": ISSUER, "aud": list(audiences or [DEFAULT_AUDIENCE]),
            "sub": f"{SERVICE_ACCOUNT_PREFIX}{ns}:{sa_meta.get('name')}",
            "iat": now, "nbf": now, "exp": now + seconds,
            "kubernetes.io": {"namespace": ns,
                              "serviceaccount": {"name": sa_meta.get("name"), "uid": sa_meta.get("uid")},
                              "pod": {"name": pod_meta.get("name"), "uid": pod_meta.get("uid")}},
        }
        return jwt.encode(claims, self.key, algorithm=ALGORITHM), now + seconds


class ServiceAccountTokenAuthenticator:
    """Bearer token → the ServiceAccount's UserInfo, or None when the token is not one of ours
    or no longer valid."""

    def __init__(self, issuer: TokenIssuer, *, lookup: Callable[[str, str, str], Mapping[str, Any] | None],
                 audiences: tuple[str, ...] = (DEFAULT_AUDIENCE,)):
        """lookup(plural, namespace, name): the stored object from the watch caches, or None."""
        self.issuer = issuer
        self.lookup = lookup
        self.audiences = audiences

    def __call__(self, token: str) -> UserInfo | None:
        try:
            claims = jwt.decode(token, self.issuer.public, algorithms=[ALGORITHM], issuer=ISSUER,
                                audience=list(self.audiences), options={"require": ["exp", "iat", "sub", "aud"]},
                                leeway=5)
        except jwt.PyJWTError:
            return None
        bound = claims.get("kubernetes.io") or {}
        ns = bound.get("namespace") or ""
        sa, pod = bound.get("serviceaccount") or {}, bound.get("pod") or {}
        if claims.get("sub") != f"{SERVICE_ACCOUNT_PREFIX}{ns}:{sa.get('name')}":
            return None
        stored_sa = self.lookup("serviceaccounts", ns, sa.get("name") or "")
        if stored_sa is None or (stored_sa.get("metadata") or {}).get("uid") != sa.get("uid"):
            return None
        if pod:
            stored_pod = self.lookup("pods", ns, pod.get("name") or "")
            if stored_pod is None or (stored_pod.get("metadata") or {}).get("uid") != pod.get("uid"):
                return None
        return service_account_user(ns, sa.get("name") or "", sa.get("uid") or "")
