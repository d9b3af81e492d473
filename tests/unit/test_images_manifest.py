"""Manifest/index/config parsing and choosing a platform from an index."""

import json

import pytest

from agent.images.manifest import (DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST, Index, Manifest,
                                   ManifestError, parse_config, parse_manifest)
from agent.images.platform import Platform, select_manifest

D = "sha256:" + "1" * 64


def entry(arch: str, variant: str = "", os_name: str = "linux", n: str = "1") -> dict:
    platform = {"os": os_name, "architecture": arch, **({"variant": variant} if variant else {})}
    return {"mediaType": OCI_MANIFEST, "digest": "sha256:" + n * 64, "size": 10, "platform": platform}


@pytest.mark.parametrize("media_type", [OCI_MANIFEST, DOCKER_MANIFEST])
def test_manifest(media_type: str) -> None:
    doc = {"schemaVersion": 2, "mediaType": media_type, "config": {"mediaType": "x", "digest": D, "size": 3},
           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": D, "size": 5}]}
    parsed = parse_manifest(json.dumps(doc).encode())
    assert isinstance(parsed, Manifest) and parsed.media_type == media_type
    assert parsed.config.size == 3 and parsed.layers[0].digest == D


@pytest.mark.parametrize("media_type", [OCI_INDEX, DOCKER_MANIFEST_LIST])
def test_index(media_type: str) -> None:
    doc = {"schemaVersion": 2, "mediaType": media_type, "manifests": [entry("amd64")]}
    assert isinstance(parse_manifest(json.dumps(doc).encode()), Index)


def test_media_type_from_content_type_when_body_has_none() -> None:
    doc = {"schemaVersion": 2, "manifests": [entry("amd64")]}
    assert isinstance(parse_manifest(json.dumps(doc).encode(), OCI_INDEX), Index)


@pytest.mark.parametrize("doc, problem", [
    ({"schemaVersion": 1, "name": "x", "fsLayers": []}, "schema1"),
    ({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}, "manifest.config"),
    ({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"digest": "sha256:12", "size": 1}, "layers": []},
     "manifest.config.digest"),
    ({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"digest": D, "size": -1}, "layers": []},
     "manifest.config.size"),
    ({"schemaVersion": 2, "mediaType": "application/x-nope"}, "unsupported media type"),
])
def test_bad_manifests(doc: dict, problem: str) -> None:
    with pytest.raises(ManifestError, match=problem):
        parse_manifest(json.dumps(doc).encode())


def test_config() -> None:
    doc = {"architecture": "amd64", "os": "linux",
           "config": {"Entrypoint": ["/bin/app"], "Cmd": ["serve"], "Env": ["A=1"], "WorkingDir": "/srv",
                      "User": "33:33", "ExposedPorts": {"80/tcp": {}, "53/udp": {}}},
           "rootfs": {"type": "layers", "diff_ids": [D]}}
    config, diff_ids = parse_config(json.dumps(doc).encode())
    assert config.entrypoint == ["/bin/app"] and config.cmd == ["serve"] and config.env == ["A=1"]
    assert config.working_dir == "/srv" and config.user == "33:33"
    assert config.exposed_ports == ["53/udp", "80/tcp"] and diff_ids == [D]


def test_config_needs_diff_ids() -> None:
    with pytest.raises(ManifestError, match="rootfs.diff_ids"):
        parse_config(b'{"config": {}}')


@pytest.mark.parametrize("want, offered, chosen", [
    (Platform("linux", "amd64"), [entry("arm64", n="2"), entry("amd64", n="3")], "3"),
    (Platform("linux", "arm64"), [entry("amd64", n="2"), entry("arm64", "v8", n="3")], "3"),
    (Platform("linux", "aarch64"), [entry("arm64", n="4")], "4"),
    (Platform("linux", "arm", "v7"), [entry("arm", "v6", n="5"), entry("arm", "v7", n="6")], "6"),
    (Platform("linux", "arm", "v7"), [entry("arm", "v6", n="5"), entry("amd64", n="6")], "5"),
    (Platform("linux", "x86_64"), [entry("amd64", os_name="windows", n="7"), entry("amd64", n="8")], "8"),
])
def test_select_platform(want: Platform, offered: list, chosen: str) -> None:
    assert select_manifest(offered, want)["digest"] == "sha256:" + chosen * 64


def test_no_matching_platform_lists_the_offer() -> None:
    with pytest.raises(ValueError, match=r"linux/s390x.*linux/amd64, linux/arm64/v8"):
        select_manifest([entry("amd64"), entry("arm64")], Platform("linux", "s390x"))


def test_arm_v6_node_does_not_take_v7() -> None:
    with pytest.raises(ValueError):
        select_manifest([entry("arm", "v7")], Platform("linux", "arm", "v6"))


def test_platform_parse() -> None:
    assert str(Platform.parse("linux/arm/v7")) == "linux/arm/v7"
    assert Platform.parse("linux/arm64") == Platform("linux", "arm64", "v8")
    with pytest.raises(ValueError, match="os/architecture"):
        Platform.parse("linux")
