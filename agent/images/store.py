"""`ImageStore`: a node's images — pull, import, look up, remove, garbage-collect.

This is the package's front door for the agent and the runtime. Under its
root directory::

    blobs/sha256/<hex>          manifests and configs (blobs.py)
    layers/sha256/<hex>/fs      unpacked layers by diff_id (layers.py, unpack.py)
    ingest/<hex>.partial        layer downloads in progress, resumable (registry.py)
    tmp/                        work dirs; renamed into place when complete
    images.json                 names → images (catalog.py)

A pull resolves the reference at the registry (or its mirrors), then fetches
and unpacks, concurrently, only the layers the store lacks. Two pulls of one
image at once share one download; two images sharing a layer share one
unpack. Unpacking and other file-heavy steps run in threads.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from agent.images import gc as gc_policy
from agent.images.archive import Archive, ArchiveImage
from agent.images.auth import RegistryAuth
from agent.images.blobs import BlobStore
from agent.images.catalog import Catalog, ImageRecord
from agent.images.digest import DigestReader, digest_hex
from agent.images.errors import ArchiveError, DigestMismatch, ImageError, LayerError, PullError
from agent.images.image import Image
from agent.images.layers import LayerStore
from agent.images.manifest import MAX_CONFIG_BYTES, Descriptor, ImageConfig, check_layers_match, parse_config
from agent.images.mirrors import MirrorConfig
from agent.images.platform import Platform
from agent.images.reference import DIGEST_RE, InvalidReference, Reference, normalize_reference
from agent.images.unpack import UnpackLimits, remove_tree

if TYPE_CHECKING:
    # The registry client and httpx under it (about 4 MiB and a hundred modules, click and
    # pygments included) are imported by the first pull from a registry, not with the store:
    # a node that runs pre-loaded or already-pulled images never needs them.
    import httpx

    from agent.images.registry import RegistryClient, ResolvedManifest

log = logging.getLogger(__name__)

PULL_POLICIES = ("Always", "IfNotPresent", "Never")
EventSink = Callable[[str, str], None]


class ImageNotFound(ImageError, KeyError):
    """No image in the store answers to the given reference."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "image not found"


@dataclass(frozen=True)
class PullStats:
    layers: int
    cached: int
    bytes_downloaded: int
    seconds: float


