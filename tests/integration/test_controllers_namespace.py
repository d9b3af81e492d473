"""Deleting a namespace removes everything in it, then the namespace itself."""

from __future__ import annotations

import uuid

import pytest

from controllers_support import deployment, pod, pods_of, running, until

from controlplane.client import FailedPrecondition, NotFound
from controlplane.controllers.deployment import DeploymentController
from controlplane.controllers.garbagecollector import GarbageCollector
from controlplane.controllers.namespace import NamespaceController
from controlplane.controllers.replicaset import ReplicaSetController


async def test_namespace_deletion_removes_contents_then_the_namespace(client):
    ns = f"t-ns-{uuid.uuid4().hex[:8]}"
    node = f"ns-node-{uuid.uuid4().hex[:6]}"
    await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    await client.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node},
                         "status": {"allocatable": {"cpu": "8", "memory": "16Gi", "pods": "100"}}})
    async with running(client, ReplicaSetController(namespace=ns), DeploymentController(namespace=ns),
                       GarbageCollector(namespace=ns), NamespaceController(only=ns)):
        await client.create(deployment("web", ns, replicas=2))
        await client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": ns},
                             "data": {"a": "1"}})
        await client.create(pod("stranded", ns, {"app": "other"}))
        await client.bind(ns, "stranded", node)
        await client.delete("Node", node)   # its agent is gone for good: nothing will finish the pod

        async def two_web_pods():
            return len([p for p in await pods_of(client, ns, "app=web")]) == 2
        await until(two_web_pods, message="the deployment's pods")

        _, finished = await client.delete("Namespace", ns)
        assert not finished
        with pytest.raises(FailedPrecondition):
            await client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late", "namespace": ns}})

        async def namespace_gone():
            try:
                await client.get("Namespace", ns)
            except NotFound:
                return True
            return False
        await until(namespace_gone, timeout=15, message="the namespace removed")
        for kind in ("Deployment", "ReplicaSet", "Pod", "ConfigMap"):
            assert not (await client.list(kind, ns)).items, kind
