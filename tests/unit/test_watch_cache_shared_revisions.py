"""Several events with one revision (objects committed together, see
controlplane/storage/group_commit.py): a watch from revision R gets every event newer
than R and none of R itself, and no watch message ends inside a revision — a client
resumes from the last revision it got, so a revision split between two messages could
lose the rest of it."""

from __future__ import annotations

from controlplane.storage.watch_cache import ADDED, Event, WatchCache, WatchFilter, chunks


def event(name: str, revision: int) -> Event:
    return Event(ADDED, revision, {"metadata": {"name": name, "namespace": "default",
                                                "resourceVersion": str(revision)}})


def cache_with(events: list[Event]) -> WatchCache:
    cache = WatchCache(None, prefix="/t", plural="configmaps")  # type: ignore[arg-type]
    cache.history.extend(events)
    cache.history_start = events[0].revision - 1
    cache.revision = events[-1].revision
    return cache


HISTORY = [event("a", 10), event("b", 11), event("c", 11), event("d", 11), event("e", 12)]


def names(events: list[Event]) -> list[str]:
    return [e.obj["metadata"]["name"] for e in events]


def queued(cache: WatchCache, resource_version: int) -> list[Event]:
    sub, backlog = cache.subscribe(WatchFilter(), resource_version=resource_version)
    assert backlog == []
    return [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]


def test_a_watch_from_a_shared_revision_gets_only_newer_events():
    cache = cache_with(HISTORY)
    assert names(queued(cache, 11)) == ["e"]
    assert names(queued(cache, 10)) == ["b", "c", "d", "e"]


def test_a_live_event_sharing_the_subscription_revision_is_not_delivered():
    cache = cache_with(HISTORY)
    sub, _ = cache.subscribe(WatchFilter(), resource_version=12)
    sub.offer(event("late", 12))   # cannot happen (a revision arrives whole), but must be dropped
    sub.offer(event("f", 13))
    assert names([sub.queue.get_nowait()]) == ["f"] and sub.queue.empty()


async def test_batches_do_not_split_a_revision():
    cache = cache_with(HISTORY)
    sub, _ = cache.subscribe(WatchFilter(), resource_version=9)
    sub.close()   # everything is queued; the stream ends after it
    got = [names(batch) async for batch in sub.batches(max_batch=2)]
    assert got == [["a", "b", "c", "d"], ["e"]]


async def test_one_event_per_message_when_batching_is_off():
    cache = cache_with(HISTORY)
    sub, _ = cache.subscribe(WatchFilter(), resource_version=9)
    sub.close()
    got = [names(batch) async for batch in sub.batches(max_batch=1)]
    assert got == [["a"], ["b"], ["c"], ["d"], ["e"]]


def test_chunks_keep_a_revision_together():
    assert [names(c) for c in chunks(HISTORY, 2)] == [["a", "b", "c", "d"], ["e"]]
    assert [names(c) for c in chunks(HISTORY, 3)] == [["a", "b", "c", "d"], ["e"]]
    assert [names(c) for c in chunks(HISTORY, 5)] == [["a", "b", "c", "d", "e"]]
    assert [names(c) for c in chunks(HISTORY, 1)] == [["a"], ["b"], ["c"], ["d"], ["e"]]
    assert chunks([], 3) == []

