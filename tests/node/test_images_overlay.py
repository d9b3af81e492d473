"""Unpacked layers stack with the real overlayfs: whiteouts hide, opaque dirs mask, links resolve.

A three-layer image (busybox-like base, a layer deleting files, a layer with an
opaque directory whose marker comes before the directory entry) is imported into
a store, and its layer directories are mounted read-only as overlayfs lowerdirs,
exactly as the runtime will. The mount is removed in `finally`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from agent.images import ImageStore, Platform
from image_helpers import Entry, LayoutWriter, tar_layer

pytestmark = pytest.mark.root


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root: mounts overlayfs and writes overlay whiteouts"
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "kernel without overlayfs"
    return None


@pytest.fixture
def mounted(tmp_path: Path):  # type: ignore[no-untyped-def]
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    layout = tmp_path / "layout"
    writer = LayoutWriter(layout)
    base = tar_layer([Entry("bin", "dir"), Entry("bin/tool", data=b"#!/bin/sh\n", mode=0o755),
                      Entry("bin/alias", "symlink", target="/bin/tool"),
                      Entry("etc", "dir"), Entry("etc/motd", data=b"hello\n"), Entry("etc/keep", data=b"keep\n"),
                      Entry("cache", "dir"), Entry("cache/a", data=b"a"), Entry("cache/b", data=b"b")])
    deleting = tar_layer([Entry("etc/.wh.motd"), Entry("bin/.wh.alias")])
    opaque = tar_layer([Entry("cache/.wh..wh..opq"), Entry("cache", "dir", mode=0o700),
                        Entry("cache/c", data=b"c")])
    writer.tag(writer.image([base, deleting, opaque], arch="amd64"), "skiff.local/stack:1")
    writer.finish()
    store = ImageStore(tmp_path / "store", platform=Platform("linux", "amd64"))
    assert store.layers.whiteout_format == "overlay"
    [image] = asyncio.run(store.load_archive(layout))
    target = tmp_path / "rootfs"
    target.mkdir()
    lowerdirs = ":".join(str(p) for p in reversed(image.layers))  # overlayfs wants the top first
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"ro,lowerdir={lowerdirs}", str(target)],
                   check=True, capture_output=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


def test_overlay_sees_the_image_as_docker_would(mounted: Path) -> None:
    assert sorted(os.listdir(mounted / "etc")) == ["keep"]  # motd whited out
    assert not os.path.lexists(mounted / "bin/alias")
    assert (mounted / "bin/tool").read_bytes() == b"#!/bin/sh\n"
    assert sorted(os.listdir(mounted / "cache")) == ["c"]  # opaque: a and b of the base are hidden
    assert oct((mounted / "cache").stat().st_mode & 0o777) == oct(0o700)
