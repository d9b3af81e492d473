"""Pulling real images from a real registry (Debian's docker-registry on 127.0.0.1).

Images are built by deploy/build-test-image.py and by umoci, and pushed with
skopeo as OCI and as Docker schema2; a two-platform OCI index (pushed by
skopeo --all) and a Docker manifest list (PUT through the registry API) are
pulled for two platforms. Bytes are counted to show that shared layers are
not downloaded twice.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import urllib.request
from pathlib import Path

import pytest

from agent.images import ImageStore, MirrorConfig, Platform, PullError
from image_helpers import Entry, LayoutWriter, builder, tar_layer
from procs import free_port

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64")
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"


@pytest.fixture(scope="module")
def images(registry, tmp_path_factory: pytest.TempPathFactory) -> dict:  # type: ignore[no-untyped-def]
    """Push every image the tests pull; returns facts about them."""
    top = tmp_path_factory.mktemp("images")
    facts: dict = {}
    busybox = top / "busybox"
    desc = builder.build(out=busybox, tags=["skiff.local/busybox:1.35"])
    facts["busybox_digest"] = desc["digest"]
    source = f"oci:{busybox}:skiff.local/busybox:1.35"
    registry.push(source, "busybox:1.35")
    registry.push(source, "busybox:v2s2", fmt="v2s2")
    registry.push(source, "library/busybox:1.35")  # served as docker.io/library/busybox through a mirror

    # A second image: busybox's two layers plus one of its own.
    derived = top / "derived"
    writer = LayoutWriter(derived)
    extra = tar_layer([Entry("srv", "dir"), Entry("srv/data.bin", data=os.urandom(300_000))])
    facts["extra_layer_size"] = len(gzip.compress(extra, mtime=0))
    writer.tag(writer.image(builder.busybox_layers(Path("/bin/busybox")) + [extra],
                            config=builder.BUSYBOX_CONFIG), "derived")
    writer.finish()
    registry.push(f"oci:{derived}:derived", "derived:1")

    # Two platforms, in one OCI index.
    multi = top / "multi"
    writer = LayoutWriter(multi)
    per_arch = {arch: writer.image([tar_layer([Entry("arch", data=arch.encode())])], arch=arch,
                                   variant="v8" if arch == "arm64" else "") for arch in ("amd64", "arm64")}
    writer.tag(writer.multi_platform(list(per_arch.values())), "multi")
    for arch, desc in per_arch.items():
        writer.tag(desc, f"multi-{arch}")
    writer.finish()
    registry.push(f"oci:{multi}:multi", "multi:oci", all_platforms=True)
    facts["per_arch"] = {arch: d["digest"] for arch, d in per_arch.items()}

    # The same two, as Docker schema2 manifests in a Docker manifest list.
    entries = []
    for arch in ("amd64", "arm64"):
        registry.push(f"oci:{multi}:multi-{arch}", f"multi:v2s2-{arch}", fmt="v2s2")
        body, _ = _get_manifest(registry, "multi", f"v2s2-{arch}")
        entries.append({"mediaType": DOCKER_V2, "digest": "sha256:" + _sha(body), "size": len(body),
                        "platform": per_arch[arch]["platform"]})
    _put_manifest(registry, "multi", "list",
                  json.dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": entries}).encode(),
                  DOCKER_LIST)

    # Whiteouts written by umoci, then an opaque directory on top.
    facts["whiteouts"] = _umoci_image_with_whiteouts(top / "umoci", registry)
    return facts


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _get_manifest(registry, name: str, tag: str) -> tuple[bytes, str]:  # type: ignore[no-untyped-def]
    request = urllib.request.Request(f"{registry.url}/v2/{name}/manifests/{tag}",
                                     headers={"Accept": f"{DOCKER_V2}, {DOCKER_LIST}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read(), response.headers["Content-Type"]


def _put_manifest(registry, name: str, tag: str, body: bytes, media_type: str) -> None:  # type: ignore[no-untyped-def]
    request = urllib.request.Request(f"{registry.url}/v2/{name}/manifests/{tag}", data=body, method="PUT",
                                     headers={"Content-Type": media_type})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201


def _umoci_image_with_whiteouts(top: Path, registry) -> str:  # type: ignore[no-untyped-def]
    """umoci: layer 1 makes etc/{motd,keep}, data/old; layer 2 deletes etc/motd and data/old.

    A third layer, written here, makes etc opaque and adds etc/fresh.
    """
    top.mkdir()
    layout = top / "L"

    def umoci(*args: str) -> None:
        subprocess.run(["umoci", *args], check=True, capture_output=True, timeout=60)

    umoci("init", "--layout", str(layout))
    umoci("new", "--image", f"{layout}:base")
    umoci("unpack", "--rootless", "--image", f"{layout}:base", str(top / "b1"))
    rootfs = top / "b1/rootfs"
    (rootfs / "etc").mkdir()
    (rootfs / "data").mkdir()
    (rootfs / "etc/motd").write_text("hi\n")
    (rootfs / "etc/keep").write_text("keep\n")
    (rootfs / "data/old").write_text("old\n")
    umoci("repack", "--image", f"{layout}:base", str(top / "b1"))
    umoci("unpack", "--rootless", "--image", f"{layout}:base", str(top / "b2"))
    rootfs = top / "b2/rootfs"
    (rootfs / "etc/motd").unlink()
    (rootfs / "data/old").unlink()
    (rootfs / "data/new").write_text("new\n")
    umoci("repack", "--image", f"{layout}:wh", str(top / "b2"))
    # Add the opaque layer to umoci's image by hand: new layer, config and manifest.
    index = json.loads((layout / "index.json").read_text())
    entry = next(m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == "wh")
    blob = lambda d: layout / "blobs/sha256" / d.split(":")[1]  # noqa: E731
    manifest = json.loads(blob(entry["digest"]).read_bytes())
    config = json.loads(blob(manifest["config"]["digest"]).read_bytes())
    opaque = tar_layer([Entry("etc/.wh..wh..opq"), Entry("etc", "dir", mode=0o755),
                        Entry("etc/fresh", data=b"fresh\n")])
    writer = LayoutWriter(layout)
    manifest["layers"].append(writer.blob(gzip.compress(opaque, mtime=0), builder.OCI_LAYER_GZIP))
    config["rootfs"]["diff_ids"].append(builder.sha256(opaque))
    manifest["config"] = writer.blob(json.dumps(config).encode(), manifest["config"]["mediaType"])
    new = writer.blob(json.dumps(manifest).encode(), builder.OCI_MANIFEST)
    index["manifests"].append({**new, "annotations": {"org.opencontainers.image.ref.name": "opaque"}})
    (layout / "index.json").write_text(json.dumps(index))
    registry.push(f"oci:{layout}:opaque", "whiteouts:1")
    return new["digest"]


async def test_pull_oci_image_pushed_by_skopeo(registry, images, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = ImageStore(tmp_path, platform=AMD64)
    seen: list[tuple[str, str]] = []
    ref = f"{registry.host}/busybox:1.35"
    image = await store.pull(ref, on_event=lambda reason, message: seen.append((reason, message)))
    assert image.digest == images["busybox_digest"]
    assert f"{registry.host}/busybox:1.35" in image.names
    assert image.config.cmd == ["sh"] and image.config.env[0].startswith("PATH=")
    assert (image.layers[0] / "bin/busybox").stat().st_size > 100_000
    assert os.readlink(image.layers[0] / "bin/sh") == "/bin/busybox"
    assert (image.layers[1] / "etc/passwd").read_text().startswith("root:")
    assert seen[0] == ("Pulling", f'Pulling image "{ref}"')
    assert seen[1][0] == "Pulled" and seen[1][1].startswith(f'Successfully pulled image "{ref}" in ')
    assert seen[1][1].endswith("(2 layers, 0 cached)")
    assert store.node_images()[0]["names"] == image.names


async def test_pull_docker_schema2(registry, images, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = ImageStore(tmp_path, platform=AMD64)
    image = await store.pull(f"{registry.host}/busybox:v2s2")
    assert store.catalog.by_digest(image.digest).media_type == DOCKER_V2
    assert image.config.cmd == ["sh"] and (image.layers[0] / "bin/busybox").exists()


@pytest.mark.parametrize("tag", ["oci", "list"])
async def test_pull_platform_from_index(registry, images, tmp_path: Path, tag: str) -> None:  # type: ignore[no-untyped-def]
    ref = f"{registry.host}/multi:{tag}"
    amd = await ImageStore(tmp_path / "amd", platform=AMD64).pull(ref)
    arm = await ImageStore(tmp_path / "arm", platform=ARM64).pull(ref)
    assert (amd.layers[0] / "arch").read_text() == "amd64" and amd.config.architecture == "amd64"
    assert (arm.layers[0] / "arch").read_text() == "arm64" and arm.config.architecture == "arm64"
    if tag == "oci":
        assert amd.digest == images["per_arch"]["amd64"] and arm.digest == images["per_arch"]["arm64"]
    with pytest.raises(PullError, match="no image for platform linux/s390x.*linux/amd64, linux/arm64/v8"):
        await ImageStore(tmp_path / "s390x", platform=Platform("linux", "s390x")).pull(ref)


async def test_second_image_downloads_only_its_new_layer(registry, images, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = ImageStore(tmp_path, platform=AMD64)
    base = await store.pull(f"{registry.host}/busybox:1.35")
    before = store.bytes_downloaded
    assert before > 1_000_000  # the busybox binary, compressed
    seen: list[str] = []
    derived = await store.pull(f"{registry.host}/derived:1", on_event=lambda _, message: seen.append(message))
    transferred = store.bytes_downloaded - before
    new_layer = images["extra_layer_size"]
    assert new_layer <= transferred < new_layer + 8192  # the new layer, its manifest and config only
    assert derived.layers[:2] == base.layers  # the very same directories
    assert seen[-1].endswith("(3 layers, 2 cached)")


async def test_concurrent_pulls_share_layers(registry, images, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = ImageStore(tmp_path, platform=AMD64)
    refs = [f"{registry.host}/busybox:1.35", f"{registry.host}/derived:1", f"{registry.host}/derived:1"]
    pulled = await asyncio.gather(*(store.pull(ref) for ref in refs))
    assert pulled[1].layers[:2] == pulled[0].layers
    assert store.bytes_downloaded < 1_100_000 + images["extra_layer_size"]  # busybox + new layer, once each


async def test_whiteouts_and_opaque_directory(registry, images, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = ImageStore(tmp_path, platform=AMD64)
    image = await store.pull(f"{registry.host}/whiteouts:1")
    assert image.digest == images["whiteouts"] and len(image.layers) == 3
    lower, middle, top = image.layers
    assert (lower / "etc/motd").read_text() == "hi\n"
    infos = [json.loads((layer.parent / "layer.json").read_text()) for layer in image.layers]
    if store.layers.whiteout_format == "overlay":
        st = os.lstat(middle / "etc/motd")
        assert st.st_rdev == os.makedev(0, 0) and not (middle / "etc/.wh.motd").exists()
        assert os.lstat(middle / "data/old").st_rdev == os.makedev(0, 0)
        assert os.getxattr(top / "etc", "trusted.overlay.opaque") == b"y"
    else:
        assert infos[1]["whiteouts"] == ["data/old", "etc/motd"] and infos[2]["opaque_dirs"] == ["etc"]
    assert (top / "etc/fresh").read_text() == "fresh\n"


async def test_pull_through_mirror_keeps_usual_names(registry, images, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dead = f"http://127.0.0.1:{free_port()}"  # a mirror that is down is skipped
    mirrors = MirrorConfig.from_dict({"mirrors": {"docker.io": {"endpoint": [dead, registry.url]}},
                                      "disable_default_endpoint": True})
    store = ImageStore(tmp_path, mirrors=mirrors, platform=AMD64)
    image = await store.pull("busybox:1.35")
    assert "docker.io/library/busybox:1.35" in image.names
    assert store.get("busybox:1.35").digest == images["busybox_digest"]
    with pytest.raises(PullError, match="manifest unknown") as info:
        await store.pull("busybox:0.1")
    assert dead in str(info.value) and registry.url in str(info.value)


async def test_unknown_image_carries_registry_message(registry, images, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = ImageStore(tmp_path, platform=AMD64)
    with pytest.raises(PullError) as info:
        await store.pull(f"{registry.host}/no/such:image")
    assert info.value.reason == "ErrImagePull"
    assert "not found: manifest unknown" in str(info.value) and "MANIFEST_UNKNOWN" in str(info.value)


async def test_registry_down(tmp_path: Path) -> None:
    store = ImageStore(tmp_path, platform=AMD64)
    with pytest.raises(PullError, match=r"cannot reach registry http://127\.0\.0\.1:\d+: connection refused") as info:
        await store.pull(f"127.0.0.1:{free_port()}/busybox:1")
    assert info.value.reason == "ErrImagePull"


async def _push_unique(registry, top: Path, name: str) -> tuple[bytes, str]:  # type: ignore[no-untyped-def]
    """An image with one random layer; returns (layer blob, layer digest)."""
    writer = LayoutWriter(top)
    tar = tar_layer([Entry("blob.bin", data=os.urandom(400_000))])
    writer.tag(writer.image([tar], arch="amd64"), "t")
    writer.finish()
    await asyncio.to_thread(registry.push, f"oci:{top}:t", name)
    blob = gzip.compress(tar, mtime=0)
    return blob, builder.sha256(blob)


async def test_corrupt_blob_in_registry_stores_nothing(registry, images, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    blob, digest = await _push_unique(registry, tmp_path / "layout", "corrupt:1")
    data = registry.blob_data(digest)
    data.write_bytes(blob[:-16] + bytes(16))  # same size, other bytes
    store = ImageStore(tmp_path / "store", platform=AMD64)
    with pytest.raises(PullError, match="does not match its digest"):
        await store.pull(f"{registry.host}/corrupt:1")
    assert store.list() == [] and store.layers.diff_ids() == set()
    assert os.listdir(store.ingest) == [] and os.listdir(store.tmp) == []


async def test_interrupted_download_resumes(registry, images, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    blob, digest = await _push_unique(registry, tmp_path / "layout", "resume:1")
    store = ImageStore(tmp_path / "store", platform=AMD64)
    half = len(blob) // 2
    (store.ingest / f"{digest.split(':')[1]}.partial").write_bytes(blob[:half])  # left by an earlier pull
    image = await store.pull(f"{registry.host}/resume:1")
    assert (image.layers[0] / "blob.bin").stat().st_size == 400_000
    assert len(blob) - half <= store.bytes_downloaded < len(blob) - half + 4096
    assert os.listdir(store.ingest) == []
