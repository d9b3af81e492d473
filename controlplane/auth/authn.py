"""Authentication: who is calling, from the peer's client certificate or a bearer token.

`Authenticator(context)` returns the caller's `UserInfo` (identity.py) or raises
`AuthenticationError` with the reason, as Kubernetes' union authenticator does:

1. a client certificate signed by the cluster CA: CN is the user name, the O values its
   groups. TLS has already verified the chain and dates; the signature is checked again
   against the CA's key because the server also trusts the anonymous certificate's root
   (controlplane/pki/anonymous.py). The result is cached per certificate.
2. otherwise a bearer token (`authorization: Bearer <token>` metadata), offered to each
   token authenticator in turn (`TokenAuthenticator`: bootstrap tokens here; ServiceAccount
   tokens are another). One returns a UserInfo, None when the token is not its kind, or
   raises AuthenticationError with a reason (expired, unknown).

Every authenticated user is also in `system:authenticated`. `guard()` makes a servicer
authenticate every call before its method runs, once per call (a request stream's
requests share the stream's call).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable

import grpc
from cryptography import x509

from controlplane.auth.identity import AUTHENTICATED, UserInfo
from controlplane.pki import certs

TokenAuthenticator = Callable[[str], "UserInfo | None"]
NO_CREDENTIAL = ("no credential: present a client certificate signed by the cluster CA or a bearer token "
                 "(see `ctl config view`, or the control plane's admin.conf)")
CACHE_SIZE = 4096


class AuthenticationError(Exception):
    """The caller cannot be identified; the message says why."""


def bearer_token(metadata: Iterable[tuple[str, Any]]) -> str | None:
    for key, value in metadata:
        if key == "authorization":
            value = value.decode() if isinstance(value, bytes) else value
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            raise AuthenticationError("the authorization metadata must be 'Bearer <token>'")
    return None


class Authenticator:
    def __init__(self, ca_cert: x509.Certificate, token_authenticators: list[TokenAuthenticator] | None = None):
        self.ca_cert = ca_cert
        self.token_authenticators: list[TokenAuthenticator] = list(token_authenticators or [])
        self._by_cert: dict[bytes, UserInfo | None] = {}
        # The identity of each call in progress, set by `guard` for the call's duration, so the
        # verbs' own `user_of(context)` (one per request on a request stream) costs a dict lookup.
        self.calls: dict[Any, UserInfo] = {}

    def add_token_authenticator(self, authenticator: TokenAuthenticator) -> None:
        self.token_authenticators.append(authenticator)

    def __call__(self, context: Any) -> UserInfo:
        known = self.calls.get(context)
        if known is not None:
            return known
        pem = _peer_cert(context)
        if pem is not None:
            user = self.from_certificate(pem)
            if user is not None:
                return user
        token = bearer_token(context.invocation_metadata() or ())
        if token is not None:
            return self.from_token(token)
        raise AuthenticationError(NO_CREDENTIAL)

    def from_certificate(self, pem: bytes) -> UserInfo | None:
        """The identity in a client certificate (PEM, as gRPC gives it) the cluster CA signed; None for any other."""
        try:
            return self._by_cert[pem]
        except KeyError:
            return self._identify(pem, certs.load_cert)

    def from_der(self, der: bytes) -> UserInfo | None:
        """As from_certificate, for a certificate in DER (as Python's ssl gives it: the REST API)."""
        try:
            return self._by_cert[der]
        except KeyError:
            return self._identify(der, x509.load_der_x509_certificate)

    def _identify(self, encoded: bytes, load: Callable[[bytes], x509.Certificate]) -> UserInfo | None:
        """Parse and check a certificate, and remember the outcome under its exact bytes (PEM and
        DER never collide: one starts with '-----', the other with a DER SEQUENCE)."""
        user = None
        try:
            cert = load(encoded)
        except ValueError:
            cert = None
        if cert is not None and certs.issued_by(cert, self.ca_cert):
            who = certs.identity_of(cert)
            if who.name:
                user = UserInfo(who.name, _with_authenticated(who.groups))
        if len(self._by_cert) >= CACHE_SIZE:
            self._by_cert.clear()
        self._by_cert[encoded] = user
        return user

    def from_token(self, token: str) -> UserInfo:
        for authenticate in self.token_authenticators:
            user = authenticate(token)
            if user is not None:
                return UserInfo(user.name, _with_authenticated(user.groups), user.uid)
        raise AuthenticationError("the bearer token is not valid (unknown, malformed or expired)")


def _with_authenticated(groups: tuple[str, ...]) -> tuple[str, ...]:
    return groups if AUTHENTICATED in groups else (*groups, AUTHENTICATED)


def _peer_cert(context: Any) -> bytes | None:
    certificates = (context.auth_context() or {}).get("x509_pem_cert")
    return certificates[0] if certificates else None


# A check after authentication: the reason a user may not call a method at all, or None.
# (Bootstrap tokens may only join a node; authorization proper is RBAC's.)
Permits = Callable[[UserInfo, str], "str | None"]


def guard(servicer: Any, authenticate: Callable[[Any], UserInfo], *,
          permits: Permits = lambda user, method: None) -> Any:
    """`servicer` with every RPC method authenticating its caller first (register this in its place)."""
    return _Guarded(servicer, authenticate, permits)


class _Guarded:
    def __init__(self, servicer: Any, authenticate: Callable[[Any], UserInfo], permits: Permits):
        self._servicer = servicer
        self._authenticate = authenticate
        self._permits = permits

    async def _check(self, context: Any, method: str) -> None:
        try:
            user = self._authenticate(context)
        except AuthenticationError as exc:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"Unauthorized: {exc}")
            return
        denied = self._permits(user, method)
        if denied:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, denied)
        calls = getattr(self._authenticate, "calls", None)
        if calls is not None:
            calls[context] = user

    def _done(self, context: Any) -> None:
        calls = getattr(self._authenticate, "calls", None)
        if calls is not None:
            calls.pop(context, None)

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self._servicer, name)
        if not name[:1].isupper() or not callable(fn):
            return fn
        check, done = self._check, self._done
        if inspect.isasyncgenfunction(fn):
            async def streamed(request: Any, context: Any) -> Any:
                try:
                    await check(context, name)
                    async for item in fn(request, context):
                        yield item
                finally:
                    done(context)
            return streamed

        async def unary(request: Any, context: Any) -> Any:
            try:
                await check(context, name)
                return await fn(request, context)
            finally:
                done(context)
        return unary
