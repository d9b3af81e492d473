"""The watch cache: one etcd watch per resource type, fanned out to every API watcher.

Kubernetes learned this the hard way: 5,000 kubelets each holding an etcd watch
melt etcd. Here each resource type has one `WatchCache`; it lists the type once,
then follows a single etcd watch, keeping

- `objects`: the current state of every object (so DELETED events carry the
  last state, and a watch from "now" can start with a snapshot), and
- `history`: the most recent events, so a client that lost its stream can
  resume from the resourceVersion it last saw. A resourceVersion older than the
  history (trimmed by size or by etcd compaction) raises TooOld: the client
  lists again.

Each object is encoded to JSON once — by splicing its resourceVersion into the
bytes etcd sent (codec.encode_with_version), not by re-encoding the dict — and
those bytes are shared by every subscriber of the event and by every List
served from the cache. Subscribers whose field selector pins an indexed field
(pods by `spec.nodeName`, as every agent watches) are found through an index
instead of testing every selector.

Lists are served from the cache (`snapshot`), as Kubernetes serves them from
its watch cache, once the handler has checked with one cheap keys-only etcd read
that the cache holds etcd's current state of the range, so a List still sees
every write made before it (see Handlers.list_raw).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

import aetcd

from api.backoff import Backoff
from api.selectors import FieldSelector, Selector, field_value
from api import gcpolicy
from controlplane.storage import codec, keys
from controlplane.storage.errors import TooOld, Unavailable

log = logging.getLogger(__name__)

ADDED, MODIFIED, DELETED, BOOKMARK = "ADDED", "MODIFIED", "DELETED", "BOOKMARK"
DELETE_EVENT = 1   # mvccpb.Event.EventType: PUT = 0, DELETE = 1


class _Compacted(Exception):
    """etcd no longer holds the revision the watch asked to start from."""


@dataclass(slots=True)
class Event:
    type: str
    revision: int
    obj: dict[str, Any]
    prev: dict[str, Any] | None = None
    _raw: bytes | None = None
    message: Any = None   # the servicer's wire message for this event, built once for all its watchers

    @property
    def raw(self) -> bytes:
        """The object's JSON, encoded once however many watchers receive it."""
        if self._raw is None:
            self._raw = json.dumps(self.obj, separators=(",", ":"), ensure_ascii=False).encode()
        return self._raw


