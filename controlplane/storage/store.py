"""Reads and compare-and-swap writes of API objects in etcd.

Every write is one etcd transaction. `create` succeeds only if the key does not
exist; `update` and `delete` succeed only if the key's mod_revision still equals
the resourceVersion the caller read (optimistic concurrency). A failed
precondition raises Conflict naming the current version (read by the failure
branch of the same transaction), so callers re-read and retry — exactly how
Kubernetes clients handle HTTP 409.

The transactions go through a GroupCommitter (group_commit.py): writes that
arrive while one is in flight travel to etcd together, each keeping its own
compare and its own result, so each caller sees what it would have seen alone —
except that the objects written together share one resourceVersion.

The store knows nothing of kinds: callers pass the plural name and namespace.
A write may carry `Claims`: keys outside the object (a Service's cluster IP,
say) that must be absent and are written, or released, in the object's own
transaction — so a claim exists exactly as long as the object that holds it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, TypeVar

import aetcd
import aetcd.exceptions
import grpc

from aetcd import rpc

from controlplane.storage import codec, keys
from controlplane.storage.group_commit import GroupCommitter, TxnResult
from controlplane.storage.errors import AlreadyExists, ClaimsTaken, Conflict, NotFound, StorageError, Unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")
# Delays before each retry of a read that met an unavailable etcd (a member failing over).
READ_RETRY_DELAYS = (0.05, 0.2, 0.5)


def _etcd_errors(exc: BaseException) -> StorageError | None:
    if isinstance(exc, (aetcd.exceptions.ConnectionFailedError, aetcd.exceptions.ConnectionTimeoutError)):
        return Unavailable(f"etcd is unavailable: {exc}")
    if isinstance(exc, grpc.aio.AioRpcError) and exc.code() in (grpc.StatusCode.UNAVAILABLE,
                                                                 grpc.StatusCode.DEADLINE_EXCEEDED):
        return Unavailable(f"etcd is unavailable: {exc.details()}")
    if isinstance(exc, (asyncio.TimeoutError, ConnectionError)):
        return Unavailable(f"etcd is unavailable: {exc!r}")
    return None


# The few etcd messages the writes are made of, built directly (aetcd's op objects
# are converted to these anyway, at a cost on every write).
# (The enum values are looked up once: each lookup through protobuf's wrapper costs.)
_EQUAL, _GREATER = rpc.Compare.CompareResult.EQUAL, rpc.Compare.CompareResult.GREATER
_CREATE, _MOD, _VERSION = (rpc.Compare.CompareTarget.CREATE, rpc.Compare.CompareTarget.MOD,
                           rpc.Compare.CompareTarget.VERSION)


def absent(key: bytes) -> Any:
    """Compare: the key does not exist (its create_revision is 0)."""
    return rpc.Compare(key=key, result=_EQUAL, target=_CREATE, create_revision=0)


def at_version(key: bytes, mod_revision: int) -> Any:
    """Compare: the key was last written at mod_revision."""
    return rpc.Compare(key=key, result=_EQUAL, target=_MOD, mod_revision=mod_revision)


def exists(key: bytes) -> Any:
    """Compare: the key exists (its version is above 0)."""
    return rpc.Compare(key=key, result=_GREATER, target=_VERSION, version=0)


def put(key: bytes, value: bytes, lease: int | None = None) -> Any:
    return rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value, lease=lease or 0))


def read(key: bytes) -> Any:
    return rpc.RequestOp(request_range=rpc.RangeRequest(key=key))


def revision_of(key: bytes) -> Any:
    """Read the key's revisions only, not its value (what a failed compare needs to say why)."""
    return rpc.RequestOp(request_range=rpc.RangeRequest(key=key, keys_only=True))


def remove(key: bytes) -> Any:
    return rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=key))


