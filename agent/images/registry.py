"""Client for the OCI Distribution API: resolve a reference to a manifest, fetch blobs.

One `RegistryClient` serves one pull (or a few): it tries the endpoints the
mirror config gives for the image's registry (mirrors first, then the registry
itself), answers 401 challenges (auth.py), asks for all four manifest types,
picks the node's platform from an index, and verifies everything it receives
by digest and size. Blobs are streamed to a ``.partial`` file in the store's
ingest directory; a download cut off half-way is resumed with an HTTP Range
request — on the next attempt within this pull, or by a later pull.

File writes and hashing run in a thread, so the event loop only moves bytes.
`bytes_received` counts body bytes, which is how tests see that shared layers
are not downloaded twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from agent.images.auth import Challenge, RegistryAuth, parse_challenge
from agent.images.digest import sha256_digest
from agent.images.errors import DigestMismatch, RegistryError
from agent.images.manifest import (ACCEPT, MAX_MANIFEST_BYTES, Descriptor, Index, Manifest, ManifestError,
                                   parse_manifest)
from agent.images.mirrors import Endpoint, MirrorConfig
from agent.images.platform import Platform, select_manifest
from agent.images.reference import Reference

log = logging.getLogger(__name__)

_WRITE_BATCH = 1 << 20
_DOWNLOAD_ATTEMPTS = 3
_USER_AGENT = "skiff-agent/0.1"


@dataclass(frozen=True)
class ResolvedManifest:
    """A reference resolved at one endpoint to the manifest for this node's platform."""

    reference: Reference
    endpoint: Endpoint
    top_digest: str  # what the tag points at: an index, or the manifest itself
    digest: str  # the platform manifest
    media_type: str
    manifest: Manifest
    manifest_bytes: bytes