@dataclass(frozen=True)
class WatchFilter:
    namespace: str = ""
    labels: Selector = field(default_factory=Selector)
    fields: FieldSelector = field(default_factory=FieldSelector)

    def matches(self, obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        meta = obj.get("metadata") or {}
        if self.namespace and meta.get("namespace") != self.namespace:
            return False
        if not self.labels.empty and not self.labels.matches(meta.get("labels")):
            return False
        return self.fields.empty or self.fields.matches(obj)


class _EventQueue(asyncio.Queue):
    """An asyncio.Queue that can show its next item without taking it."""

    def peek(self) -> Any:
        return self._queue[0]   # asyncio.Queue keeps its items in the deque `_queue`


def chunks(events: list[Event], size: int) -> list[list[Event]]:
    """events in lists of at most `size` — longer only so as not to split one revision
    between two lists, for the reason Subscription.batches gives (size 1: one each)."""
    out: list[list[Event]] = []
    for event in events:
        if out and (len(out[-1]) < size or (size > 1 and out[-1][-1].revision == event.revision)):
            out[-1].append(event)
        else:
            out.append([event])
    return out


class Subscription:
    """One client watch: a bounded queue of events the cache pushes into."""

    MAX_PENDING = 20_000

    def __init__(self, cache: "WatchCache", flt: WatchFilter, *, after: int):
        self.cache = cache
        self.filter = flt
        self.after = after  # deliver only events with a newer revision
        self.queue: _EventQueue = _EventQueue()   # of Event, then None once closed
        self.closed = False
        self.error: Exception | None = None
        self.index_value: str | None = None

    def offer(self, event: Event) -> None:
        """Called by the cache for every event; translates it for this watcher's filter."""
        if self.closed or event.revision <= self.after:
            return
        old_match = self.filter.matches(event.prev)
        new_match = event.type != DELETED and self.filter.matches(event.obj)
        if event.type == DELETED:
            out = event if old_match else None
        elif new_match and not old_match:
            out = event if event.type == ADDED else Event(ADDED, event.revision, event.obj, None, event._raw)
        elif old_match and not new_match:
            # The object left this watcher's selection: to the watcher it is gone.
            out = Event(DELETED, event.revision, event.obj, event.prev, event._raw)
        elif new_match:
            out = event
        else:
            out = None
        if out is not None:
            if self.queue.qsize() >= self.MAX_PENDING:
                self.close(TooOld("watcher fell too far behind; relist and watch again"))
                return
            self.queue.put_nowait(out)

    def close(self, error: Exception | None = None) -> None:
        if not self.closed:
            self.closed = True
            self.error = error
            self.queue.put_nowait(None)
            self.cache._remove(self)

    async def events(self, *, bookmark_every: float | None = None) -> AsyncIterator[Event]:
        """Yield events until closed; BOOKMARKs with the cache's revision when idle."""
        async for batch in self.batches(bookmark_every=bookmark_every, max_batch=1):
            for event in batch:
                yield event

    async def batches(self, *, bookmark_every: float | None = None, max_batch: int = 100,
                      linger: float = 0.0) -> AsyncIterator[list[Event]]:
        """Like events(), but each time everything queued (up to max_batch) in one list, in
        order: a watcher that fell behind catches up in a few messages instead of one per event.

        A list never ends inside a revision (it may grow past max_batch for that, unless
        max_batch is 1). The objects one etcd transaction writes share its revision — the
        store commits writes in groups — and a client resumes a broken stream from the
        resourceVersion of the last event it got: had the stream broken between two
        messages of one revision, the events of that revision in the second message would
        be lost (a watch from revision R sends only what is newer than R). Messages are
        what a client receives whole, so a revision in one message is received whole.

        With `linger`, a busy stream — one whose previous batch left less than `linger` ago —
        waits that long for more events before sending a lone one: at a high event rate
        batches form although each event arrives on its own, and each message costs the
        server as much as several events do. An idle stream sends at once."""
        queue = self.queue
        loop = asyncio.get_running_loop()
        last_sent = 0.0
        try:
            while True:
                if linger and queue.qsize() == 1 and loop.time() - last_sent < linger:
                    await asyncio.sleep(linger)
                if queue.empty():
                    try:
                        if bookmark_every:
                            item = await asyncio.wait_for(queue.get(), bookmark_every)
                        else:
                            item = await queue.get()
                    except asyncio.TimeoutError:
                        yield [Event(BOOKMARK, self.cache.revision,
                                     {"metadata": {"resourceVersion": str(self.cache.revision)}})]
                        continue
                else:
                    item = queue.get_nowait()
                batch: list[Event] = []
                while item is not None:
                    batch.append(item)
                    if queue.empty():
                        break
                    if len(batch) >= max_batch:
                        following = queue.peek()
                        if max_batch == 1 or following is None or following.revision != item.revision:
                            break
                    item = queue.get_nowait()
                if batch:
                    if linger:
                        last_sent = loop.time()
                    yield batch
                if item is None:
                    if self.error is not None:
                        raise self.error
                    return
        finally:
            self.close()


class WatchCache:
    def __init__(self, client: aetcd.Client, *, prefix: str, plural: str, capacity: int = 50_000,
                 index_field: str | None = None, on_event: Callable[[Event], None] | None = None):
        self.client = client
        self.key_prefix = keys.type_prefix(prefix, plural)
        self.plural = plural
        self.capacity = capacity
        self.index_field = index_field
        self.on_event = on_event
        self.objects: dict[bytes, dict[str, Any]] = {}
        self.raw: dict[bytes, bytes] = {}   # each object's JSON as clients receive it
        self.history: collections.deque[Event] = collections.deque()
        self.history_start = 0   # events after this revision are all in history
        self.revision = 0        # the newest revision this cache has applied
        self.ready = asyncio.Event()
        self._unindexed: set[Subscription] = set()
        self._indexed: dict[str, set[Subscription]] = collections.defaultdict(set)
        self._task: asyncio.Task | None = None
        self._advanced = asyncio.Event()   # set (and replaced) whenever the revision moves on
        self._watching = False             # the current etcd watch was established

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        gcpolicy.install()   # the caches are what makes full collections long; see api/gcpolicy.py
        self._task = asyncio.create_task(self._run(), name=f"watch-cache-{self.plural}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        for sub in list(self._unindexed) + [s for subs in self._indexed.values() for s in subs]:
            sub.close()

    async def _list(self) -> None:
        result = await self.client.get_prefix(self.key_prefix)
        objects, raw = {}, {}
        for kv in result.kvs:
            obj = objects[kv.key] = codec.decode(kv.value, kv.mod_revision)
            raw[kv.key] = codec.encode_with_version(kv.value, kv.mod_revision, obj)
        self.objects, self.raw = objects, raw
        self.revision = result.header.revision
        self._notify_advanced()
        self.history.clear()
        self.history_start = self.revision

    async def _run(self) -> None:
        backoff = Backoff(0.1, 1.0)
        need_list = True
        while True:
            try:
                if need_list:
                    await self._list()
                    self.ready.set()
                    need_list = False
                await self._follow()
            except asyncio.CancelledError:
                raise
            except _Compacted:
                # We were away long enough for etcd to forget what we missed:
                # start over, and make every watcher relist.
                log.warning("watch cache %s: revision compacted, relisting", self.plural)
                self._drop_all_subscribers(TooOld("resource version too old: the server's history was compacted"))
                need_list = True
            except Exception as exc:  # etcd unreachable: retry with backoff, keep the cache
                if self._watching:   # the watch had been established: a new outage, not a loop
                    backoff.reset()
                    self._watching = False
                delay = backoff.next()
                log.warning("watch cache %s: etcd watch failed (%r); retrying in %.1fs", self.plural, exc, delay)
                await asyncio.sleep(delay)
            else:
                backoff.reset()

    async def _follow(self) -> None:
        """One etcd watch stream from the revision after ours, until it breaks.

        The stream is driven here directly, not through aetcd's watcher (a lock, a
        callback and a queue hop per event, on the path of every write the API server
        makes): each WatchResponse's events — everything etcd has for us, all of one
        revision together — are applied in one go."""
        from aetcd import rpc
        call = rpc.WatchStub(self.client.channel).Watch(metadata=self.client.metadata)
        try:
            await call.write(rpc.WatchRequest(create_request=rpc.WatchCreateRequest(
                key=self.key_prefix, range_end=aetcd.utils.prefix_range_end(self.key_prefix),
                start_revision=self.revision + 1, progress_notify=True)))
            async for response in call:
                if response.compact_revision:
                    raise _Compacted(response.compact_revision)
                if response.canceled:
                    raise ConnectionError(f"etcd cancelled the watch: {response.cancel_reason or 'no reason'}")
                self._watching = True
                if response.events:
                    for event in response.events:
                        self._apply(event.type == DELETE_EVENT, event.kv)
                elif not response.created:
                    # A progress notification: every event up to this revision has been sent.
                    self._advance(response.header.revision)
            raise ConnectionError("etcd ended the watch stream")
        finally:
            call.cancel()

    # -- applying etcd events --------------------------------------------------------

    def _apply(self, deleted: bool, kv: Any) -> None:
        rev = kv.mod_revision
        if deleted:
            prev = self.objects.pop(kv.key, None)
            self.raw.pop(kv.key, None)
            if prev is None:
                self._advance(rev)
                return
            last = dict(prev)
            last["metadata"] = {**prev["metadata"], "resourceVersion": str(rev)}
            out = Event(DELETED, rev, last, prev)
        else:
            obj = codec.decode(kv.value, rev)
            raw = codec.encode_with_version(kv.value, rev, obj)
            prev = self.objects.get(kv.key)
            self.objects[kv.key] = obj
            self.raw[kv.key] = raw
            out = Event(ADDED if prev is None else MODIFIED, rev, obj, prev, raw)
        self._advance(rev)
        self.history.append(out)
        if len(self.history) > self.capacity:
            self.history_start = self.history.popleft().revision
        self._dispatch(out)
        if self.on_event is not None:
            self.on_event(out)

    def _advance(self, revision: int) -> None:
        if revision > self.revision:
            self.revision = revision
            self._notify_advanced()

    def _notify_advanced(self) -> None:
        self._advanced.set()
        self._advanced = asyncio.Event()

    async def wait_advanced(self, timeout: float) -> bool:
        """Wait until the cache applies a newer revision; False after `timeout` seconds."""
        try:
            await asyncio.wait_for(self._advanced.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    # -- serving lists -------------------------------------------------------------------

    def count(self, key_prefix: bytes) -> int:
        if key_prefix == self.key_prefix:
            return len(self.objects)
        return sum(1 for key in self.objects if key.startswith(key_prefix))

    def snapshot(self, flt: WatchFilter) -> tuple[list[bytes], int]:
        """The JSON of every object matching flt, in key order (as etcd lists), and the
        revision this state is current at."""
        objects, raw = self.objects, self.raw
        keys_ = sorted(objects)
        if flt.namespace or not flt.labels.empty or not flt.fields.empty:
            keys_ = [k for k in keys_ if flt.matches(objects[k])]
        return [raw[k] for k in keys_], self.revision

    def _dispatch(self, event: Event) -> None:
        targets = self._unindexed
        if self.index_field is not None and self._indexed:
            new_value = field_value(event.obj, self.index_field)
            old_value = field_value(event.prev, self.index_field) if event.prev else None
            extra = self._indexed.get(new_value, set())
            if old_value is not None and old_value != new_value:
                extra = extra | self._indexed.get(old_value, set())
            if extra:
                targets = targets | extra
        for sub in list(targets):
            sub.offer(event)

    def compacted(self, revision: int) -> None:
        """etcd history up to `revision` is gone; so is ours (clients older than it relist).

        etcd's revision is global, so it can be ahead of this cache's (the last write was
        to another kind). A client that listed from this cache holds our revision, and our
        own stream still brings every event after it: never refuse a watch from there."""
        while self.history and self.history[0].revision <= revision:
            self.history.popleft()
        self.history_start = max(self.history_start, min(revision, self.revision))

    def _drop_all_subscribers(self, error: Exception) -> None:
        for sub in list(self._unindexed) + [s for subs in self._indexed.values() for s in subs]:
            sub.close(error)

    # -- subscribing ------------------------------------------------------------------

    async def wait_ready(self, timeout: float = 10.0) -> None:
        try:
            await asyncio.wait_for(self.ready.wait(), timeout)
        except asyncio.TimeoutError:
            raise Unavailable(f"the watch cache for {self.plural} is not ready (is etcd reachable?)") from None

    def subscribe(self, flt: WatchFilter, *, resource_version: int) -> tuple[Subscription, list[Event]]:
        """Register a watcher. Returns the subscription and the events to send first:
        a snapshot (ADDED for every matching object) when resource_version is 0, or
        the history after resource_version. Raises TooOld when that history is gone.

        Runs without awaiting, so no event can slip between the backlog and the stream.
        """
        if resource_version == 0:
            backlog = [Event(ADDED, int(o["metadata"]["resourceVersion"]), o)
                       for o in self.objects.values() if flt.matches(o)]
            backlog.sort(key=lambda e: e.revision)
            sub = Subscription(self, flt, after=self.revision)
        else:
            if resource_version < self.history_start:
                raise TooOld(f"resource version too old: {resource_version} (the oldest this server holds is "
                             f"{self.history_start}); list again and watch from the list's resourceVersion")
            sub = Subscription(self, flt, after=max(resource_version, self.revision))
            backlog = []
            for event in self.history:
                if event.revision > resource_version:
                    sub.after = resource_version
                    sub.offer(event)
            sub.after = max(resource_version, self.revision)
        pinned = flt.fields.value_for(self.index_field) if self.index_field else None
        if pinned is not None:
            sub.index_value = pinned
            self._indexed[pinned].add(sub)
        else:
            self._unindexed.add(sub)
        return sub, backlog

    def _remove(self, sub: Subscription) -> None:
        if sub.index_value is not None:
            subs = self._indexed.get(sub.index_value)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._indexed[sub.index_value]
        else:
            self._unindexed.discard(sub)

    @property
    def watcher_count(self) -> int:
        return len(self._unindexed) + sum(len(s) for s in self._indexed.values())
