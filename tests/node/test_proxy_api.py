"""The service proxy fed through the API: a real API server (tests/conftest.py), the agent's
informers on services and endpointslices, a ServiceProxy in a netlab node namespace, and a
client pod reaching a Service whose EndpointSlice the test writes (a Service without selector,
whose slices are the user's own, as Kubernetes allows). End to end: object written -> rules
in nftables -> a connection answered; and the Service deleted -> refused."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from agent.proxy import ServiceProxy
from api.errors import ValidationFailed
from api.registry import lookup
from controlplane.client import Client
from controlplane.client.informer import Informer

import netlab
from netlab import Lab, call, eventually

ECHO = 7000


def _has_endpoint_slices() -> bool:
    try:
        lookup("endpointslices")
    except ValidationFailed:
        return False
    return True


# Module level, so that it is decided before the session's API server is started.
pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not _has_endpoint_slices(), reason="the API has no EndpointSlice kind yet "
                                 "(it comes with the Services control-plane work)")]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with netlab.lab_for_test(tmp_path, tag="pa") as the_lab:
        yield the_lab


async def test_service_and_slice_written_through_the_api_are_served(lab: Lab, client: Client) -> None:
    node = lab.add_node("a", number=1)
    node.call(node.net.setup())
    node.netns.ip("route", "add", "default", "via", "198.18.0.1")
    web, pod = lab.add_pod(node, "web"), lab.add_pod(node, "client")
    lab.spawn(web.netns, "echo", "--port", str(ECHO), "--tag", "web")
    # The informers run on this test's loop (the API server is on this machine's loopback); the
    # proxy's nft thread is started from node a's loop, so its rules go to node a's namespace.
    proxy = ServiceProxy(node_name="a", cluster_cidr=netlab.CLUSTER_CIDR, check_interval=1)
    node.call(proxy.nft.call(lambda: None))
    services, slices = Informer(client, "services"), Informer(client, "endpointslices")
    proxy.watch(services, slices)

    async def ready() -> None:
        await services.wait_synced(timeout=None)
        await slices.wait_synced(timeout=None)
    tasks = [asyncio.create_task(services.run()), asyncio.create_task(slices.run()),
             asyncio.create_task(proxy.run(ready=ready))]
    namespace = f"px-{uuid.uuid4().hex[:8]}"
    try:
        await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        written = time.monotonic()
        svc = await client.create({"apiVersion": "v1", "kind": "Service",
                                   "metadata": {"name": "web", "namespace": namespace},
                                   "spec": {"ports": [{"name": "http", "port": 80, "targetPort": ECHO}]}})
        cluster_ip = svc["spec"]["clusterIP"]
        await client.create({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": "web-1", "namespace": namespace, "labels": {"kubernetes.io/service-name": "web"}},
            "endpoints": [{"addresses": [web.ip], "nodeName": "a", "conditions": {"ready": True}}],
            "ports": [{"name": "http", "port": ECHO, "protocol": "TCP"}]})
        reply = await asyncio.to_thread(eventually, lambda: call(pod.netns, cluster_ip, 80, timeout=1),
                                        timeout=10, what=f"an answer through {cluster_ip}")
        assert reply.startswith("web:")
        assert time.monotonic() - written < 5
        await client.delete("services", "web", namespace=namespace)
        await asyncio.to_thread(eventually, lambda: _refused(pod.netns, cluster_ip), timeout=10,
                                what="the deleted Service to go")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await proxy.delete_table()
        finally:
            await proxy.close()


def _refused(ns: netlab.Netns, host: str) -> bool:
    try:
        call(ns, host, 80, timeout=0.5)
    except OSError:
        return True
    return False
