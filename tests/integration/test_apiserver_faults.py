"""Persistence and faults: a restart keeps every object; etcd going away makes calls
fail fast with UNAVAILABLE, and the server recovers by itself when etcd returns;
Events expire on their own."""

from __future__ import annotations

import asyncio
import time

import pytest

from controlplane.client import Client, NotFound, Unavailable
from procs import ControlPlane, Etcd

pytestmark = pytest.mark.asyncio


def configmap(name: str, ns: str = "default") -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": {"k": "v"}}


async def test_embedded_etcd_keeps_objects_across_a_restart(tmp_path):
    state = tmp_path / "cp"
    cp = ControlPlane(state).start()  # no --etcd-endpoints: embedded etcd in the state dir
    try:
        async with Client(cp.address, credentials=cp.credentials) as client:
            await client.create(configmap("survivor"))
    finally:
        cp.stop()
    assert cp.proc.returncode == 0
    cp = ControlPlane(state, port=cp.port).start()
    try:
        async with Client(cp.address, credentials=cp.credentials) as client:
            got = await client.get("configmaps", "survivor", "default")
            assert got["data"] == {"k": "v"}
    finally:
        cp.stop()


async def test_etcd_down_fails_fast_and_recovers(tmp_path):
    etcd = Etcd(tmp_path / "etcd").start()
    cp = ControlPlane(tmp_path / "cp", etcd_endpoints=etcd.endpoint).start()
    try:
        async with Client(cp.address, credentials=cp.credentials) as client:
            await client.create(configmap("before"))
            etcd.kill()
            started = time.monotonic()
            with pytest.raises(Unavailable, match="etcd"):
                await client.get("configmaps", "before", "default")
            assert time.monotonic() - started < 8, "a call with etcd down should fail fast"
            # etcd comes back on the same ports with the same data.
            etcd.start()
            deadline = time.monotonic() + 30
            while True:
                try:
                    assert (await client.get("configmaps", "before", "default"))["data"] == {"k": "v"}
                    break
                except Unavailable:
                    assert time.monotonic() < deadline, "the server did not recover after etcd returned"
                    await asyncio.sleep(0.2)
            # Watches work again too (the watch cache re-established its etcd watch).
            start = await client.list("configmaps", "default")
            stream = client.watch("configmaps", "default", resource_version=start.resource_version)

            async def first_event() -> str:
                async for event in stream:
                    if event.type != "BOOKMARK":
                        return event.object["metadata"]["name"]
                return ""
            task = asyncio.ensure_future(first_event())
            await asyncio.sleep(0.1)
            await client.create(configmap("after"))
            assert await asyncio.wait_for(task, 15) == "after"
    finally:
        cp.stop()
        etcd.stop()


async def test_events_expire(etcd, tmp_path):
    cp = ControlPlane(tmp_path / "cp", etcd_endpoints=etcd.endpoint,
                      extra_args=["--etcd-prefix", "/events-test", "--event-ttl", "2"]).start()
    try:
        async with Client(cp.address, credentials=cp.credentials) as client:
            await client.create({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1", "namespace": "default"},
                                 "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
                                 "reason": "Testing", "message": "hello", "type": "Normal"})
            assert (await client.get("events", "e1", "default"))["reason"] == "Testing"
            deadline = time.monotonic() + 20
            while True:
                try:
                    await client.get("events", "e1", "default")
                except NotFound:
                    break
                assert time.monotonic() < deadline, "event did not expire"
                await asyncio.sleep(0.5)
    finally:
        cp.stop()


async def test_shutdown_ends_watches_and_request_streams_without_waiting_out_the_grace(etcd, tmp_path):
    """SIGTERM: the server stops taking requests, ends its long-lived streams (a watch ends as a
    watch the server closed: informers watch again), and exits well inside its 2 s grace."""
    import uuid
    cp = ControlPlane(tmp_path / "cp", etcd_endpoints=etcd.endpoint,
                      extra_args=["--etcd-prefix", f"/test-{uuid.uuid4().hex[:8]}", "--no-scheduler",
                                  "--no-controllers"]).start()
    try:
        async with Client(cp.address, credentials=cp.credentials, timeout=10) as client:
            await client.create(configmap("watched"))   # opens the client's request stream
            seen: list[str] = []

            async def watch() -> str:
                async for event in client.watch("configmaps", "default"):
                    seen.append(event.object["metadata"]["name"])
                return "ended"
            watcher = asyncio.create_task(watch())
            while not seen:
                await asyncio.sleep(0.02)
            started = time.monotonic()
            await asyncio.to_thread(cp.stop)
            took = time.monotonic() - started
            assert cp.proc.returncode == 0
            assert took < 1.5, f"shutdown took {took:.2f}s: a stream held it for the grace period"
            assert await asyncio.wait_for(watcher, 5) == "ended"
    finally:
        cp.stop()
