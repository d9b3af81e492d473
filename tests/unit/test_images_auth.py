"""Registry credentials (pull secrets) and the WWW-Authenticate token dance."""

import base64
import json
from pathlib import Path

import pytest

from agent.images import ImageStore, MirrorConfig, Platform, PullError, RegistryAuth
from agent.images.auth import AuthConfigError, parse_challenge, registry_key
from api.secret import Secret
from fake_registry import FakeRegistry, image
from image_helpers import Entry, tar_layer

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def dockerconfig(host: str, user: str, password: str) -> bytes:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    return json.dumps({"auths": {host: {"auth": auth}}}).encode()


def test_parse_bearer_challenge() -> None:
    challenge = parse_challenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                                'scope="repository:library/busybox:pull"')
    assert challenge.scheme == "bearer"
    assert challenge.params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                                "scope": "repository:library/busybox:pull"}
    assert parse_challenge('Basic realm="Registry Realm"').scheme == "basic"


@pytest.mark.parametrize("key, host", [
    ("https://index.docker.io/v1/", "docker.io"), ("registry-1.docker.io", "docker.io"),
    ("http://127.0.0.1:5000", "127.0.0.1:5000"), ("Quay.io", "quay.io"),
])
def test_registry_keys(key: str, host: str) -> None:
    assert registry_key(key) == host


def test_dockerconfigjson_forms() -> None:
    auth = RegistryAuth.from_dockerconfigjson(json.dumps({"auths": {
        "https://index.docker.io/v1/": {"auth": base64.b64encode(b"me:pa:ss").decode()},
        "quay.io": {"username": "u", "password": "p"}}}))
    assert (auth.for_host("docker.io").username, auth.for_host("docker.io").password) == ("me", "pa:ss")
    assert auth.for_host("registry-1.docker.io").username == "me"
    assert auth.for_host("quay.io").password == "p"
    assert auth.for_host("ghcr.io") is None


@pytest.mark.parametrize("data, problem", [
    (b"{", "not valid JSON"), (b"{}", "auths"), (b'{"auths": {"h": {"auth": "!!"}}}', "not base64"),
    (b'{"auths": {"h": {"auth": "' + base64.b64encode(b"nocolon") + b'"}}}', "user:password"),
])
def test_bad_dockerconfigjson(data: bytes, problem: str) -> None:
    with pytest.raises(AuthConfigError, match=problem):
        RegistryAuth.from_dockerconfigjson(data)


def test_from_secret() -> None:
    secret = Secret(metadata={"name": "regcred"}, type="kubernetes.io/dockerconfigjson",
                    data={".dockerconfigjson": base64.b64encode(dockerconfig("r.example", "u", "p")).decode()})
    assert RegistryAuth.from_secret(secret).for_host("r.example").username == "u"
    as_dict = {"type": "kubernetes.io/dockerconfigjson", "metadata": {"name": "regcred"},
               "data": {".dockerconfigjson": base64.b64encode(dockerconfig("r.example", "u", "p")).decode()}}
    assert RegistryAuth.from_secret(as_dict).for_host("r.example").password == "p"
    with pytest.raises(AuthConfigError, match="secret 'plain': type is 'Opaque'"):
        RegistryAuth.from_secret({"type": "Opaque", "metadata": {"name": "plain"}, "data": {}})


def hub_with_busybox(**kwargs) -> FakeRegistry:
    hub = FakeRegistry(token_auth=True, **kwargs)
    manifest, blobs = image([tar_layer([Entry("hello.txt", data=b"hi\n")])], config={"Cmd": ["sh"]})
    hub.blobs.update(blobs)
    hub.add_manifest(manifest, OCI_MANIFEST, "1.36")
    return hub


async def test_anonymous_bearer_token(tmp_path: Path) -> None:
    hub = hub_with_busybox()
    store = ImageStore(tmp_path, platform=Platform("linux", "amd64"), transport=hub.transport())
    pulled = await store.pull("busybox:1.36")
    assert pulled.config.cmd == ["sh"]
    token_requests = [r for r in hub.requests if r.url.path == "/token"]
    assert len(token_requests) == 1  # the token is reused for the blobs
    assert token_requests[0].url.params["scope"] == "repository:library/busybox:pull"
    assert token_requests[0].url.params["service"] == "fake.registry"
    assert "authorization" not in token_requests[0].headers
    manifest_request = next(r for r in hub.requests if "/manifests/" in r.url.path)
    assert manifest_request.url.host == "registry-1.docker.io"
    accept = manifest_request.headers["accept"]
    for media_type in ("application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
                       "application/vnd.docker.distribution.manifest.v2+json",
                       "application/vnd.docker.distribution.manifest.list.v2+json"):
        assert media_type in accept


async def test_pull_secret_credentials_go_to_the_token_service(tmp_path: Path) -> None:
    hub = hub_with_busybox(required_user=("me", "s3cret"))
    store = ImageStore(tmp_path, platform=Platform("linux", "amd64"), transport=hub.transport())
    with pytest.raises(PullError, match="token service .* refused a token") as info:
        await store.pull("busybox:1.36")
    assert info.value.reason == "ErrImagePull"
    auth = RegistryAuth.from_dockerconfigjson(dockerconfig("https://index.docker.io/v1/", "me", "s3cret"))
    assert (await store.pull("busybox:1.36", auth=auth)).names


async def test_mirror_credentials_from_config(tmp_path: Path) -> None:
    hub = hub_with_busybox(required_user=("m", "pw"))
    mirrors = MirrorConfig.from_dict({"mirrors": {"docker.io": {"endpoint": ["https://mirror.example"]}},
                                      "configs": {"mirror.example": {"auth": {"username": "m", "password": "pw"}}},
                                      "disable_default_endpoint": True})
    store = ImageStore(tmp_path, mirrors=mirrors, platform=Platform("linux", "amd64"), transport=hub.transport())
    await store.pull("busybox:1.36")
    assert {r.url.host for r in hub.requests} == {"mirror.example"}
