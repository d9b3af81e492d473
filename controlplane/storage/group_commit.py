"""Group commit: the small etcd transactions of many callers, sent to etcd as one.

Every write the API server makes is one compare-and-swap transaction ("create k
if it does not exist", "put k if its mod_revision is still 41"). Each
transaction sent on its own costs a gRPC call in the API server (a large share
of a create's CPU) and a raft proposal with a WAL fsync in etcd. So while one
transaction is in flight, the writes that arrive meanwhile queue here, and as
soon as it returns they leave together as ONE etcd transaction — the way a
database's group commit shares one log flush among many transactions. There is
no timer: a lone write leaves at once, exactly as it did before, and batches
form only when writes arrive faster than etcd answers — exactly when saving
calls matters (the scheduler's BatchBinder works the same way).

How one caller's failed compare is kept from failing its neighbours: etcd's
compares are all-or-nothing for one transaction, and it does not say which
compare failed. But etcd (since 3.3) lets a transaction's operations be
transactions themselves. A batch is therefore an outer transaction without
compares whose operations are the callers' own transactions, unchanged, each
with its own compare, success and failure branch:

    Txn(success=[Txn(compare=[create(k1) == 0], success=[put k1], failure=[]),
                 Txn(compare=[mod(k2) == 41],   success=[put k2], failure=[get k2]),
                 ...])

etcd evaluates every nested compare on its own and reports per nested
transaction whether it succeeded, so each caller gets exactly the answer it
would have got alone. What they share is the revision: everything written by
one etcd transaction has the same mod_revision, so the objects of a batch get
the same resourceVersion (the watch cache and its watchers handle that; see
Subscription.batches).

Three rules etcd imposes shape a batch:

- no key may be written twice in one transaction ("duplicate key given in txn
  request"), so a write to a key already in the batch waits for the next one —
  which also serialises two concurrent creates of one name: the second then
  finds the key taken and fails on its own;
- at most MAX_TXN_OPS operations (etcd's --max-txn-ops, 128 by default), and a
  nested transaction's own operations count against what its parent has left;
- at most about 1.5 MiB per request (--max-request-bytes), so a batch stops
  growing at MAX_BATCH_BYTES, and a larger write goes alone.

Should etcd still reject a whole batch for something one member did (a lease
that expired, say), the members are re-run one by one, so the error reaches only
the caller who caused it. Connectivity errors are not re-run: the batch may have
been applied, and every member gets the error, as each would have on its own.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

import aetcd
import grpc
from aetcd import rpc

log = logging.getLogger(__name__)

MAX_TXN_OPS = 128               # etcd's default --max-txn-ops
MAX_BATCH_BYTES = 1024 * 1024   # under etcd's default --max-request-bytes (1.5 MiB)
MAX_BATCH = 64                  # members per batch


@dataclass(slots=True)
class TxnResult:
    """What one caller's transaction did: the branch taken, the revision of the
    transaction that carried it, and the results of that branch's operations."""
    succeeded: bool
    revision: int
    responses: Sequence[Any]    # rpc.ResponseOp, one per operation of the branch taken


@dataclass(slots=True)
class _Member:
    request: Any                # this caller's own rpc.TxnRequest
    keys: tuple[bytes, ...]     # the keys it writes (puts and deletes)
    size: int                   # about how many bytes it adds to a request
    ops: int                    # what etcd counts against --max-txn-ops for it
    future: asyncio.Future = field(repr=False)


def _is_connectivity_error(exc: BaseException) -> bool:
    """Errors after which etcd may or may not have applied the transaction."""
    if isinstance(exc, grpc.aio.AioRpcError):
        return exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                              grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN)
    return not isinstance(exc, Exception) or isinstance(
        exc, (aetcd.exceptions.ConnectionFailedError, aetcd.exceptions.ConnectionTimeoutError,
              asyncio.TimeoutError, ConnectionError))