class Claims:
    """Keys written with an object in one transaction: `take` (key → value) only if each
    key is absent, `release` deleted. What a kind's strategy reserves (strategy.py)."""

    def __init__(self, take: dict[bytes, bytes] | None = None, release: list[bytes] | None = None):
        self.take = dict(take or {})
        self.release = list(release or [])

    def __bool__(self) -> bool:
        return bool(self.take or self.release)

    def compares(self) -> list[Any]:
        return [absent(k) for k in self.take]

    def ops(self) -> list[Any]:
        return [put(k, v) for k, v in self.take.items()] + [remove(k) for k in self.release]

    def reads(self) -> list[Any]:
        return [read(k) for k in self.take]

    def keys(self) -> tuple[bytes, ...]:
        return (*self.take, *self.release)

    def size(self) -> int:
        return sum(len(k) + len(v) for k, v in self.take.items()) + sum(len(k) for k in self.release)

    def taken(self, responses: Any) -> dict[bytes, bytes]:
        """From a failed transaction's reads (in `reads()` order): the claimed keys held by
        someone else, and their values."""
        out = {}
        for response in responses:
            for kv in response.response_range.kvs:
                out[bytes(kv.key)] = bytes(kv.value)
        return out


def _with_version(obj: dict[str, Any], revision: int) -> dict[str, Any]:
    """What was written, as a reader gets it back (a shallow copy: the caller's dict is not changed)."""
    return {**obj, "metadata": {**(obj.get("metadata") or {}), "resourceVersion": str(revision)}}


