"""Lists larger than gRPC's default 4 MiB message limit, lists served from the watch cache,
and watch events batched into one message when they queue up.

A kind holding more than about 5,000 pods used to fail every List ("Received message larger
than max (15584809 vs. 4194304)" from the etcd client), so no informer could sync and an API
server could not even fill its watch cache. These tests write a little over 5 MiB of
ConfigMaps (12 of 450 KiB: the same bytes as ~6,000 small pods, written in a moment).
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from controlplane.client import Client
from controlplane.client.informer import Informer
from procs import ControlPlane

BIG = 450 * 1024
COUNT = 12   # 12 x 450 KiB = 5.3 MiB, over the 4 MiB default


def big_configmap(i: int, namespace: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"big-{i:02}", "namespace": namespace},
            "data": {"blob": f"{i:02}" + "x" * (BIG - 2)}}


@pytest.fixture
def prefix() -> str:
    return f"/large-{uuid.uuid4().hex[:8]}"


def start_cp(etcd, tmp_path: Path, name: str, prefix: str) -> ControlPlane:
    return ControlPlane(tmp_path / name, etcd_endpoints=etcd.endpoint,
                        extra_args=["--etcd-prefix", prefix, "--no-scheduler", "--no-controllers"]).start()


async def fill(client: Client, namespace: str) -> None:
    await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    for i in range(COUNT):
        await client.create(big_configmap(i, namespace))


async def test_list_over_4_mib_from_the_cache_from_etcd_and_by_an_informer(etcd, tmp_path, prefix):
    first = start_cp(etcd, tmp_path, "cp1", prefix)
    second = None
    try:
        async with Client(first.address, credentials=first.credentials, timeout=30) as client:
            await fill(client, "big")
            listed = await client.list("configmaps", "big")
            assert [o["metadata"]["name"] for o in listed.items] == [f"big-{i:02}" for i in range(COUNT)]
            assert sum(len(o["data"]["blob"]) for o in listed.items) > 5 * 1024 * 1024
            assert int(listed.resource_version) >= max(int(o["metadata"]["resourceVersion"]) for o in listed.items)

            informer = Informer(client, "configmaps", namespace="big")
            task = asyncio.ensure_future(informer.run())
            try:
                await informer.wait_synced(timeout=30)
                assert len(informer.store) == COUNT
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

        # A second API server on the same etcd fills its watch cache with one etcd range
        # read of all of it: that read is over 4 MiB too.
        second = start_cp(etcd, tmp_path, "cp2", prefix)
        async with Client(second.address, credentials=second.credentials, timeout=30) as client:
            listed = await client.list("configmaps")
            assert len([o for o in listed.items if o["metadata"]["namespace"] == "big"]) == COUNT
    finally:
        if second is not None:
            second.stop()
        first.stop()


async def test_the_etcd_client_reads_ranges_over_4_mib(etcd, tmp_path, prefix):
    """The storage layer itself (the path a List takes when the cache cannot serve it)."""
    from controlplane.main import connect_etcd
    from controlplane.storage import Store

    cp = start_cp(etcd, tmp_path, "cp", prefix)
    try:
        async with Client(cp.address, credentials=cp.credentials, timeout=30) as client:
            await fill(client, "big")
    finally:
        cp.stop()
    etcd_client = await connect_etcd([etcd.endpoint])
    try:
        items, revision = await Store(etcd_client, prefix=prefix).list("configmaps", "big")
        assert len(items) == COUNT and revision > 0
    finally:
        await etcd_client.close()


async def test_a_list_from_the_cache_sees_every_write_before_it(client, namespace):
    """Lists are served from the watch cache, yet a List right after a write includes it
    (and right after a delete, lacks it): the cache proves it is current before answering."""
    for i in range(15):
        await client.create({"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": {"name": f"cm-{i}", "namespace": namespace}, "data": {"i": str(i)}})
        names = [o["metadata"]["name"] for o in (await client.list("configmaps", namespace)).items]
        assert f"cm-{i}" in names and len(names) == i + 1
    await client.delete("configmaps", "cm-3", namespace)
    names = {o["metadata"]["name"] for o in (await client.list("configmaps", namespace)).items}
    assert "cm-3" not in names and len(names) == 14
    selected = (await client.list("configmaps", namespace, field_selector="metadata.name=cm-7")).items
    assert [o["data"] for o in selected] == [{"i": "7"}]


async def test_queued_watch_events_arrive_batched_and_in_order(client, namespace, api_server):
    from protos import skiff_pb2 as pb, skiff_pb2_grpc as pb_grpc

    start = (await client.list("configmaps", namespace)).resource_version
    async with api_server.credentials.channel(api_server.address) as channel:
        call = pb_grpc.ApiStub(channel).Watch(pb.WatchRequest(kind="configmaps", namespace=namespace,
                                                              resource_version=start, allow_batching=True))
        # Written before the watcher reads anything: they queue up on the server.
        await asyncio.gather(*(client.create({"apiVersion": "v1", "kind": "ConfigMap",
                                              "metadata": {"name": f"cm-{i:03}", "namespace": namespace}})
                               for i in range(200)))
        events, messages = [], 0
        async for message in call:
            messages += 1
            events += [message, *message.more]
            if len(events) >= 200:
                break
        call.cancel()
    import json
    versions = [int(json.loads(e.object)["metadata"]["resourceVersion"]) for e in events]
    names = {json.loads(e.object)["metadata"]["name"] for e in events}
    assert len(events) == 200 and all(e.type == "ADDED" for e in events)
    # In order; creates committed together (storage/group_commit.py) share a resourceVersion.
    assert versions == sorted(versions) and len(names) == 200
    assert messages < 200
