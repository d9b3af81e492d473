"""Reads and compare-and-swap writes of API objects in etcd.

Every write is one etcd transaction. `create` succeeds only if the key does not
exist; `update` and `delete` succeed only if the key's mod_revision still equals
the resourceVersion the caller read (optimistic concurrency). A failed
precondition raises Conflict naming the current version, so callers re-read and
retry — exactly how Kubernetes clients handle HTTP 409.

The store knows nothing of kinds: callers pass the plural name and namespace.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, TypeVar

import aetcd
import aetcd.exceptions
import grpc

from controlplane.storage import codec, keys
from controlplane.storage.errors import AlreadyExists, Conflict, NotFound, StorageError, Unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")


def _etcd_errors(exc: BaseException) -> StorageError | None:
    if isinstance(exc, (aetcd.exceptions.ConnectionFailedError, aetcd.exceptions.ConnectionTimeoutError)):
        return Unavailable(f"etcd is unavailable: {exc}")
    if isinstance(exc, grpc.aio.AioRpcError) and exc.code() in (grpc.StatusCode.UNAVAILABLE,
                                                                 grpc.StatusCode.DEADLINE_EXCEEDED):
        return Unavailable(f"etcd is unavailable: {exc.details()}")
    if isinstance(exc, (asyncio.TimeoutError, ConnectionError)):
        return Unavailable(f"etcd is unavailable: {exc!r}")
    return None


def _with_version(obj: dict[str, Any], revision: int) -> dict[str, Any]:
    """What was written, as a reader gets it back (a shallow copy: the caller's dict is not changed)."""
    return {**obj, "metadata": {**(obj.get("metadata") or {}), "resourceVersion": str(revision)}}


class Store:
    def __init__(self, client: aetcd.Client, *, prefix: str = keys.DEFAULT_PREFIX):
        self.client = client
        self.prefix = prefix
        self.tx = client.transactions

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await fn()
        except StorageError:
            raise
        except Exception as exc:  # map etcd connectivity problems to Unavailable
            mapped = _etcd_errors(exc)
            if mapped is not None:
                raise mapped from None
            raise

    def key(self, plural: str, namespace: str, name: str) -> bytes:
        return keys.object_key(self.prefix, plural, namespace, name)

    async def create(self, plural: str, namespace: str, name: str, obj: dict[str, Any], *,
                     lease: int | None = None) -> dict[str, Any]:
        key = self.key(plural, namespace, name)
        value = codec.encode(obj)

        # The header revision of a one-put transaction is the new mod_revision.
        header_rev = await self._call(lambda: self._txn_revision(
            [self.tx.create(key) == 0], [self.tx.put(key, value, lease=lease)]))
        if header_rev is None:
            raise AlreadyExists(f'{plural} "{name}" already exists')
        return _with_version(obj, header_rev)

    async def _txn_revision(self, compare: list, success: list) -> int | None:
        """Run a transaction; its revision if it succeeded, else None."""
        from aetcd import rpc
        request = rpc.TxnRequest(compare=[c.build_message() for c in compare],
                                 success=self.client._ops_to_requests(success), failure=[])
        response = await self.client.kvstub.Txn(request, timeout=self.client._timeout,
                                                metadata=self.client.metadata)
        return response.header.revision if response.succeeded else None

    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        result = await self._call(lambda: self.client.get(self.key(plural, namespace, name)))
        if result is None:
            raise NotFound(f'{plural} "{name}" not found')
        return codec.decode(result.value, result.mod_revision)

    async def list(self, plural: str, namespace: str = "") -> tuple[list[dict[str, Any]], int]:
        """Every object of a type (in one namespace, or all) and the revision of the read."""
        prefix = (keys.namespace_prefix(self.prefix, plural, namespace) if namespace
                  else keys.type_prefix(self.prefix, plural))
        result = await self._call(lambda: self.client.get_prefix(prefix))
        items = [codec.decode(kv.value, kv.mod_revision) for kv in result.kvs]
        return items, result.header.revision

    async def probe(self, key_prefix: bytes, *, after: int) -> tuple[int, int, int]:
        """How far a copy of the range that is current at revision `after` is behind etcd:
        (etcd's revision, the newest mod_revision of a key written after `after` or 0, the
        number of keys in the range). One read of keys only; what a watch cache needs to
        tell whether it may serve a most-recent List (see Handlers.list)."""
        from aetcd import rpc, utils

        async def read() -> Any:
            request = rpc.RangeRequest(key=key_prefix, range_end=utils.prefix_range_end(key_prefix),
                                       keys_only=True, min_mod_revision=after + 1)
            return await self.client.kvstub.Range(request, timeout=self.client._timeout,
                                                  metadata=self.client.metadata)
        reply = await self._call(read)
        newest = max((kv.mod_revision for kv in reply.kvs), default=0)
        return reply.header.revision, newest, reply.count

    async def current_revision(self) -> int:
        """etcd's current revision (a cheap range read of an empty prefix)."""
        result = await self._call(lambda: self.client.get_prefix(b"/skiff/__revision__/", keys_only=True))
        return result.header.revision

    async def update(self, plural: str, namespace: str, name: str, obj: dict[str, Any], *,
                     expected_version: int, lease: int | None = None) -> dict[str, Any]:
        """Write obj if the stored object's mod_revision is still `expected_version`."""
        key = self.key(plural, namespace, name)
        value = codec.encode(obj)
        rev = await self._call(lambda: self._txn_revision(
            [self.tx.mod(key) == expected_version], [self.tx.put(key, value, lease=lease)]))
        if rev is None:
            await self._raise_conflict(plural, namespace, name, expected_version)
        return _with_version(obj, rev)

    async def _raise_conflict(self, plural: str, namespace: str, name: str, expected: int) -> None:
        current = await self._call(lambda: self.client.get(self.key(plural, namespace, name)))
        if current is None:
            raise NotFound(f'{plural} "{name}" not found')
        raise Conflict(f'Operation cannot be fulfilled on {plural} "{name}": the object has been modified '
                       f'(resourceVersion {expected} is stale, current is {current.mod_revision}); '
                       f'please apply your changes to the latest version and try again',
                       current_version=str(current.mod_revision))

    async def delete(self, plural: str, namespace: str, name: str, *,
                     expected_version: int | None = None) -> int:
        """Delete the key (if its mod_revision is still expected_version); return the revision."""
        key = self.key(plural, namespace, name)
        compare = [self.tx.mod(key) == expected_version] if expected_version else [self.tx.version(key) > 0]
        rev = await self._call(lambda: self._txn_revision(compare, [self.tx.delete(key)]))
        if rev is None:
            if expected_version:
                await self._raise_conflict(plural, namespace, name, expected_version)
            raise NotFound(f'{plural} "{name}" not found')
        return rev

    async def grant_lease(self, ttl: int) -> int:
        lease = await self._call(lambda: self.client.lease(ttl))
        return lease.id

    async def compact(self, revision: int) -> None:
        await self._call(lambda: self.client.compact(revision, physical=True))