class Store:
    def __init__(self, client: aetcd.Client, *, prefix: str = keys.DEFAULT_PREFIX):
        self.client = client
        self.prefix = prefix
        self.committer = GroupCommitter(client)

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

    async def _read(self, fn: Callable[[], Awaitable[T]]) -> T:
        """A read, retried (after each of READ_RETRY_DELAYS) when etcd is unavailable: a read has no
        effect, so trying again — on the member the client failed over to — is safe."""
        for delay in READ_RETRY_DELAYS:
            try:
                return await self._call(fn)
            except Unavailable as exc:
                log.debug("etcd read failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
        return await self._call(fn)

    def key(self, plural: str, namespace: str, name: str) -> bytes:
        return keys.object_key(self.prefix, plural, namespace, name)

    async def create(self, plural: str, namespace: str, name: str, obj: dict[str, Any], *,
                     lease: int | None = None, value: bytes | None = None,
                     claims: Claims | None = None) -> dict[str, Any]:
        """Write obj if the key does not exist. `value`: obj already encoded (codec.encode).
        With claims: also only if their keys are absent, else ClaimsTaken."""
        key = self.key(plural, namespace, name)
        if value is None:
            value = codec.encode(obj)
        if claims:
            result = await self.txn([absent(key), *claims.compares()], [put(key, value, lease), *claims.ops()],
                                    [revision_of(key), *claims.reads()], keys=(key, *claims.keys()),
                                    size=len(key) + len(value) + claims.size())
            if not result.succeeded:
                if result.responses[0].response_range.kvs:
                    raise AlreadyExists(f'{plural} "{name}" already exists')
                raise ClaimsTaken(claims.taken(result.responses[1:]))
            return _with_version(obj, result.revision)
        result = await self.txn([absent(key)], [put(key, value, lease)], [], keys=(key,), size=len(key) + len(value))
        if not result.succeeded:
            raise AlreadyExists(f'{plural} "{name}" already exists')
        # The revision of the transaction that wrote it is the new mod_revision.
        return _with_version(obj, result.revision)

    async def txn(self, compare: list[Any], success: list[Any], failure: list[Any], *,
                  keys: tuple[bytes, ...], size: int) -> TxnResult:
        """Run one transaction (rpc.Compare and rpc.RequestOp messages; see absent, put, ...)
        through the group committer. `keys`: every key it writes; `size`: about its bytes."""
        return await self._call(lambda: self.committer.txn(compare, success, failure, keys=keys, size=size))

    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        """One object, read from etcd (a linearizable read). The read travels through the group
        committer as a transaction of one range, so gets that arrive while etcd is busy leave
        with the queued writes (or each other) in one etcd call instead of a gRPC call each —
        an etcd call was a third of a get's CPU in the API server. A batch that only reads is
        a read in etcd too (no raft proposal), and the read sees everything written before it
        was sent."""
        key = self.key(plural, namespace, name)
        result = await self._read(lambda: self.committer.txn([], [read(key)], [], keys=(), size=len(key)))
        kvs = result.responses[0].response_range.kvs
        if not kvs:
            raise NotFound(f'{plural} "{name}" not found')
        return codec.decode(kvs[0].value, kvs[0].mod_revision)

    async def list(self, plural: str, namespace: str = "") -> tuple[list[dict[str, Any]], int]:
        """Every object of a type (in one namespace, or all) and the revision of the read."""
        prefix = (keys.namespace_prefix(self.prefix, plural, namespace) if namespace
                  else keys.type_prefix(self.prefix, plural))
        result = await self._read(lambda: self.client.get_prefix(prefix))
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
        reply = await self._read(read)
        newest = max((kv.mod_revision for kv in reply.kvs), default=0)
        return reply.header.revision, newest, reply.count

    async def current_revision(self) -> int:
        """etcd's current revision (a cheap range read of an empty prefix)."""
        result = await self._read(lambda: self.client.get_prefix(b"/skiff/__revision__/", keys_only=True))
        return result.header.revision

    async def update(self, plural: str, namespace: str, name: str, obj: dict[str, Any], *,
                     expected_version: int, lease: int | None = None, value: bytes | None = None,
                     claims: Claims | None = None) -> dict[str, Any]:
        """Write obj if the stored object's mod_revision is still `expected_version`.
        `value`: obj already encoded (codec.encode). With claims: also only if their keys
        are absent, else ClaimsTaken; released keys are deleted."""
        key = self.key(plural, namespace, name)
        if value is None:
            value = codec.encode(obj)
        claims = claims or Claims()
        result = await self.txn([at_version(key, expected_version), *claims.compares()],
                                [put(key, value, lease), *claims.ops()], [revision_of(key), *claims.reads()],
                                keys=(key, *claims.keys()), size=len(key) + len(value) + claims.size())
        if not result.succeeded:
            kvs = result.responses[0].response_range.kvs
            if claims.take and kvs and kvs[0].mod_revision == expected_version:
                raise ClaimsTaken(claims.taken(result.responses[1:]))
            self._raise_conflict(result, plural, name, expected_version)
        return _with_version(obj, result.revision)

    @staticmethod
    def _raise_conflict(result: TxnResult, plural: str, name: str, expected: int) -> None:
        """A write's compare failed: say why, from what its failure branch read."""
        kvs = result.responses[0].response_range.kvs
        if not kvs:
            raise NotFound(f'{plural} "{name}" not found')
        current = kvs[0].mod_revision
        raise Conflict(f'Operation cannot be fulfilled on {plural} "{name}": the object has been modified '
                       f'(resourceVersion {expected} is stale, current is {current}); '
                       f'please apply your changes to the latest version and try again',
                       current_version=str(current))

    async def delete(self, plural: str, namespace: str, name: str, *,
                     expected_version: int | None = None, claims: Claims | None = None) -> int:
        """Delete the key (if its mod_revision is still expected_version); return the revision.
        claims: keys released with it (`release`; `take` is not used on delete)."""
        key = self.key(plural, namespace, name)
        compare = at_version(key, expected_version) if expected_version else exists(key)
        released = [remove(k) for k in claims.release] if claims else []
        result = await self.txn([compare], [remove(key), *released], [revision_of(key)],
                                keys=(key, *(claims.release if claims else ())), size=len(key))
        if not result.succeeded:
            if expected_version:
                self._raise_conflict(result, plural, name, expected_version)
            raise NotFound(f'{plural} "{name}" not found')
        return result.revision

    async def read_prefix(self, prefix: bytes, *, keys_only: bool = False) -> list[tuple[bytes, bytes]]:
        """(key, value) of every key under a raw prefix (records outside the object layout,
        such as allocation claims); values are b"" with keys_only."""
        result = await self._call(lambda: self.client.get_prefix(prefix, keys_only=keys_only))
        return [(bytes(kv.key), b"" if keys_only else bytes(kv.value)) for kv in result.kvs]

    async def put_record(self, key: bytes, value: bytes, *, lease: int | None = None) -> None:
        """Write a raw record (not an API object), optionally under a lease."""
        await self._call(lambda: self.client.put(key, value, lease=lease))

    async def refresh_lease(self, lease_id: int) -> int:
        """Keep a lease alive; its remaining TTL (0 or less: it expired)."""
        response = await self._call(lambda: self.client.refresh_lease(lease_id))
        return int(response.TTL) if response is not None else 0

    async def grant_lease(self, ttl: int) -> int:
        lease = await self._call(lambda: self.client.lease(ttl))
        return lease.id

    async def compact(self, revision: int) -> None:
        await self._call(lambda: self.client.compact(revision, physical=True))
