"""Shared fixtures: a real etcd, a real API server process, a client, a fresh namespace.

The session's etcd and API server are shared by integration tests; each test
gets its own namespace, so tests do not see each other's objects. Tests that
restart or break things start their own (see tests/procs.py).
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, AsyncIterator, Iterator

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from procs import ControlPlane, Etcd  # noqa: E402

if TYPE_CHECKING:   # imported where used: collecting unit tests needs neither
    from controlplane.client import Client
    from registry_fixture import LocalRegistry


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="needs root: real namespaces, cgroups and network namespaces")
        for item in items:
            if "root" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Etcd]:
    server = Etcd(tmp_path_factory.mktemp("etcd") / "data").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def api_server(etcd: Etcd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    cp = ControlPlane(tmp_path_factory.mktemp("controlplane"), etcd_endpoints=etcd.endpoint,
                      extra_args=["--etcd-prefix", f"/test-{uuid.uuid4().hex[:8]}",
                                  # Tests of the API itself must not have a scheduler binding their pods;
                                  # tests of the scheduler and controllers run their own.
                                  "--no-scheduler", "--no-controllers"]).start()
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture
async def client(api_server: ControlPlane) -> AsyncIterator["Client"]:
    from controlplane.client import Client
    async with Client(api_server.address, credentials=api_server.credentials, timeout=10) as c:
        yield c


@pytest.fixture
async def namespace(client: "Client") -> AsyncIterator[str]:
    """A fresh namespace for one test (its objects are left for etcd's temp dir to take)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator["LocalRegistry"]:
    """A real OCI registry (Debian's docker-registry) on 127.0.0.1 for the session; see registry_fixture.py."""
    from registry_fixture import LocalRegistry, registry_available

    reason = registry_available()
    if reason:
        pytest.skip(reason)
    server = LocalRegistry(tmp_path_factory.mktemp("registry")).start()
    try:
        yield server
    finally:
        server.stop()


# ---- ctl: the real command line client, run as a process against the session's API server ----

@pytest.fixture
def ctl(api_server: ControlPlane, tmp_path: Path):
    """Run `ctl ARGS...` (python -m cli.main) with --server of the session API server.

    Returns the CompletedProcess (text stdout/stderr). The client config is a copy of the
    API server's admin.conf (TLS, the administrator's certificate) in tmp_path, so the
    user's ~/.skiff/config never leaks in.
    """
    import shutil
    import subprocess

    shutil.copy(api_server.admin_config, tmp_path / "ctl-config")
    env = {**os.environ, "PYTHONPATH": str(REPO), "SKIFF_CONFIG": str(tmp_path / "ctl-config")}

    def run(*args: str, input: str | None = None, server: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "cli.main", *args]
        if server:
            argv += ["--server", api_server.address]
        return subprocess.run(argv, input=input, capture_output=True, text=True, cwd=REPO, env=env,
                              timeout=timeout)
    return run
