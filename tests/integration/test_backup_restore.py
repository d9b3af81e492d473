"""`skiff-controlplane backup FILE` / `restore FILE --state-dir DIR`: a snapshot of a running
cluster restored into a fresh control plane has every workload, as it was."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from controlplane.client import Client
from procs import REPO, ControlPlane

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

WORKLOADS = [
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
     "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
              "template": {"metadata": {"labels": {"app": "web"}},
                           "spec": {"containers": [{"name": "c", "image": "skiff.local/busybox:1.35"}]}}}},
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "default"},
     "data": {"mode": "production"}},
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}},
    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token", "namespace": "team-a"},
     "data": {"t": "c2VjcmV0"}},
]


def skiff_controlplane(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "controlplane.main", *args], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)


async def snapshot_of(client: Client) -> dict[tuple[str, str, str], str]:
    """(kind, namespace, name) -> uid of every workload object."""
    out = {}
    for kind in ("deployments", "replicasets", "pods", "configmaps", "secrets", "namespaces"):
        for obj in (await client.list(kind)).items:
            meta = obj["metadata"]
            out[(kind, meta.get("namespace", ""), meta["name"])] = meta["uid"]
    return out


async def test_backup_then_restore_into_a_fresh_control_plane(tmp_path):
    original = ControlPlane(tmp_path / "cp").start()
    try:
        async with Client(original.address, credentials=original.credentials) as client:
            for obj in WORKLOADS:
                await client.apply(obj)

            deadline = asyncio.get_running_loop().time() + 20
            while len((await client.list("pods", "default")).items) < 3:
                assert asyncio.get_running_loop().time() < deadline, "the Deployment's 3 pods were not created"
                await asyncio.sleep(0.1)
            before = await snapshot_of(client)

        backup = tmp_path / "cluster.db"
        r = skiff_controlplane("backup", str(backup), "--state-dir", str(tmp_path / "cp"))
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("backed up etcd at revision ") and str(backup) in r.stdout
        assert backup.stat().st_size > 0 and not backup.with_name("cluster.db.partial").exists()
    finally:
        original.stop()

    r = skiff_controlplane("restore", str(backup), "--state-dir", str(tmp_path / "restored"))
    assert r.returncode == 0, r.stderr
    r = skiff_controlplane("restore", str(backup), "--state-dir", str(tmp_path / "restored"))
    assert r.returncode == 1 and "already holds etcd data" in r.stderr and "Traceback" not in r.stderr

    restored = ControlPlane(tmp_path / "restored").start()
    try:
        async with Client(restored.address, credentials=restored.credentials) as client:
            after = await snapshot_of(client)
            assert {k: v for k, v in after.items() if k in before} == before
            assert set(before) <= set(after)
            cm = await client.get("configmaps", "settings", "default")
            assert cm["data"] == {"mode": "production"}
            d = await client.get("deployments", "web", "default")
            assert d["spec"]["replicas"] == 3
    finally:
        restored.stop()


async def test_backup_without_a_running_etcd_says_so(tmp_path):
    (tmp_path / "cp").mkdir()
    r = skiff_controlplane("backup", str(tmp_path / "x.db"), "--state-dir", str(tmp_path / "cp"))
    assert r.returncode == 1 and "holds no embedded etcd" in r.stderr
    r = skiff_controlplane("restore", str(tmp_path / "missing.db"), "--state-dir", str(tmp_path / "new"))
    assert r.returncode == 1 and r.stderr == f"error: FILE: {tmp_path / 'missing.db'} is not a file\n"
