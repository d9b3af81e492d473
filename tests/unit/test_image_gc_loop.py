"""The agent's image GC loop: which images count as used, and a pass over a real store.

The store's policy (oldest unused first, shared layers) is tested in test_images_store.py;
here: the images the node's pods name are kept, the others go when the disk is full,
and the agent's flags refuse thresholds that make no sense.
"""
import os
from pathlib import Path

import pytest

from agent.imagegc import ImageGarbageCollector, images_of
from agent.images import ImageStore, Platform
from agent.images.gc import DiskUsage
from agent.main import parse_args
from image_helpers import Entry, LayoutWriter, tar_layer


def pod(*images: str, init: tuple[str, ...] = ()) -> dict:
    return {"metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": f"i{n}", "image": i} for n, i in enumerate(init)],
                     "containers": [{"name": f"c{n}", "image": i} for n, i in enumerate(images)]}}


def test_images_of_counts_containers_and_init_containers():
    assert images_of([pod("a:1", "b:2", init=("setup:3",)), pod("a:1"), {"spec": {}}]) == {"a:1", "b:2", "setup:3"}


async def test_a_pass_removes_what_no_pod_names_when_the_disk_is_full(tmp_path: Path):
    usage = [DiskUsage(total=1000, used=500)]
    store = ImageStore(tmp_path / "store", platform=Platform("linux", "amd64"), disk_usage=lambda _: usage[0])
    for name in ("kept", "unused"):
        writer = LayoutWriter(tmp_path / name)
        writer.tag(writer.image([tar_layer([Entry(name, data=os.urandom(100))])], arch="amd64",
                                config={"Cmd": ["sh"]}), f"r.local/{name}:1")
        writer.finish()
        await store.load_archive(tmp_path / name)
    pods = [pod("r.local/kept:1")]
    gc = ImageGarbageCollector(store, lambda: pods, interval=3600)

    assert await gc.collect() == []                  # 50 % used: below the high threshold
    usage[0] = DiskUsage(total=1000, used=900)       # 90 %: above 85 %, free down to 80 %
    removed = await gc.collect()
    assert len(removed) == 1
    assert store.get("r.local/unused:1") is None and store.get("r.local/kept:1") is not None


def test_agent_flags_for_the_thresholds(capsys):
    config, _ = parse_args(["--image-gc-high-threshold", "90", "--image-gc-low-threshold", "70"])
    assert (config.image_gc_high_percent, config.image_gc_low_percent) == (90, 70)
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--image-gc-high-threshold", "60", "--image-gc-low-threshold", "70"])
    assert exit_.value.code == 2
    assert "--image-gc-low-threshold (70) must be at most --image-gc-high-threshold (60)" in capsys.readouterr().err
