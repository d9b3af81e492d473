"""The ServiceAccounts controller keeps a `default` ServiceAccount in every namespace."""

from __future__ import annotations

import uuid

from controllers_support import running, until
from controlplane.client import NotFound
from controlplane.controllers.serviceaccount import ServiceAccountsController
from controlplane.controllers.settings import ControllerSettings


async def test_default_service_account_per_namespace(client) -> None:
    name = f"t-{uuid.uuid4().hex[:10]}"

    async def default_account() -> dict | None:
        try:
            return await client.get("serviceaccounts", "default", name)
        except NotFound:
            return None

    async with running(client, ServiceAccountsController(ControllerSettings())):
        await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        first = await until(default_account, message="no default ServiceAccount in a new namespace")
        await client.delete("serviceaccounts", "default", name)
        again = await until(lambda: _other_than(default_account, first["metadata"]["uid"]),
                            message="the deleted default ServiceAccount was not created again")
        assert again["metadata"]["name"] == "default"


async def _other_than(get, uid: str) -> dict | None:
    obj = await get()
    return obj if obj is not None and obj["metadata"]["uid"] != uid else None
