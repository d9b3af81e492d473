"""ImageStore behaviour without a network: pull policies, archives, remove, GC, dedup, resume.

The registry here is the in-process fake (tests/fake_registry.py); pulls
from a real registry are in tests/integration/test_images_registry.py.
"""

import asyncio
import gzip
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from agent.images import ImageNotFound, ImageStore, Platform, PullError
from agent.images.catalog import ImageRecord
from agent.images.errors import ArchiveError
from agent.images.gc import DiskUsage, plan
from fake_registry import FakeRegistry, digest_of, image
from image_helpers import Entry, LayoutWriter, builder, tar_layer

AMD64 = Platform("linux", "amd64")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def layout_with(tmp_path: Path, name: str, layers: list[bytes], *tags: str) -> Path:
    out = tmp_path / name
    writer = LayoutWriter(out)
    desc = writer.image(layers, arch="amd64", config={"Cmd": ["sh"]})
    for tag in tags:
        writer.tag(desc, tag)
    writer.finish()
    return out


@pytest.fixture
def busybox_layout(tmp_path: Path) -> Path:
    out = tmp_path / "busybox"
    builder.build(out=out, tags=["skiff.local/busybox:1.35", "busybox:1.35"])
    return out


def events() -> tuple[list, object]:
    seen: list[tuple[str, str]] = []
    return seen, lambda reason, message: seen.append((reason, message))


async def test_load_oci_layout_and_archive(tmp_path: Path, busybox_layout: Path) -> None:
    store = ImageStore(tmp_path / "store", platform=AMD64)
    [loaded] = await store.load_archive(busybox_layout)
    assert "skiff.local/busybox:1.35" in loaded.names and "docker.io/library/busybox:1.35" in loaded.names
    assert loaded.config.cmd == ["sh"] and len(loaded.layers) == 2
    assert (loaded.layers[0] / "bin/busybox").is_file()
    assert os.readlink(loaded.layers[0] / "bin/sh") == "/bin/busybox"
    assert (loaded.layers[1] / "var/www/index.html").is_file()
    archive = tmp_path / "busybox.tar"
    builder.write_archive(busybox_layout, archive)
    [again] = await store.load_archive(archive)
    assert again.digest == loaded.digest and len(store.list()) == 1
    assert store.get("busybox:1.35").digest == loaded.digest
    assert store.get(loaded.digest) is not None and store.get(loaded.id) is not None
    assert store.get(f"skiff.local/busybox@{loaded.digest}") is not None
    assert store.get("busybox:1.36") is None


async def test_docker_save_archive(tmp_path: Path) -> None:
    layers = [tar_layer([Entry("a.txt", data=b"a")]), tar_layer([Entry("b.txt", data=b"b")])]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Entrypoint": ["/a.txt"]},
                         "rootfs": {"type": "layers", "diff_ids": [digest_of(t) for t in layers]}}).encode()
    config_name = digest_of(config).split(":")[1] + ".json"
    path = tmp_path / "saved.tar"
    with tarfile.open(path, "w") as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        add("manifest.json", json.dumps([{"Config": config_name, "RepoTags": ["myapp:v1", "reg.local/x/y:2"],
                                          "Layers": ["l1/layer.tar", "l2/layer.tar"]}]).encode())
        add(config_name, config)
        add("l1/layer.tar", layers[0])
        add("l2/layer.tar", layers[1])
    store = ImageStore(tmp_path / "store", platform=AMD64)
    [loaded] = await store.load_archive(path)
    assert loaded.names == ["docker.io/library/myapp:v1", "reg.local/x/y:2"]
    assert loaded.config.entrypoint == ["/a.txt"] and loaded.id == digest_of(config)
    assert (loaded.layers[1] / "b.txt").read_bytes() == b"b"


