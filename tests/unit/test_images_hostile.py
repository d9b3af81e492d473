"""Hostile layers are rejected (or neutralised) and nothing is written outside the layer.

Each case unpacks a tarball built here next to an "outside" tree holding a
secret; afterwards everything outside the layer directory must be exactly as
before. The store-level case imports a hostile image archive and checks that
the store keeps nothing of it either.
"""

import gzip
import io
import os
from pathlib import Path

import pytest

from agent.images import ImageStore, LayerError, Platform
from agent.images.unpack import unpack_layer
from image_helpers import Entry, LayoutWriter, snapshot, tar_layer

HOSTILE = {
    "dot-dot": [Entry("../escape.txt", data=b"x")],
    "dot-dot-inside": [Entry("a/../../escape.txt", data=b"x")],
    "dot-dot-directory": [Entry("../../outside", "dir")],
    "symlink-then-file-through-it": [Entry("link", "symlink", target="../../outside"),
                                     Entry("link/pwned", data=b"x")],
    "absolute-symlink-then-file": [Entry("root", "symlink", target="/"), Entry("root/tmp/pwned", data=b"x")],
    "symlink-through-symlink": [Entry("b", "symlink", target="../../outside"), Entry("a", "symlink", target="b"),
                                Entry("a/pwned", data=b"x")],
    "symlink-then-dir-through-it": [Entry("link", "symlink", target="../../outside"), Entry("link/sub", "dir")],
    "hardlink-dot-dot": [Entry("h", "hardlink", target="../outside/secret")],
    "hardlink-absolute-outside": [Entry("h", "hardlink", target="/etc/passwd")],
    "hardlink-through-symlink": [Entry("link", "symlink", target="../../outside"),
                                 Entry("h", "hardlink", target="link/secret")],
    "hardlink-to-directory": [Entry("d", "dir"), Entry("h", "hardlink", target="d")],
    "whiteout-through-symlink": [Entry("link", "symlink", target="../../outside"), Entry("link/.wh.secret")],
    "opaque-through-symlink": [Entry("link", "symlink", target="../../outside"), Entry("link/.wh..wh..opq")],
    "whiteout-of-dot-dot": [Entry("d/.wh...", data=b"")],
    "absurd-size": [Entry("big", data=b"", size=1 << 40)],
    "huge-pax-header": [Entry("f", data=b"x", xattrs={"user.big": "y" * (2 << 20)})],
}


@pytest.fixture
def world(tmp_path: Path):  # type: ignore[no-untyped-def]
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("do not touch\n")
    layer = tmp_path / "store" / "layer"
    layer.mkdir(parents=True)
    return tmp_path, layer


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_layer_rejected(world, case: str) -> None:  # type: ignore[no-untyped-def]
    top, layer = world
    before = snapshot(top / "outside")
    with pytest.raises(LayerError) as info:
        unpack_layer(io.BytesIO(gzip.compress(tar_layer(HOSTILE[case]))), layer, whiteout_format="sidecar")
    assert str(info.value)  # a message naming the problem
    assert snapshot(top / "outside") == before
    assert sorted(p.name for p in top.iterdir()) == ["outside", "store"]
    assert not (top / "escape.txt").exists() and not Path("/tmp/pwned").exists()


def test_messages_name_the_entry_and_the_problem(world) -> None:  # type: ignore[no-untyped-def]
    _, layer = world
    cases = {"dot-dot": "contains '..'", "symlink-then-file-through-it": "parent 'link' is a symlink",
             "hardlink-absolute-outside": "not an earlier entry of this layer",
             "absurd-size": "declares 1099511627776 bytes"}
    for case, message in cases.items():
        target = layer / case
        target.mkdir()
        with pytest.raises(LayerError, match=message):
            unpack_layer(io.BytesIO(tar_layer(HOSTILE[case])), target, whiteout_format="sidecar")


def test_absolute_paths_are_neutralised(world) -> None:  # type: ignore[no-untyped-def]
    _, layer = world
    unpack_layer(io.BytesIO(tar_layer([Entry("/etc/evil.conf", data=b"inside")])), layer)
    assert (layer / "etc/evil.conf").read_bytes() == b"inside"


def test_file_replacing_a_symlink_does_not_write_through_it(world) -> None:  # type: ignore[no-untyped-def]
    top, layer = world
    tar = tar_layer([Entry("evil", "symlink", target=str(top / "outside/secret")), Entry("evil", data=b"mine")])
    unpack_layer(io.BytesIO(tar), layer)
    assert (top / "outside/secret").read_text() == "do not touch\n"
    assert not (layer / "evil").is_symlink() and (layer / "evil").read_bytes() == b"mine"


async def test_store_keeps_nothing_of_a_hostile_image(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("do not touch\n")
    layout = tmp_path / "layout"
    writer = LayoutWriter(layout)
    good = tar_layer([Entry("ok.txt", data=b"fine")])
    evil = tar_layer([Entry("link", "symlink", target="../../../../outside"), Entry("link/pwned", data=b"x")])
    writer.tag(writer.image([good, evil], arch="amd64"), "skiff.local/evil:1")
    writer.finish()
    store = ImageStore(tmp_path / "store", platform=Platform("linux", "amd64"))
    before = snapshot(outside)
    with pytest.raises(LayerError, match="parent 'link' is a symlink"):
        await store.load_archive(layout)
    assert snapshot(outside) == before
    assert store.get("skiff.local/evil:1") is None and store.list() == []
    assert os.listdir(store.tmp) == []
    assert len(store.layers.diff_ids()) <= 1  # at most the harmless layer, complete
