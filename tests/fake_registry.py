"""An in-process stand-in for a remote registry, as an httpx MockTransport.

Only for what a local docker-registry cannot show: Docker Hub's token service
(anonymous bearer tokens), connections cut in the middle of a blob, and
counting requests. Everything else is tested against the real registry.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field

import httpx


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class FakeRegistry:
    manifests: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # tag or digest → (body, type)
    blobs: dict[str, bytes] = field(default_factory=dict)
    token_auth: bool = False  # Docker Hub style: 401 + Bearer challenge, token from /token
    required_user: tuple[str, str] | None = None  # token only for these credentials
    cut_blob_after: dict[str, int] = field(default_factory=dict)  # digest → bytes sent before the cut (once)
    requests: list[httpx.Request] = field(default_factory=list)
    token = "t0ken"

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def add_manifest(self, body: bytes, media_type: str, *tags: str) -> str:
        digest = digest_of(body)
        for key in (digest, *tags):
            self.manifests[key] = (body, media_type)
        return digest

    def add_blob(self, data: bytes) -> str:
        self.blobs[digest_of(data)] = data
        return digest_of(data)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/token":
            return self._token(request)
        if self.token_auth and request.headers.get("authorization") != f"Bearer {self.token}":
            challenge = (f'Bearer realm="{request.url.scheme}://{request.url.host}/token",'
                         f'service="fake.registry",scope="repository:{_repo(request)}:pull"')
            return httpx.Response(401, headers={"WWW-Authenticate": challenge},
                                  json={"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]})
        match = re.match(r"^/v2/(.+)/(manifests|blobs)/([^/]+)$", request.url.path)
        if not match:
            return httpx.Response(404)
        _, kind, target = match.groups()
        if kind == "manifests":
            if target not in self.manifests:
                return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN",
                                                             "message": "manifest unknown"}]})
            body, media_type = self.manifests[target]
            return httpx.Response(200, content=body, headers={"Content-Type": media_type})
        data = self.blobs.get(target)
        if data is None:
            return httpx.Response(404, json={"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown"}]})
        start = 0
        if "range" in request.headers:
            start = int(re.match(r"bytes=(\d+)-", request.headers["range"]).group(1))
        body = data[start:]
        status = 206 if start else 200
        headers = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"} if start else {}
        if target in self.cut_blob_after:
            return httpx.Response(status, headers=headers, stream=_CutStream(body, self.cut_blob_after.pop(target)))
        return httpx.Response(status, content=body, headers=headers)

    def _token(self, request: httpx.Request) -> httpx.Response:
        if self.required_user:
            user, password = self.required_user
            expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            if request.headers.get("authorization") != expected:
                return httpx.Response(401, json={"details": "incorrect username or password"})
        return httpx.Response(200, json={"token": self.token, "expires_in": 300})


def _repo(request: httpx.Request) -> str:
    match = re.match(r"^/v2/(.+)/(manifests|blobs)/", request.url.path)
    return match.group(1) if match else ""


class _CutStream(httpx.AsyncByteStream):
    """Sends `limit` bytes of `data`, then fails as a reset connection would."""

    def __init__(self, data: bytes, limit: int) -> None:
        self.data, self.limit = data, limit

    async def __aiter__(self):  # type: ignore[no-untyped-def]
        yield self.data[: self.limit]
        raise httpx.ReadError("connection reset by peer")


def image(layers: list[bytes], *, config: dict | None = None) -> tuple[bytes, dict]:
    """(manifest bytes, blobs) for an OCI image of gzipped `layers` (given as uncompressed tars)."""
    import gzip

    blobs = {}
    descriptors = []
    for tar in layers:
        gz = gzip.compress(tar, mtime=0)
        blobs[digest_of(gz)] = gz
        descriptors.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest_of(gz),
                            "size": len(gz)})
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": config or {},
                      "rootfs": {"type": "layers", "diff_ids": [digest_of(t) for t in layers]}}).encode()
    blobs[digest_of(cfg)] = cfg
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": digest_of(cfg), "size": len(cfg)},
                           "layers": descriptors}).encode()
    return manifest, blobs
