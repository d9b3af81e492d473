"""An API server in the test's process whose callers can be anyone, for authorization tests.

STAND-IN: until mutual TLS (the "tls" work of issue 11) is on main, nothing establishes
who a caller is. These tests therefore give the real ApiService a stand-in authenticator
that believes the `x-test-user` / `x-test-groups` metadata a test client sends — exactly
the seam (`ApiService(authenticate=...)`) the TLS Authenticator fills — and that checks a
`authorization: Bearer <token>` header with the real ServiceAccount token authenticator.
Everything behind the seam is real: etcd, the Handlers, watch caches, the AccessControl (Node
authorizer, RBAC, admission), gRPC. Once TLS lands, these tests switch to client
certificates and this stand-in goes.
"""

from __future__ import annotations

import uuid
from typing import Any, AsyncIterator

import grpc

from controlplane.apiserver.handlers import Handlers
from controlplane.apiserver.service import ApiService
from controlplane.auth.access import AccessControl
from controlplane.auth.identity import AUTHENTICATED, UserInfo
from controlplane.client import Client
from controlplane.main import connect_etcd, ensure_default_policy, ensure_namespaces
from controlplane.storage import Store
from procs import free_port
from protos import skiff_pb2_grpc as pb_grpc

USER_HEADER, GROUPS_HEADER = "x-test-user", "x-test-groups"


class Unauthenticated(Exception):
    pass


def stand_in_authenticator(access: AccessControl):
    def authenticate(context: Any) -> UserInfo:
        metadata = dict(context.invocation_metadata() or ())
        bearer = metadata.get("authorization", "")
        if bearer.startswith("Bearer "):
            user = access.tokens(bearer[len("Bearer "):])
            if user is None:
                raise Unauthenticated("invalid bearer token")
            return user
        name = metadata.get(USER_HEADER)
        if not name:
            raise Unauthenticated("no user")
        groups = tuple(g for g in metadata.get(GROUPS_HEADER, "").split(",") if g)
        return UserInfo(name, groups + (AUTHENTICATED,))
    return authenticate


class _Metadata:
    def __init__(self, pairs: list[tuple[str, str]]):
        self.pairs = pairs

    def _details(self, details: Any) -> Any:
        return details._replace(metadata=grpc.aio.Metadata(*(details.metadata or ()), *self.pairs))


# grpc.aio files each interceptor under the first call type it is an instance of: one class per type.
class _UnaryUnary(_Metadata, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, details, request):
        return await continuation(self._details(details), request)


class _UnaryStream(_Metadata, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation, details, request):
        return await continuation(self._details(details), request)


class _StreamUnary(_Metadata, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation, details, request_iterator):
        return await continuation(self._details(details), request_iterator)


class _StreamStream(_Metadata, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation, details, request_iterator):
        return await continuation(self._details(details), request_iterator)


def metadata_interceptors(pairs: list[tuple[str, str]]) -> list[Any]:
    return [cls(pairs) for cls in (_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream)]


class InProcessApiServer:
    def __init__(self, etcd_endpoint: str):
        self.etcd_endpoint = etcd_endpoint
        self.address = f"127.0.0.1:{free_port()}"

    async def __aenter__(self) -> "InProcessApiServer":
        self.etcd = await connect_etcd([self.etcd_endpoint])
        self.handlers = Handlers(Store(self.etcd, prefix=f"/authz-{uuid.uuid4().hex[:8]}"))
        self.access = AccessControl(self.handlers)
        self.service = ApiService(self.handlers, authenticate=stand_in_authenticator(self.access), access=self.access)
        self.server = grpc.aio.server()
        pb_grpc.add_ApiServicer_to_server(self.service, self.server)
        self.server.add_insecure_port(self.address)
        await self.handlers.start_caches()
        await ensure_namespaces(self.handlers)
        await ensure_default_policy(self.handlers)
        await self.server.start()
        self.clients: list[Client] = []
        return self

    async def __aexit__(self, *exc: object) -> None:
        for client in self.clients:
            await client.close()
        self.service.stop()
        await self.server.stop(grace=1)
        for cache in self.handlers.caches.values():
            await cache.stop()
        await self.etcd.close()

    def client_as(self, user: str = "", groups: tuple[str, ...] = (), *, token: str = "") -> Client:
        pairs = [("authorization", f"Bearer {token}")] if token else [(USER_HEADER, user),
                                                                     (GROUPS_HEADER, ",".join(groups))]
        channel = grpc.aio.insecure_channel(self.address, interceptors=metadata_interceptors(pairs))
        client = Client(self.address, timeout=10, channel=channel)
        self.clients.append(client)
        return client

    def admin(self) -> Client:
        return self.client_as("test-admin", ("system:masters",))

    async def wait_cached(self, plural: str, namespace: str, name: str, timeout: float = 5.0) -> None:
        """Until the API server's watch cache has the object (authorization reads the caches)."""
        import asyncio
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.access.cached(plural, namespace, name) is None:
            if loop.time() > deadline:
                raise TimeoutError(f"{plural} {namespace}/{name} not in the watch cache after {timeout}s")
            await asyncio.sleep(0.01)


async def serve(etcd_endpoint: str) -> AsyncIterator[InProcessApiServer]:
    async with InProcessApiServer(etcd_endpoint) as server:
        yield server
