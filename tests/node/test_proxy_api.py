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
from typing import Any, Iterator

import pytest

from agent.proxy import ServiceProxy
from api.errors import ValidationFailed
from api.registry import lookup
from controlplane.client import Client
from controlplane.client.informer import Informer

import netlab
from netlab import Lab, call, eventually

pytestmark = pytest.mark.root
ECHO = 7000


def _skip_reason() -> str | None:
    try:
        lookup("endpointslices")
    except ValidationFailed:
        return "the API has no EndpointSlice kind yet (it comes with the Services control-plane work)"
    return netlab.skip_reason()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    the_lab = Lab(tmp_path, tag="pa")
    try:
        yield the_lab
    finally:
        the_lab.close()
        assert the_lab.leftovers() == []


class FedProxy:
    """Client, two informers and the proxy, all on node a's event loop (in its namespace)."""

    def __init__(self, server: str, node: netlab.Node) -> None:
        self.node = node
        self.server = server
        self.tasks: list[Any] = []
        self.client: Client | None = None
        self.proxy = ServiceProxy(node_name=node.name, cluster_cidr=netlab.CLUSTER_CIDR, check_interval=1)

    async def start(self) -> None:
        self.client = Client(self.server, timeout=10)
        services, slices = Informer(self.client, "services"), Informer(self.client, "endpointslices")
        self.proxy.watch(services, slices)

        async def ready() -> None:
            await services.wait_synced(timeout=None)
            await slices.wait_synced(timeout=None)
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(services.run()), loop.create_task(slices.run()),
                      loop.create_task(self.proxy.run(ready=ready))]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        try:
            await self.proxy.delete_table()
        finally:
            await self.proxy.close()
            if self.client is not None:
                await self.client.close()


def test_service_and_slice_written_through_the_api_are_served(lab: Lab, api_server: Any) -> None:
    node = lab.add_node("a", number=1)
    node.call(node.net.setup())
    node.netns.ip("route", "add", "default", "via", "198.18.0.1")
    web, client = lab.add_pod(node, "web"), lab.add_pod(node, "client")
    lab.spawn(web.netns, "echo", "--port", str(ECHO), "--tag", "web")
    fed = FedProxy(api_server.address, node)
    node.call(fed.start())
    namespace = f"px-{uuid.uuid4().hex[:8]}"

    async def write() -> str:
        assert fed.client is not None
        await fed.client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        svc = await fed.client.create({"apiVersion": "v1", "kind": "Service",
                                       "metadata": {"name": "web", "namespace": namespace},
                                       "spec": {"ports": [{"name": "http", "port": 80, "targetPort": ECHO}]}})
        await fed.client.create({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": "web-1", "namespace": namespace, "labels": {"kubernetes.io/service-name": "web"}},
            "endpoints": [{"addresses": [web.ip], "nodeName": "a", "conditions": {"ready": True}}],
            "ports": [{"name": "http", "port": ECHO, "protocol": "TCP"}]})
        return svc["spec"]["clusterIP"]

    async def delete() -> None:
        assert fed.client is not None
        await fed.client.delete("services", "web", namespace=namespace)
    try:
        written = time.monotonic()
        cluster_ip = node.call(write())
        reply = eventually(lambda: call(client.netns, cluster_ip, 80, timeout=1), timeout=10,
                           what=f"an answer through {cluster_ip}")
        assert reply.startswith("web:")
        assert time.monotonic() - written < 5
        node.call(delete())
        eventually(lambda: _refused(client.netns, cluster_ip), timeout=10, what="the deleted Service to go")
    finally:
        node.call(fed.stop())


def _refused(ns: netlab.Netns, host: str) -> bool:
    try:
        call(ns, host, 80, timeout=0.5)
    except OSError:
        return True
    return False