class GroupCommitter:
    """Sends callers' transactions to etcd, several in one when they queue up."""

    def __init__(self, client: aetcd.Client, *, max_in_flight: int = 1, max_batch: int = MAX_BATCH,
                 max_bytes: int = MAX_BATCH_BYTES):
        self.client = client
        self.max_in_flight = max_in_flight
        self.max_batch = max_batch
        self.max_bytes = max_bytes
        self._pending: collections.deque[_Member] = collections.deque()
        self._in_flight = 0
        self._tasks: set[asyncio.Task] = set()
        # For the stats (and the tests): etcd transactions sent, and callers' transactions carried.
        self.transactions = 0
        self.members = 0

    async def txn(self, compare: list[Any], success: list[Any], failure: list[Any], *,
                  keys: tuple[bytes, ...], size: int) -> TxnResult:
        """Run one transaction (rpc.Compare and rpc.RequestOp messages), maybe in a batch.
        `keys` are the keys its operations write, `size` about how many bytes they hold."""
        request = rpc.TxnRequest(compare=compare, success=success, failure=failure)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending.append(_Member(request, keys, size, max(len(compare), len(success), len(failure)), future))
        self._send_next()
        return await future

    # -- forming batches -------------------------------------------------------------

    def _send_next(self) -> None:
        while self._pending and self._in_flight < self.max_in_flight:
            batch = self._take_batch()
            if not batch:
                continue
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._send(batch), name="etcd-group-commit")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _take_batch(self) -> list[_Member]:
        """The oldest queued writes that fit in one etcd transaction. A write that cannot
        join (its key is taken, or it would break a limit) stays queued, in order."""
        batch: list[_Member] = []
        written: set[bytes] = set()
        size = widest = 0
        kept: collections.deque[_Member] = collections.deque()
        pending = self._pending
        while pending:
            member = pending.popleft()
            if member.future.done():   # its caller was cancelled before it was sent: drop it
                continue
            fits = (not batch or (
                len(batch) < self.max_batch
                and size + member.size <= self.max_bytes
                # etcd allows a nested transaction as many operations as its parent has left.
                and len(batch) + 1 + max(widest, member.ops) <= MAX_TXN_OPS
                and written.isdisjoint(member.keys)))
            if not fits:
                kept.append(member)
                if len(batch) >= self.max_batch or len(kept) >= self.max_batch:
                    break   # full, or enough looked at: the rest waits for the next batch
                continue
            batch.append(member)
            written.update(member.keys)
            size += member.size
            widest = max(widest, member.ops)
        kept.extend(pending)
        self._pending = kept
        return batch

    # -- sending ---------------------------------------------------------------------------

    async def _send(self, batch: list[_Member]) -> None:
        try:
            if len(batch) == 1:
                await self._send_alone(batch[0])
            else:
                await self._send_batch(batch)
        finally:
            self._in_flight -= 1
            self._send_next()

    async def _call(self, request: Any) -> Any:
        self.transactions += 1
        return await self.client.kvstub.Txn(request, timeout=self.client._timeout, metadata=self.client.metadata)

    async def _send_alone(self, member: _Member) -> None:
        """The member's own transaction, exactly as it would be sent without batching."""
        self.members += 1
        try:
            reply = await self._call(member.request)
        except BaseException as exc:
            _fail(member, exc)
            if not isinstance(exc, Exception):
                raise
            return
        _resolve(member, TxnResult(reply.succeeded, reply.header.revision, reply.responses))

    async def _send_batch(self, batch: list[_Member]) -> None:
        request = rpc.TxnRequest(success=[rpc.RequestOp(request_txn=m.request) for m in batch])
        try:
            reply = await self._call(request)
        except BaseException as exc:
            if isinstance(exc, Exception) and not _is_connectivity_error(exc):
                # etcd refused the whole batch (nothing was applied) for something in it:
                # run each member alone, so only the one at fault gets the error.
                log.info("etcd refused a batch of %d transactions (%s); sending them one by one",
                         len(batch), exc.details() if isinstance(exc, grpc.aio.AioRpcError) else exc)
                await asyncio.gather(*(self._send_alone(m) for m in batch))
                return
            for member in batch:
                _fail(member, exc)
            if not isinstance(exc, Exception):
                raise
            return
        self.members += len(batch)
        revision = reply.header.revision
        for member, response in zip(batch, reply.responses):
            nested = response.response_txn
            _resolve(member, TxnResult(nested.succeeded, revision, nested.responses))


def _resolve(member: _Member, result: TxnResult) -> None:
    if not member.future.done():   # its caller may have been cancelled meanwhile
        member.future.set_result(result)


def _fail(member: _Member, exc: BaseException) -> None:
    if not member.future.done():
        if isinstance(exc, asyncio.CancelledError):
            member.future.cancel()
        else:
            member.future.set_exception(exc)
