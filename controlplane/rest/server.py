"""The REST front of the API server: an aiohttp application on the API server's own loop.

It listens on its own port (`skiff-controlplane --rest-listen`, by default the gRPC
port + 1: 6444 next to 6443) over HTTPS with the API server's serving certificate. A
client certificate is asked for and, when given, verified against the cluster CA
(CERT_OPTIONAL: a caller with a bearer token presents none). Every request is then
authenticated as a gRPC call is (controlplane/auth/authn.py: the certificate's CN and
O, else `Authorization: Bearer <token>` — bootstrap and ServiceAccount tokens), and
refused with a 401 `Status` otherwise; a bootstrap token may only join a node, so it is
refused here. kubectl's --as (`Impersonate-User`/`-Group`) then acts as that identity, once
the caller may `impersonate` it. Authorization is per verb, in the shared verbs (apiserver/verbs.py).

Discovery and the OpenAPI documents are open to every authenticated caller (Kubernetes'
`system:discovery` role does the same).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path
from typing import Any, Awaitable, Callable

from aiohttp import web

from api.limits import MAX_OBJECT_BYTES
from controlplane.apiserver.service import impersonated
from controlplane.apiserver.verbs import Verbs
from controlplane.auth.authn import NO_CREDENTIAL, AuthenticationError, Authenticator, bearer_token
from controlplane.auth.identity import INSECURE_ADMIN, UserInfo
from controlplane.rest import discovery, openapi, reviews, status
from controlplane.rest.resources import NotServed, Resources, parse_path, respond

# A request body larger than this is refused (413) before it is read whole.
MAX_BODY = 2 * MAX_OBJECT_BYTES
Permits = Callable[[UserInfo, str], "str | None"]
USER = web.RequestKey("user", UserInfo)   # the authenticated caller, set by the middleware


def tls_context(cert_file: Path, key_file: Path, ca_pem: bytes) -> ssl.SSLContext:
    """The serving certificate; client certificates optional, and verified against the cluster CA when given."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert_file), str(key_file))
    context.load_verify_locations(cadata=ca_pem.decode())
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


class RestApi:
    def __init__(self, verbs: Verbs, *, authenticator: Authenticator | None, version: str,
                 permits: Permits = lambda user, method: None):
        self.verbs = verbs
        self.authenticator = authenticator   # None: --insecure, every caller is an administrator
        self.version = version
        self.permits = permits
        self.resources = Resources(verbs, asyncio.Event())
        self.openapi = openapi.Documents()

    def user_of(self, request: web.Request) -> UserInfo:
        if self.authenticator is None:
            return INSECURE_ADMIN
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if der:
            user = self.authenticator.from_certificate(ssl.DER_cert_to_PEM_cert(der).encode())
            if user is not None:
                return user
        token = bearer_token([("authorization", request.headers["Authorization"])]) \
            if "Authorization" in request.headers else None
        if token is not None:
            return self.authenticator.from_token(token)
        raise AuthenticationError(NO_CREDENTIAL)

    @web.middleware
    async def _authenticate(self, request: web.Request,
                            handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        try:
            user = self.user_of(request)
        except AuthenticationError as exc:
            return respond(status.of_exception(exc), 401)
        try:
            user = self._impersonated(request, user)
        except Exception as exc:
            st = status.of_exception(exc)
            return respond(st, st["code"])
        denied = self.permits(user, f"{request.method} {request.path}")
        if denied:
            return respond(status.status(403, "Forbidden", denied), 403)
        request[USER] = user
        return await handler(request)

    def _impersonated(self, request: web.Request, user: UserInfo) -> UserInfo:
        """kubectl's --as/--as-group (`Impersonate-User`, `Impersonate-Group` headers): the request
        runs as that identity once the caller may `impersonate` those users and groups, as the
        gRPC AccessReview checks it."""
        name = request.headers.get("Impersonate-User", "")
        groups = request.headers.getall("Impersonate-Group", [])
        if not name and not groups:
            return user
        if name:
            self.verbs.access.check_resource(user, "impersonate", "users", "", name=name)
        for group in groups:
            self.verbs.access.check_resource(user, "impersonate", "groups", "", name=group)
        return impersonated(name or user.name, list(groups))

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._authenticate], client_max_size=MAX_BODY)
        app.router.add_route("*", "/{path:.*}", self.route)
        return app

    async def route(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        user = request[USER]
        if request.method == "GET" and parts in (["api"], ["apis"]) \
                and discovery.wants_aggregated(request.headers.get("Accept", "")):
            body = json.dumps(discovery.aggregated(core=parts == ["api"]), separators=(",", ":")).encode()
            return web.Response(body=body, headers={"Content-Type": discovery.AGGREGATED})
        if request.method == "GET":
            document = self._document(parts)
            if document is not None:
                return respond(document)
        if request.method == "POST" and request.path in (reviews.ACCESS_REVIEW_PATH, reviews.SELF_REVIEW_PATH):
            return await self._review(request, user)
        try:
            if parts[:2] == ["api", "v1"] and len(parts) > 2:
                target = parse_path(["", "v1", *parts[2:]])
            elif parts[:1] == ["apis"] and len(parts) > 3:
                target = parse_path(parts[1:])
            else:
                raise NotServed()
        except NotServed:
            return respond(status.not_served(request.path), 404)
        return await self.resources.serve(request, user, target)

    async def _review(self, request: web.Request, user: UserInfo) -> web.Response:
        """`kubectl auth can-i` and `kubectl auth whoami` (reviews.py)."""
        if request.path == reviews.SELF_REVIEW_PATH:
            return respond(reviews.self_review(user), 201)
        try:
            spec = reviews.decode_spec(await request.read(), request.content_type)
            return respond(reviews.access_review(self.verbs.access, user, spec), 201)
        except Exception as exc:
            st = status.of_exception(exc)
            return respond(st, st["code"])

    def _document(self, parts: list[str]) -> Any:
        """Discovery, version, health and OpenAPI documents; None for any other path."""
        if parts == ["version"]:
            return discovery.version(self.version)
        if parts in (["healthz"], ["livez"], ["readyz"]):
            return "ok"
        if parts == ["api"]:
            return discovery.core_versions()
        if parts == ["apis"]:
            return discovery.groups()
        if parts == ["api", "v1"]:
            return discovery.resource_list("", "v1")
        if parts[:1] == ["apis"] and len(parts) == 3:
            return discovery.resource_list(parts[1], parts[2])
        if parts[:2] == ["openapi", "v3"]:
            return self.openapi.index() if len(parts) == 2 else self.openapi.group_version("/".join(parts[2:]))
        return None

    def stop(self) -> None:
        """End the watches (as the gRPC servicer's stop())."""
        self.resources.stop()


async def start(api: RestApi, addresses: list[str], context: ssl.SSLContext | None) -> web.AppRunner:
    """Serve `api` on each host:port; the runner's cleanup() stops it."""
    # handler_cancellation: a client that goes away cancels its handler, so a watch whose kubectl
    # was killed releases its subscription at once, not at the next event it fails to write.
    runner = web.AppRunner(api.app(), access_log=None, handle_signals=False, shutdown_timeout=2.0,
                           handler_cancellation=True)
    await runner.setup()
    for address in addresses:
        host, _, port = address.rpartition(":")
        site = web.TCPSite(runner, host.strip("[]") or None, int(port), ssl_context=context)
        await site.start()
    return runner
