"""Fixtures shared by the integration tests that need a control plane of their own.

`api`: a private `skiff-controlplane` (API only, no controllers) on the session's etcd, one per
test module, for tests that run controllers or hollow nodes against it and must not see the
objects of other modules; `c`: an admin client of it. A module may still define its own `api`
(pytest takes the module's definition first) when it needs other flags.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Iterator

import pytest

from controlplane.client import Client
from hollow_harness import private_control_plane


@pytest.fixture(scope="module")
def api(etcd: Any, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Any]:
    cp = private_control_plane(tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]), etcd.endpoint)
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture
async def c(api: Any) -> AsyncIterator[Client]:
    async with Client(api.address, credentials=api.credentials, timeout=10) as client:
        yield client
