"""Informers keep a current local copy by list + watch, and relist after "too old"."""

from __future__ import annotations

import asyncio

from controlplane.client.informer import Informer


def configmap(name: str, ns: str, **data: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": dict(data)}


async def until(condition, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.02)


async def test_informer_follows_adds_updates_deletes(client, namespace):
    await client.create(configmap("before", namespace))
    informer = Informer(client, "configmaps", namespace=namespace)
    seen: list[tuple[str, str]] = []
    informer.add_handlers(on_add=lambda o: seen.append(("add", o["metadata"]["name"])),
                          on_update=lambda old, new: seen.append(("update", new["metadata"]["name"])),
                          on_delete=lambda o: seen.append(("delete", o["metadata"]["name"])))
    informer.add_index("by-value", lambda o: [(o.get("data") or {}).get("k", "")])
    task = asyncio.ensure_future(informer.run())
    try:
        await informer.wait_synced()
        assert informer.get(namespace, "before") is not None
        cm = await client.create(configmap("live", namespace, k="1"))
        await until(lambda: informer.get(namespace, "live") is not None)
        cm["data"] = {"k": "2"}
        await client.update(cm)
        await until(lambda: [o["metadata"]["name"] for o in informer.by_index("by-value", "2")] == ["live"])
        await client.delete("configmaps", "live", namespace)
        await until(lambda: informer.get(namespace, "live") is None)
        assert seen == [("add", "before"), ("add", "live"), ("update", "live"), ("delete", "live")]
    finally:
        task.cancel()


async def test_informer_relists_when_its_version_is_too_old(client, namespace):
    informer = Informer(client, "configmaps", namespace=namespace)
    await client.create(configmap("a", namespace))
    task = asyncio.ensure_future(informer.run())
    try:
        await informer.wait_synced()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        # While it was away: a delete and a create, and a version it cannot resume from.
        await client.delete("configmaps", "a", namespace)
        await client.create(configmap("b", namespace))
        informer.resource_version = "1"
        task = asyncio.ensure_future(informer.run())
        await until(lambda: informer.get(namespace, "b") is not None and informer.get(namespace, "a") is None)
    finally:
        task.cancel()
