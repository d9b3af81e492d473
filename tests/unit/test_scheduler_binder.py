"""BatchBinder: a lone bind leaves at once; binds decided while requests are in flight
leave together in the next one; each bind gets its own result."""

from __future__ import annotations

import asyncio

import pytest

from controlplane.client import Conflict, FailedPrecondition
from controlplane.scheduler.binder import BatchBinder


class FakeClient:
    def __init__(self) -> None:
        self.requests: list[list[str]] = []
        self.release = asyncio.Event()

    async def bind_many(self, binds):
        self.requests.append([b["name"] for b in binds])
        await self.release.wait()
        out = []
        for b in binds:
            if b["name"] == "full":
                out.append(FailedPrecondition("node n cannot fit pod full: Insufficient cpu"))
            elif b["name"] == "raced":
                out.append(Conflict("raced"))
            else:
                out.append({"metadata": {"name": b["name"]}, "spec": {"nodeName": b["node_name"]}})
        return out


async def settle() -> None:
    """Let every ready task run (a few event-loop turns; nothing here waits on time)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_binds_queue_while_requests_are_in_flight_and_fail_alone():
    client = FakeClient()
    binder = BatchBinder(client, max_in_flight=1)
    first = asyncio.ensure_future(binder.bind("ns", "a", "n1", scheduled_event="m"))
    await settle()
    assert client.requests == [["a"]]        # alone, at once
    rest = [asyncio.ensure_future(binder.bind("ns", name, "n2")) for name in ("b", "full", "c", "raced")]
    await settle()
    assert client.requests == [["a"]]        # waiting for the request in flight
    client.release.set()
    assert (await first)["spec"]["nodeName"] == "n1"
    results = await asyncio.gather(*rest, return_exceptions=True)
    assert client.requests == [["a"], ["b", "full", "c", "raced"]]
    assert results[0]["metadata"]["name"] == "b" and results[2]["metadata"]["name"] == "c"
    assert isinstance(results[1], FailedPrecondition) and isinstance(results[3], Conflict)
    assert binder.requests == 2


async def test_a_failed_request_fails_every_bind_in_it():
    from controlplane.client import Unavailable

    class Down:
        async def bind_many(self, binds):
            raise Unavailable("the server is unreachable")
    binder = BatchBinder(Down())
    with pytest.raises(Unavailable):
        await binder.bind("ns", "a", "n1")
