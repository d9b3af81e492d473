"""An idle watch survives its client's keepalive pings.

A gRPC server ends a connection (GOAWAY "too_many_pings") whose client pings more often
than it allows; the allowed rate is gRPC core's default unless the server says, and that
default has changed between releases. Skiff's servers accept pings down to
protos.keepalive.SERVER_MIN_PING_MS apart: a client pinging just above that rate (every
5.5 s, far more often than Skiff's own clients) keeps its idle stream.
"""
import asyncio


from controlplane.client import Client
from protos import keepalive


async def test_idle_watch_outlives_many_keepalive_pings(api_server, namespace):
    ping_ms = keepalive.SERVER_MIN_PING_MS + 500
    channel = api_server.credentials.channel(api_server.address, options=[
        ("grpc.keepalive_time_ms", ping_ms),
        ("grpc.http2.max_pings_without_data", 0)])   # keep pinging however long the stream is idle
    async with Client(api_server.address, credentials=api_server.credentials, channel=channel) as client:
        listed = await client.list("configmaps", namespace)
        events = client.watch("configmaps", namespace, resource_version=listed.resource_version)
        first = asyncio.ensure_future(anext(events))
        # Three early pings are what ends a connection; stay idle through four.
        done, _ = await asyncio.wait([first], timeout=4 * ping_ms / 1000 + 1)
        assert not done, f"the idle watch ended: {first.exception() or first.result()}"
        await client.create({"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": {"name": "after-idle", "namespace": namespace}})
        event = await asyncio.wait_for(first, 10)
        assert (event.type, event.object["metadata"]["name"]) == ("ADDED", "after-idle")
        await events.aclose()
