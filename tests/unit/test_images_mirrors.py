"""The node's registry mirror config (like k3s' registries.yaml)."""

from pathlib import Path

import pytest

from agent.images.mirrors import MirrorConfig, MirrorConfigError


def test_endpoints_mirrors_first_then_registry() -> None:
    config = MirrorConfig.from_dict({
        "mirrors": {"docker.io": {"endpoint": ["http://10.0.0.5:5000", "https://mirror.example.com/"]}},
        "configs": {"10.0.0.5:5000": {"insecure": True, "auth": {"username": "u", "password": "p"}}},
    })
    endpoints = config.endpoints("docker.io")
    assert [e.url for e in endpoints] == ["http://10.0.0.5:5000", "https://mirror.example.com",
                                          "https://registry-1.docker.io"]
    assert [e.is_mirror for e in endpoints] == [True, True, False]
    assert endpoints[0].verify_tls is False and endpoints[1].verify_tls is True
    assert config.auth().for_host("10.0.0.5:5000").username == "u"
    assert [e.url for e in config.endpoints("quay.io")] == ["https://quay.io"]


def test_wildcard_and_disable_default() -> None:
    config = MirrorConfig.from_dict({"mirrors": {"*": {"endpoint": ["https://m.example"]}},
                                     "disable_default_endpoint": True})
    assert [e.url for e in config.endpoints("registry.k8s.io")] == ["https://m.example"]


def test_loopback_registries_use_plain_http() -> None:
    assert MirrorConfig().endpoints("127.0.0.1:5000")[0].url == "http://127.0.0.1:5000"
    assert MirrorConfig().endpoints("localhost:5000")[0].url == "http://localhost:5000"
    assert MirrorConfig().endpoints("registry.example:5000")[0].url == "https://registry.example:5000"


def test_http_mirror_must_be_listed_insecure() -> None:
    with pytest.raises(MirrorConfigError, match=r'mirrors.docker.io.endpoint\[0\].*configs."10.0.0.5:5000".insecure'):
        MirrorConfig.from_dict({"mirrors": {"docker.io": {"endpoint": ["http://10.0.0.5:5000"]}}})


@pytest.mark.parametrize("doc, problem", [
    ({"mirrors": {"docker.io": {"endpoint": 5}}}, "must be a list of URLs"),
    ({"mirrors": {"docker.io": {"endpoint": ["ftp://x"]}}}, "not an http"),
    ({"mirorrs": {}}, "unknown field"),
    ({"configs": {"h": {"auth": {"password": "p"}}}}, "auth.username"),
    ([], "mapping"),
])
def test_bad_config(doc: object, problem: str) -> None:
    with pytest.raises(MirrorConfigError, match=problem):
        MirrorConfig.from_dict(doc)


def test_load_file(tmp_path: Path) -> None:
    path = tmp_path / "registries.yaml"
    assert MirrorConfig.load(path).mirrors == {}
    path.write_text("mirrors:\n  docker.io:\n    endpoint: ['http://127.0.0.1:5000']\n")
    assert MirrorConfig.load(path).mirrors == {"docker.io": ["http://127.0.0.1:5000"]}
    path.write_text("mirrors: [\n")
    with pytest.raises(MirrorConfigError, match="registries.yaml: not valid YAML"):
        MirrorConfig.load(path)