class ImageStore:
    def __init__(self, root: Path, *, mirrors: MirrorConfig | None = None, platform: Platform | None = None,
                 limits: UnpackLimits = UnpackLimits(), max_concurrent_downloads: int = 3,
                 clock: Callable[[], float] = time.time,
                 disk_usage: Callable[[Path], gc_policy.DiskUsage] = gc_policy.disk_usage,
                 whiteout_format: str | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.root = Path(root)
        self.mirrors = mirrors or MirrorConfig()
        self.platform = platform or Platform.host()
        self.max_concurrent_downloads = max_concurrent_downloads
        self.clock = clock
        self._disk_usage = disk_usage
        self._transport = transport
        self.tmp = self.root / "tmp"
        self.ingest = self.root / "ingest"
        for directory in (self.root, self.ingest):
            directory.mkdir(parents=True, exist_ok=True)
        remove_tree(self.tmp)  # left-overs of an interrupted unpack or import
        self.tmp.mkdir()
        self.blobs = BlobStore(self.root / "blobs", tmp=self.tmp)
        self.layers = LayerStore(self.root / "layers", tmp=self.tmp, limits=limits, whiteout_format=whiteout_format)
        self.catalog = Catalog(self.root / "images.json", tmp=self.tmp)
        self.bytes_downloaded = 0  # body bytes from registries, over the store's lifetime
        self.last_pull: PullStats | None = None
        self._inflight: dict[str, asyncio.Task[tuple[Image, PullStats]]] = {}
        self._layer_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._configs: dict[str, ImageConfig] = {}

    # -- pulling ---------------------------------------------------------------------------

    async def pull(self, ref: str, *, policy: str = "IfNotPresent", auth: RegistryAuth | None = None,
                   on_event: EventSink | None = None) -> Image:
        """Make `ref` present according to `policy`; raises PullError (reason for the pod's status)."""
        emit = on_event or (lambda reason, message: None)
        if policy not in PULL_POLICIES:
            raise ValueError(f"imagePullPolicy must be one of {', '.join(PULL_POLICIES)}, not {policy!r}")
        try:
            reference = normalize_reference(ref)
        except InvalidReference as exc:
            raise PullError(f"Failed to apply default image tag {ref!r}: {exc}", reason="InvalidImageName") from None
        present = self.get(str(reference))
        if policy == "Never" and present is None:
            raise PullError(f'Container image "{ref}" is not present with pull policy of Never',
                            reason="ErrImageNeverPull")
        if present is not None and policy != "Always":
            emit("Pulled", f'Container image "{ref}" already present on machine')
            return present
        emit("Pulling", f'Pulling image "{ref}"')
        key = str(reference)
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._pull_from_registry(reference, auth), name=f"pull {key}")
            self._inflight[key] = task
            task.add_done_callback(lambda _: self._inflight.pop(key, None))
        try:
            image, stats = await asyncio.shield(task)
        except (ImageError, OSError) as exc:
            raise PullError(f'failed to pull image "{ref}": {exc}') from None
        self.last_pull = stats
        emit("Pulled", f'Successfully pulled image "{ref}" in {_duration(stats.seconds)} '
                       f"({stats.layers} layers, {stats.cached} cached)")
        return image

    async def _pull_from_registry(self, ref: Reference, auth: RegistryAuth | None) -> tuple[Image, PullStats]:
        from agent.images.registry import RegistryClient  # see TYPE_CHECKING above
        started = time.monotonic()
        client = RegistryClient(mirrors=self.mirrors, auth=auth, platform=self.platform, transport=self._transport)
        try:
            resolved = await client.resolve(ref)
            manifest = resolved.manifest
            if self.blobs.has(manifest.config.digest):
                config_bytes = await asyncio.to_thread(self.blobs.get, manifest.config.digest)
            else:
                config_bytes = await client.fetch_blob_bytes(resolved, manifest.config, limit=MAX_CONFIG_BYTES)
            _, diff_ids = parse_config(config_bytes)
            check_layers_match(manifest, diff_ids)
            wanted = dict(zip(diff_ids, manifest.layers))  # one fetch per distinct layer
            cached = sum(1 for d in wanted if self.layers.has(d))
            slots = asyncio.Semaphore(self.max_concurrent_downloads)
            async with asyncio.TaskGroup() as group:
                for diff_id, descriptor in wanted.items():
                    group.create_task(self._ensure_layer(client, resolved, descriptor, diff_id, slots=slots))
            await asyncio.to_thread(self._store_blobs, resolved.manifest_bytes, config_bytes)
        except* Exception as group_error:
            raise _first(group_error) from None
        finally:
            self.bytes_downloaded += client.bytes_received
            received = client.bytes_received
            await client.aclose()
        names = [f"{ref.name}@{resolved.top_digest}"]
        if ref.digest is None:
            names.append(str(ref))
        image = await asyncio.to_thread(
            self._record, names, digest=resolved.digest, config_digest=manifest.config.digest, diff_ids=diff_ids,
            layer_digests=[d.digest for d in manifest.layers], media_type=resolved.media_type)
        stats = PullStats(layers=len(manifest.layers), cached=cached, bytes_downloaded=received,
                          seconds=time.monotonic() - started)
        return image, stats

    def _record(self, names: list[str], *, digest: str, config_digest: str, diff_ids: list[str],
                layer_digests: list[str], media_type: str) -> Image:
        """Enter a complete image into the catalog under `names` (blocking: reads layer sizes)."""
        now = self.clock()
        record = ImageRecord(digest=digest, config_digest=config_digest, diff_ids=diff_ids,
                             layer_digests=layer_digests, media_type=media_type,
                             size=sum(self.layers.info(d).size for d in set(diff_ids)), created=now, last_used=now)
        return self._image(self.catalog.add(record, names))

    async def _ensure_layer(self, client: RegistryClient, resolved: ResolvedManifest, descriptor: Descriptor,
                            diff_id: str, *, slots: asyncio.Semaphore) -> None:
        """Download and unpack one layer unless present; one at a time per layer across pulls."""
        lock = self._layer_locks.get(diff_id)
        if lock is None:
            lock = self._layer_locks[diff_id] = asyncio.Lock()
        async with lock:  # a second image with this layer waits here, then finds it present
            if self.layers.has(diff_id):
                return
            partial = self.ingest / f"{digest_hex(descriptor.digest)}.partial"
            async with slots:  # at most max_concurrent_downloads at once; unpacking is not limited
                await client.fetch_blob_to_file(resolved, descriptor, partial)
            try:
                await asyncio.to_thread(self._unpack_file, partial, diff_id)
            finally:
                await asyncio.to_thread(partial.unlink, missing_ok=True)

    def _unpack_file(self, path: Path, diff_id: str) -> None:
        with open(path, "rb") as f:
            self.layers.unpack(f, diff_id)

    def _store_blobs(self, *blobs: bytes) -> None:
        for data in blobs:
            self.blobs.put(data)

    # -- importing archives ----------------------------------------------------------------

    async def load_archive(self, path: Path, *, base_name: str | None = None) -> list[Image]:
        """Import an OCI layout (directory or tarball) or a `docker save` tarball."""
        return await asyncio.to_thread(self._load_archive, Path(path), base_name)

    def _load_archive(self, path: Path, base_name: str | None) -> list[Image]:
        if not path.exists():
            raise ArchiveError(f"{path}: no such file or directory")
        images = []
        with Archive(path, platform=self.platform, base_name=base_name) as archive:
            for item in archive.images:
                images.append(self._import(archive, item))
        return images

    def _import(self, archive: Archive, item: ArchiveImage) -> Image:
        for layer in item.layers:
            if self.layers.has(layer.diff_id):
                continue
            try:
                with archive.open_layer(layer) as raw:
                    if layer.descriptor.digest == layer.diff_id:  # uncompressed: the diff_id check verifies it
                        self.layers.unpack(raw, layer.diff_id)
                    else:
                        reader = DigestReader(raw, expected_digest=layer.descriptor.digest,
                                              expected_size=layer.descriptor.size, what="layer blob")
                        self.layers.unpack(reader, layer.diff_id, verify=reader.verify)  # type: ignore[arg-type]
            except (LayerError, DigestMismatch) as exc:
                raise type(exc)(f"{archive.path}: layer {layer.diff_id}: {exc}") from None
        self._store_blobs(item.manifest_bytes, item.config_bytes)
        names = list(item.names)
        for name in item.names:
            repo = normalize_reference(name).name
            names += [f"{repo}@{top}" for top in item.top_digests]
        return self._record(names, digest=item.digest, config_digest=item.config_digest,
                            diff_ids=[layer.diff_id for layer in item.layers],
                            layer_digests=[layer.descriptor.digest for layer in item.layers],
                            media_type=item.media_type)

    # -- looking up ------------------------------------------------------------------------

    def get(self, ref: str) -> Image | None:
        """The image `ref` names (a reference, repo@digest, or a manifest/config digest), if present."""
        record = self._find(ref)
        return self._image(record) if record is not None else None

    def _find(self, ref: str, *, complete: bool = True) -> ImageRecord | None:
        """The record `ref` names; with `complete`, only if all its layers are on disk."""
        record = self._lookup(ref)
        if record is not None and complete and not all(self.layers.has(d) for d in record.diff_ids):
            return None  # a layer went missing: treat the image as absent so it is pulled again
        return record

    def _lookup(self, ref: str) -> ImageRecord | None:
        if DIGEST_RE.match(ref):
            return self.catalog.by_digest(ref)
        try:
            reference = normalize_reference(ref)
        except InvalidReference:
            return None
        if reference.digest:
            by_name = self.catalog.by_name(f"{reference.name}@{reference.digest}")
            if by_name is not None:
                return by_name
            record = self.catalog.by_digest(reference.digest)
            if record and any(n.startswith(reference.name + "@") or n.startswith(reference.name + ":")
                              for n in record.names):
                return record
            return None
        return self.catalog.by_name(str(reference))

    def list(self) -> list[Image]:
        with self.catalog.lock:
            records = list(self.catalog.records.values())
        return sorted((self._image(r) for r in records), key=lambda i: (i.names[:1], i.digest))

    def node_images(self, *, limit: int = 50) -> list[dict[str, object]]:
        """The Node status ``images`` list (largest first), which ImageLocality scores on."""
        images = sorted((i for i in self.list() if i.names), key=lambda i: i.size, reverse=True)[:limit]
        return [{"names": list(i.names), "sizeBytes": i.size} for i in images]

    def _image(self, record: ImageRecord) -> Image:
        config = self._configs.get(record.config_digest)
        if config is None:
            config, _ = parse_config(self.blobs.get(record.config_digest))
            self._configs[record.config_digest] = config
        return Image(digest=record.digest, names=list(record.names), config=config,
                     layers=[self.layers.fs(d) for d in record.diff_ids], size=record.size,
                     id=record.config_digest, diff_ids=list(record.diff_ids), last_used=record.last_used)

    # -- removing --------------------------------------------------------------------------

    def remove(self, ref: str) -> None:
        """Untag `ref`, or remove the image when `ref` is a digest or its last tag.

        Layers and blobs no image uses any more are deleted. Blocking file work: call it
        from a thread. The caller makes sure no container runs from the image (the store
        does not know about containers).
        """
        with self.catalog.lock:
            record = self._find(ref, complete=False)
            if record is None:
                raise ImageNotFound(f"image {ref!r} not found")
            if DIGEST_RE.match(ref) or "@" in ref:
                self.catalog.delete(record.digest)
            else:
                name = str(normalize_reference(ref))
                record.names = [n for n in record.names if n != name]
                if not any("@" not in n for n in record.names):  # no tag left, only repo@digest names
                    self.catalog.delete(record.digest)
                else:
                    self.catalog.save()
        self._delete_unreferenced()

    def _delete_unreferenced(self) -> int:
        """Delete layers and blobs no image refers to; returns bytes freed."""
        with self.catalog.lock:
            layers, blobs = self.catalog.referenced()
            freed = 0
            for diff_id in self.layers.diff_ids() - layers:
                freed += self.layers.remove(diff_id)
            for digest in self.blobs.digests() - blobs:
                freed += self.blobs.remove(digest)
            return freed

    def gc(self, *, in_use: set[str], high_percent: int = 85, low_percent: int = 80) -> list[str]:
        """Remove unused images, least recently used first, when the disk is above `high_percent`.

        `in_use` holds references or digests of images containers use; those are kept
        and marked used now. Returns the digests of the removed images. Blocking.
        """
        gc_policy.check_thresholds(high_percent, low_percent)
        now = self.clock()
        with self.catalog.lock:
            used = {r.digest for r in (self._find(ref, complete=False) for ref in in_use) if r is not None}
            for digest in used:
                self.catalog.records[digest].last_used = now
            if used:
                self.catalog.save()
            amount = gc_policy.bytes_to_free(self._disk_usage(self.root), high_percent=high_percent,
                                             low_percent=low_percent)
            if amount == 0:
                return []
            sizes = {d: self.layers.info(d).size for d in self.layers.diff_ids()}
            chosen = gc_policy.plan(list(self.catalog.records.values()), in_use=used, layer_sizes=sizes,
                                    amount=amount)
            for digest in chosen:
                self.catalog.delete(digest)
            freed = self._delete_unreferenced()
        log.info("image GC: removed %d image(s), freed %d bytes (wanted %d)", len(chosen), freed, amount)
        return chosen


def _first(group: BaseException) -> BaseException:
    """The first real error of an exception group from a TaskGroup."""
    while isinstance(group, BaseExceptionGroup):
        group = group.exceptions[0]
    return group


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.1f}s"