async def test_archive_errors(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store", platform=AMD64)
    with pytest.raises(ArchiveError, match="no such file"):
        await store.load_archive(tmp_path / "missing.tar")
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(ArchiveError, match="not a readable tar"):
        await store.load_archive(tmp_path / "junk.tar")
    layout = layout_with(tmp_path, "bad", [tar_layer([Entry("x", data=b"x")])], "skiff.local/bad:1")
    blob = next(p for p in (layout / "blobs/sha256").iterdir() if p.stat().st_size > 100 and
                p.read_bytes()[:2] == b"\x1f\x8b")
    blob.write_bytes(gzip.compress(tar_layer([Entry("x", data=b"tampered")])))
    with pytest.raises(Exception, match="does not match|hashes to|more than the declared"):
        await store.load_archive(layout)
    assert store.list() == [] and os.listdir(store.tmp) == [] and store.layers.diff_ids() == set()


async def test_pull_policies_without_registry(tmp_path: Path, busybox_layout: Path) -> None:
    store = ImageStore(tmp_path / "store", platform=AMD64)
    seen, sink = events()
    with pytest.raises(PullError) as info:
        await store.pull("skiff.local/busybox:1.35", policy="Never", on_event=sink)
    assert info.value.reason == "ErrImageNeverPull"
    assert str(info.value) == 'Container image "skiff.local/busybox:1.35" is not present with pull policy of Never'
    await store.load_archive(busybox_layout)
    assert (await store.pull("skiff.local/busybox:1.35", policy="Never")).names
    assert (await store.pull("skiff.local/busybox:1.35", policy="IfNotPresent", on_event=sink)).names
    assert seen == [("Pulled", 'Container image "skiff.local/busybox:1.35" already present on machine')]
    with pytest.raises(ValueError, match="imagePullPolicy"):
        await store.pull("busybox", policy="Sometimes")
    with pytest.raises(PullError) as info:
        await store.pull("Not/Valid")
    assert info.value.reason == "InvalidImageName"


async def test_remove_untags_then_deletes_unshared_content(tmp_path: Path) -> None:
    shared = tar_layer([Entry("shared", data=b"s" * 1000)])
    a = layout_with(tmp_path, "a", [shared, tar_layer([Entry("a", data=b"a")])], "r.local/a:1", "r.local/a:2")
    b = layout_with(tmp_path, "b", [shared, tar_layer([Entry("b", data=b"b")])], "r.local/b:1")
    store = ImageStore(tmp_path / "store", platform=AMD64)
    [image_a] = await store.load_archive(a)
    [image_b] = await store.load_archive(b)
    assert len(store.layers.diff_ids()) == 3
    store.remove("r.local/a:1")
    assert store.get("r.local/a:2") is not None and store.get("r.local/a:1") is None
    store.remove("r.local/a:2")
    assert store.get(image_a.digest) is None
    assert store.layers.diff_ids() == set(image_b.diff_ids)  # the shared layer stays for b
    assert not store.blobs.has(image_a.id)
    with pytest.raises(ImageNotFound, match="r.local/a:1"):
        store.remove("r.local/a:1")
    store.remove(image_b.digest)
    assert store.list() == [] and store.layers.diff_ids() == set()
    reopened = ImageStore(tmp_path / "store", platform=AMD64)
    assert reopened.list() == []


async def test_catalog_survives_restart(tmp_path: Path, busybox_layout: Path) -> None:
    store = ImageStore(tmp_path / "store", platform=AMD64)
    [loaded] = await store.load_archive(busybox_layout)
    reopened = ImageStore(tmp_path / "store", platform=AMD64)
    assert reopened.get("busybox:1.35").layers == loaded.layers
    assert reopened.node_images() == [{"names": loaded.names, "sizeBytes": loaded.size}]


def record(digest: str, diff_ids: list[str], last_used: float) -> ImageRecord:
    return ImageRecord(digest=digest, config_digest="c" + digest, diff_ids=diff_ids, layer_digests=[],
                       media_type="", last_used=last_used)


def test_gc_plan_oldest_unused_first_counting_only_unshared_layers() -> None:
    records = [record("old", ["L1", "S"], 1), record("mid", ["L2", "S"], 2), record("new", ["L3"], 3),
               record("busy", ["L4"], 0)]
    sizes = {"L1": 10, "L2": 20, "L3": 30, "L4": 40, "S": 100}
    assert plan(records, in_use={"busy"}, layer_sizes=sizes, amount=5) == ["old"]
    assert plan(records, in_use={"busy"}, layer_sizes=sizes, amount=11) == ["old", "mid"]  # S freed with mid
    assert plan(records, in_use={"busy"}, layer_sizes=sizes, amount=10_000) == ["old", "mid", "new"]
    assert plan(records, in_use={"busy"}, layer_sizes=sizes, amount=0) == []


async def test_gc_removes_unused_images_above_the_threshold(tmp_path: Path) -> None:
    now = [1000.0]
    usage = [DiskUsage(total=1000, used=500)]
    store = ImageStore(tmp_path / "store", platform=AMD64, clock=lambda: now[0], disk_usage=lambda _: usage[0])
    loaded = {}
    for i, name in enumerate(["old", "mid", "new"]):
        now[0] = 1000.0 + i
        layout = layout_with(tmp_path, name, [tar_layer([Entry(name, data=os.urandom(100))])], f"r.local/{name}:1")
        [loaded[name]] = await store.load_archive(layout)
    assert store.gc(in_use=set()) == []  # 50% < 85%
    usage[0] = DiskUsage(total=1000, used=900)  # 90%: free 100 bytes to reach 80%
    now[0] = 2000.0
    removed = store.gc(in_use={"r.local/old:1"})
    assert removed == [loaded["mid"].digest]  # old is in use (and now recently used)
    assert store.get("r.local/old:1") is not None and store.get("r.local/new:1") is not None
    with pytest.raises(ValueError, match="low_percent"):
        store.gc(in_use=set(), high_percent=50, low_percent=60)


def fake_hub_image(layer_count: int = 3) -> tuple[FakeRegistry, list[bytes]]:
    hub = FakeRegistry()
    layers = [tar_layer([Entry(f"f{i}", data=os.urandom(50_000))]) for i in range(layer_count)]
    manifest, blobs = image(layers)
    hub.blobs.update(blobs)
    hub.add_manifest(manifest, OCI_MANIFEST, "1")
    return hub, layers


async def test_concurrent_pulls_of_one_image_share_one_download(tmp_path: Path) -> None:
    hub, _ = fake_hub_image()
    store = ImageStore(tmp_path, platform=AMD64, transport=hub.transport())
    results = await asyncio.gather(*(store.pull("r.example/app:1") for _ in range(5)))
    assert len({r.digest for r in results}) == 1
    blob_requests = [r for r in hub.requests if "/blobs/" in r.url.path]
    assert len(blob_requests) == 4  # config + 3 layers, once


async def test_interrupted_download_is_resumed(tmp_path: Path) -> None:
    hub, layers = fake_hub_image(1)
    layer_digest = next(d for d, b in hub.blobs.items() if b[:2] == b"\x1f\x8b")
    size = len(hub.blobs[layer_digest])
    hub.cut_blob_after[layer_digest] = size // 2
    store = ImageStore(tmp_path, platform=AMD64, transport=hub.transport())
    pulled = await store.pull("r.example/app:1")
    assert (pulled.layers[0] / "f0").read_bytes() == layers[0][512:512 + 50_000]
    ranges = [r.headers.get("range") for r in hub.requests if r.url.path.endswith(layer_digest)]
    assert ranges == [None, f"bytes={size // 2}-"]
    assert os.listdir(store.ingest) == []


async def test_digest_mismatch_stores_nothing(tmp_path: Path) -> None:
    hub, _ = fake_hub_image(1)
    layer_digest = next(d for d, b in hub.blobs.items() if b[:2] == b"\x1f\x8b")
    original = hub.blobs[layer_digest]
    hub.blobs[layer_digest] = original[:-4] + b"XXXX"  # same size, other bytes
    store = ImageStore(tmp_path, platform=AMD64, transport=hub.transport())
    with pytest.raises(PullError, match="does not match its digest") as info:
        await store.pull("r.example/app:1")
    assert info.value.reason == "ErrImagePull"
    assert store.list() == [] and store.layers.diff_ids() == set()
    assert os.listdir(store.ingest) == [] and os.listdir(store.tmp) == []
    hub.blobs[layer_digest] = original
    assert (await store.pull("r.example/app:1")).layers


async def test_always_policy_resolves_again_but_downloads_nothing_new(tmp_path: Path) -> None:
    hub, _ = fake_hub_image(2)
    store = ImageStore(tmp_path, platform=AMD64, transport=hub.transport())
    await store.pull("r.example/app:1")
    count = len(hub.requests)
    seen, sink = events()
    await store.pull("r.example/app:1", policy="Always", on_event=sink)
    assert [r.url.path.split("/")[-2] for r in hub.requests[count:]] == ["manifests"]
    assert seen[0] == ("Pulling", 'Pulling image "r.example/app:1"')
    assert seen[1][0] == "Pulled" and "(2 layers, 2 cached)" in seen[1][1]
