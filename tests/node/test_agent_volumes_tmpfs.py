"""agent/volumes.py with real tmpfs mounts (root): memory-backed emptyDir and secret volumes.

The fixture unmounts anything left below its temporary root in `finally`, so a
failing test leaves no mount behind.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Iterator

import pytest

from agent.tmpfs import mounts_under, unmount
from agent.volumes import VolumeManager

pytestmark = pytest.mark.root

if os.geteuid() != 0:
    pytest.skip("needs root: mounts tmpfs filesystems", allow_module_level=True)

UID = "tmpfs-pod-1"


def mounts() -> dict[str, tuple[str, str]]:
    """/proc/mounts as mount point -> (filesystem type, options)."""
    table = {}
    for line in Path("/proc/mounts").read_text().splitlines():
        _, point, fstype, options, *_ = line.split()
        table[point.replace("\\040", " ")] = (fstype, options)
    return table


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "pods"
    try:
        yield root
    finally:
        for point in mounts_under(tmp_path):
            unmount(point)
        assert not mounts_under(tmp_path)


def make_pod() -> dict:
    return {"metadata": {"name": "p", "namespace": "default", "uid": UID},
            "spec": {"containers": [{"name": "c"}], "volumes": [
                {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
                {"name": "disk", "emptyDir": {}},
                {"name": "creds", "secret": {"secretName": "creds"}},
            ]}}


SECRETS = {"creds": {"data": {"password": base64.b64encode(b"hunter2").decode()}}}


async def test_tmpfs_volumes_are_mounted_and_unmounted(root: Path) -> None:
    manager = VolumeManager(root)
    assert manager.use_tmpfs
    paths = await manager.setup(make_pod(), get_configmap=lambda name: None, get_secret=SECRETS.get, node=None)
    table = mounts()
    mem, creds, disk = (os.path.realpath(paths[n]) for n in ("mem", "creds", "disk"))
    assert table[mem][0] == "tmpfs" and "size=16384k" in table[mem][1]
    assert "nosuid" in table[mem][1] and "nodev" in table[mem][1]
    assert table[creds][0] == "tmpfs"
    assert disk not in table
    assert (paths["creds"] / "password").read_text() == "hunter2"
    assert (Path(creds) / os.readlink(paths["creds"] / "..data")).stat().st_dev == os.stat(creds).st_dev

    # Idempotent: a second sync neither mounts again nor loses content.
    (paths["mem"] / "state").write_text("x")
    await manager.setup(make_pod(), get_configmap=lambda name: None, get_secret=SECRETS.get, node=None)
    assert [p for p in mounts_under(root)].count(mem) == 1
    assert (paths["mem"] / "state").read_text() == "x"

    # A restarted agent (a new manager) tears the pod down from what is on disk and in the mount table.
    await VolumeManager(root).teardown(UID)
    assert mounts_under(root) == []
    assert not (root / UID).exists()
