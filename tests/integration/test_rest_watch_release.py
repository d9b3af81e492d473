"""A REST watch whose client goes away releases its subscription at once (controlplane/rest).

In-process: the real Handlers and watch caches on the session's etcd, the REST app on a
free port (plain HTTP with the insecure identity: the transport is not what is tested), an
aiohttp client that opens `?watch=1` and then drops the connection without a word.
"""

from __future__ import annotations

import asyncio
import uuid

import aiohttp

from api.registry import lookup
from controlplane.apiserver.handlers import Handlers
from controlplane.apiserver.verbs import Verbs
from controlplane.auth.access import AccessControl
from controlplane.main import connect_etcd
from controlplane.rest import server as rest_server
from controlplane.storage import Store
from procs import free_port


async def eventually(condition, what: str, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_a_dropped_watch_releases_its_subscription(etcd) -> None:
    client = await connect_etcd([etcd.endpoint])
    handlers = Handlers(Store(client, prefix=f"/rest-watch-{uuid.uuid4().hex[:8]}"))
    api = rest_server.RestApi(Verbs(handlers, AccessControl(handlers)), authenticator=None, version="test")
    port = free_port()
    runner = await rest_server.start(api, [f"127.0.0.1:{port}"], None)
    try:
        await handlers.start_caches()
        pods = handlers.cache(lookup("pods"))
        before = pods.watcher_count
        async with aiohttp.ClientSession() as session:
            response = await session.get(f"http://127.0.0.1:{port}/api/v1/namespaces/default/pods?watch=1")
            assert response.status == 200
            await eventually(lambda: pods.watcher_count == before + 1, "the watch to subscribe")
            response.close()   # the connection goes, nothing more is said
            await eventually(lambda: pods.watcher_count == before, "the dropped watch to be released")
    finally:
        await runner.cleanup()
        for cache in handlers.caches.values():
            await cache.stop()
        await client.close()