class RegistryClient:
    def __init__(self, *, mirrors: MirrorConfig | None = None, auth: RegistryAuth | None = None,
                 platform: Platform | None = None, timeout: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.mirrors = mirrors or MirrorConfig()
        self.auth = (auth or RegistryAuth()).merged(self.mirrors.auth())
        self.platform = platform or Platform.host()
        self.timeout = httpx.Timeout(timeout, connect=min(timeout, 10.0))
        self.bytes_received = 0
        self._transport = transport
        self._clients: dict[tuple[bool, str | None], httpx.AsyncClient] = {}
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}
        self._basic: set[str] = set()

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    # -- manifests -------------------------------------------------------------------------

    async def resolve(self, ref: Reference) -> ResolvedManifest:
        """Find `ref`'s manifest for this node's platform, trying each endpoint in turn."""
        failures: list[RegistryError] = []
        for endpoint in self.mirrors.endpoints(ref.domain):
            try:
                return await self._resolve_at(endpoint, ref)
            except RegistryError as exc:
                log.info("resolving %s at %s failed: %s", ref, endpoint, exc)
                failures.append(exc)
        if len(failures) == 1:
            raise failures[0]
        last = failures[-1]
        raise RegistryError("; ".join(str(f) for f in failures), status=last.status, code=last.code)

    async def _resolve_at(self, endpoint: Endpoint, ref: Reference) -> ResolvedManifest:
        data, media_type = await self._get_manifest(endpoint, ref, ref.digest or ref.tag or "latest")
        top_digest = sha256_digest(data)
        if ref.digest and top_digest != ref.digest:
            raise DigestMismatch(f"manifest for {ref} from {endpoint} hashes to {top_digest}")
        parsed = parse_manifest(data, media_type)
        digest = top_digest
        if isinstance(parsed, Index):
            try:
                entry = select_manifest(parsed.manifests, self.platform)
            except ValueError as exc:
                raise ManifestError(f"{ref}: {exc}") from None
            digest = entry["digest"]
            data, media_type = await self._get_manifest(endpoint, ref, digest)
            if sha256_digest(data) != digest:
                raise DigestMismatch(f"manifest {digest} of {ref} from {endpoint} does not match its digest")
            parsed = parse_manifest(data, media_type)
            if not isinstance(parsed, Manifest):
                raise ManifestError(f"{ref}: index entry {digest} is not an image manifest")
        return ResolvedManifest(reference=ref, endpoint=endpoint, top_digest=top_digest, digest=digest,
                                media_type=parsed.media_type, manifest=parsed, manifest_bytes=data)

    async def _get_manifest(self, endpoint: Endpoint, ref: Reference, target: str) -> tuple[bytes, str]:
        url = f"{endpoint.url}/v2/{ref.repository}/manifests/{target}"
        what = f"manifest {ref.repository}:{target}" if ":" not in target else f"manifest {ref.repository}@{target}"
        response = await self._send(endpoint, ref.repository, "GET", url, headers={"Accept": ACCEPT})
        try:
            if response.status_code != 200:
                await self._raise_for(response, endpoint=endpoint, what=what)
            data = await self._read_limited(response, MAX_MANIFEST_BYTES, what=what)
        finally:
            await response.aclose()
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        return data, media_type

    # -- blobs -----------------------------------------------------------------------------

    async def fetch_blob_bytes(self, resolved: ResolvedManifest, desc: Descriptor, *, limit: int) -> bytes:
        """A small blob (an image config), verified by digest and size."""
        if desc.size > limit:
            raise DigestMismatch(f"blob {desc.digest}: declared size {desc.size} exceeds the limit of {limit}")
        url = f"{resolved.endpoint.url}/v2/{resolved.reference.repository}/blobs/{desc.digest}"
        response = await self._send(resolved.endpoint, resolved.reference.repository, "GET", url)
        try:
            if response.status_code != 200:
                await self._raise_for(response, endpoint=resolved.endpoint, what=f"blob {desc.digest}")
            data = await self._read_limited(response, desc.size, what=f"blob {desc.digest}")
        finally:
            await response.aclose()
        if len(data) != desc.size or sha256_digest(data) != desc.digest:
            raise DigestMismatch(f"blob {desc.digest} from {resolved.endpoint}: content does not match "
                                 f"its digest ({len(data)} bytes, expected {desc.size})")
        return data

    async def fetch_blob_to_file(self, resolved: ResolvedManifest, desc: Descriptor, partial: Path) -> None:
        """Download a layer blob into `partial`, resuming what is already there; verified at the end.

        On a digest or size mismatch the partial file is deleted and DigestMismatch raised.
        """
        url = f"{resolved.endpoint.url}/v2/{resolved.reference.repository}/blobs/{desc.digest}"
        offset, hasher = 0, hashlib.sha256()
        for attempt in range(1, _DOWNLOAD_ATTEMPTS + 1):
            offset, hasher = await asyncio.to_thread(_hash_existing, partial, desc.size)
            if offset == desc.size:
                break
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            response = await self._send(resolved.endpoint, resolved.reference.repository, "GET", url,
                                        headers=headers)
            try:
                if response.status_code == 416 or (response.status_code == 206 and not response.headers.get(
                        "content-range", "").startswith(f"bytes {offset}-")):
                    await asyncio.to_thread(partial.unlink, missing_ok=True)
                    continue
                if response.status_code == 200 and offset:
                    offset, hasher = 0, hashlib.sha256()  # the server ignored Range: start again
                elif response.status_code not in (200, 206):
                    await self._raise_for(response, endpoint=resolved.endpoint, what=f"blob {desc.digest}")
                offset = await self._stream_to_file(response, partial, offset=offset, hasher=hasher, desc=desc)
                break
            except DigestMismatch:
                await asyncio.to_thread(partial.unlink, missing_ok=True)
                raise
            except (httpx.TransportError, httpx.StreamError) as exc:
                if attempt == _DOWNLOAD_ATTEMPTS:
                    raise RegistryError(f"download of blob {desc.digest} from {resolved.endpoint} failed "
                                        f"{attempt} times: {_describe(exc)}") from None
                log.info("download of %s interrupted (%s); resuming", desc.digest, _describe(exc))
            finally:
                await response.aclose()
        if offset != desc.size or "sha256:" + hasher.hexdigest() != desc.digest:
            await asyncio.to_thread(partial.unlink, missing_ok=True)
            raise DigestMismatch(f"blob {desc.digest} from {resolved.endpoint}: received content does not match "
                                 f"its digest and size ({offset} bytes, expected {desc.size}); discarded")

    async def _stream_to_file(self, response: httpx.Response, partial: Path, *, offset: int,
                              hasher: Any, desc: Descriptor) -> int:
        """Append the response body to `partial` from `offset`, hashing as it goes; the new length."""
        fd = await asyncio.to_thread(os.open, partial, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        received, batch = offset, bytearray()
        try:
            await asyncio.to_thread(os.ftruncate, fd, offset)
            async for chunk in response.aiter_bytes():
                self.bytes_received += len(chunk)
                received += len(chunk)
                if received > desc.size:
                    raise DigestMismatch(f"blob {desc.digest}: registry sent more than the declared "
                                         f"{desc.size} bytes")
                batch += chunk
                if len(batch) >= _WRITE_BATCH:
                    offset = await asyncio.to_thread(_write_and_hash, fd, bytes(batch), offset, hasher)
                    batch.clear()
            if batch:
                offset = await asyncio.to_thread(_write_and_hash, fd, bytes(batch), offset, hasher)
            return offset
        except (httpx.TransportError, httpx.StreamError):
            if batch:  # keep what arrived, so the next attempt resumes after it
                await asyncio.to_thread(_write_and_hash, fd, bytes(batch), offset, hasher)
            raise
        finally:
            await asyncio.to_thread(os.close, fd)

    # -- HTTP with authentication ----------------------------------------------------------

    def _client(self, endpoint: Endpoint) -> httpx.AsyncClient:
        key = (endpoint.verify_tls, endpoint.ca_file)
        client = self._clients.get(key)
        if client is None:
            verify: bool | ssl.SSLContext = endpoint.verify_tls
            if endpoint.verify_tls and endpoint.ca_file:
                verify = ssl.create_default_context(cafile=endpoint.ca_file)
            client = httpx.AsyncClient(verify=verify, timeout=self.timeout, transport=self._transport,
                                       follow_redirects=True, headers={"User-Agent": _USER_AGENT})
            self._clients[key] = client
        return client

    async def _send(self, endpoint: Endpoint, repository: str, method: str, url: str, *,
                    headers: dict[str, str] | None = None) -> httpx.Response:
        """Send a request, answering one 401 challenge; the caller closes the (streamed) response."""
        client = self._client(endpoint)
        scope = f"repository:{repository}:pull"
        for attempt in range(2):
            request = client.build_request(method, url, headers=dict(headers or {}))
            authorization = self._authorization(endpoint, scope)
            if authorization:
                request.headers["Authorization"] = authorization
            try:
                response = await client.send(request, stream=True)
            except httpx.TransportError as exc:
                raise RegistryError(f"cannot reach registry {endpoint}: {_describe(exc)}") from None
            if response.status_code != 401 or attempt == 1:
                return response
            challenge = parse_challenge(response.headers.get("www-authenticate", ""))
            if challenge is None or not await self._answer(endpoint, scope, challenge):
                return response
            await response.aclose()
        raise AssertionError("unreachable")

    def _authorization(self, endpoint: Endpoint, scope: str) -> str | None:
        token = self._tokens.get((endpoint.url, scope))
        if token and token[1] > time.monotonic():
            return token[0]
        credential = self.auth.for_host(endpoint.host)
        if endpoint.url in self._basic and credential:
            return credential.basic_header()
        return None

    async def _answer(self, endpoint: Endpoint, scope: str, challenge: Challenge) -> bool:
        """Get what the challenge asks for; False when there is nothing better to send."""
        credential = self.auth.for_host(endpoint.host)
        if challenge.scheme == "basic":
            if not credential or endpoint.url in self._basic:
                return False
            self._basic.add(endpoint.url)
            return True
        if challenge.scheme != "bearer" or "realm" not in challenge.params:
            return False
        params = {"scope": challenge.params.get("scope", scope)}
        if "service" in challenge.params:
            params["service"] = challenge.params["service"]
        headers = {"Authorization": credential.basic_header()} if credential and credential.username else {}
        try:
            response = await self._client(endpoint).get(challenge.params["realm"], params=params, headers=headers)
        except httpx.TransportError as exc:
            raise RegistryError(f"cannot reach the token service {challenge.params['realm']}: "
                                f"{_describe(exc)}") from None
        if response.status_code != 200:
            raise RegistryError(f"token service {challenge.params['realm']} refused a token for {scope}: "
                                f"HTTP {response.status_code} {response.text[:200]}",
                                status=response.status_code, retriable=True)
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
            expires_in = float(body.get("expires_in") or 60)
        except (ValueError, AttributeError):
            token = None
        if not token:
            raise RegistryError(f"token service {challenge.params['realm']} sent no token")
        lifetime = max(expires_in - 10, 5)  # renew a little early
        self._tokens[(endpoint.url, scope)] = (f"Bearer {token}", time.monotonic() + lifetime)
        return True

    async def _read_limited(self, response: httpx.Response, limit: int, *, what: str) -> bytes:
        data = bytearray()
        async for chunk in response.aiter_bytes():
            self.bytes_received += len(chunk)
            data += chunk
            if len(data) > limit:
                raise DigestMismatch(f"{what}: larger than {limit} bytes; refusing")
        return bytes(data)

    async def _raise_for(self, response: httpx.Response, *, endpoint: Endpoint, what: str) -> None:
        try:
            body = await self._read_limited(response, 64 << 10, what="error body")
        except (DigestMismatch, httpx.HTTPError):
            body = b""
        code, message = _registry_message(body)
        status = response.status_code
        meaning = {401: "unauthorized", 403: "denied", 404: "not found", 429: "too many requests"}.get(
            status, "registry error" if status >= 500 else "unexpected answer")
        detail = f": {message}" if message else ""
        raise RegistryError(f"{what}: {meaning}{detail} (HTTP {status}{' ' + code if code else ''} "
                            f"from {endpoint})", status=status, code=code)


def _registry_message(body: bytes) -> tuple[str, str]:
    """The first (code, message) of a registry's JSON error body, if it has one."""
    import json

    try:
        errors = json.loads(body).get("errors") or []
        first = errors[0]
        return str(first.get("code", "")), str(first.get("message", ""))
    except (ValueError, AttributeError, IndexError, TypeError):
        return "", body.decode(errors="replace").strip()[:200]


def _describe(exc: BaseException) -> str:
    """The most specific reason in an exception chain ("[Errno 111] Connection refused")."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and (seen.errno or seen.strerror):
            return os.strerror(seen.errno).lower() if seen.errno else str(seen.strerror).lower()
        seen = seen.__cause__ or seen.__context__
    return str(exc) or type(exc).__name__


def _hash_existing(partial: Path, size: int) -> tuple[int, Any]:
    """Length and running hash of what an earlier attempt left in `partial` (nothing if too long)."""
    hasher = hashlib.sha256()
    try:
        with open(partial, "rb") as f:
            length = os.fstat(f.fileno()).st_size
            if length > size:
                partial.unlink()
                return 0, hasher
            while chunk := f.read(1 << 20):
                hasher.update(chunk)
            return length, hasher
    except FileNotFoundError:
        return 0, hasher


def _write_and_hash(fd: int, data: bytes, offset: int, hasher: Any) -> int:
    """Write `data` at `offset` and feed it to `hasher`; returns the offset after it."""
    hasher.update(data)
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written
    return offset
