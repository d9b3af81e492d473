"""Compaction and the watch cache's history: which watches it still serves.

etcd's revision is global, so a compaction can name a revision newer than the last
write to one kind. A client that just listed that kind holds the cache's revision and
must be able to watch from it (a race the compaction integration test once hit)."""
import pytest

from controlplane.storage.errors import TooOld
from controlplane.storage.watch_cache import MODIFIED, Event, WatchCache, WatchFilter


def cache_at(revision: int, history: range) -> WatchCache:
    cache = WatchCache(None, prefix="/t", plural="configmaps")  # type: ignore[arg-type]
    for rev in history:
        cache.history.append(Event(MODIFIED, rev, {"metadata": {"name": "a", "namespace": "default"}}))
    cache.history_start = history.start - 1
    cache.revision = revision
    return cache


def test_compaction_past_this_kinds_revision_keeps_a_watch_from_it():
    cache = cache_at(505, range(500, 506))
    cache.compacted(506)   # the newest write (506) went to another kind
    sub, backlog = cache.subscribe(WatchFilter(), resource_version=505)
    assert backlog == [] and sub.after == 505
    with pytest.raises(TooOld, match="resource version too old: 504"):
        cache.subscribe(WatchFilter(), resource_version=504)


def test_compaction_inside_the_history_refuses_older_versions_only():
    cache = cache_at(510, range(500, 511))
    cache.compacted(505)
    assert [e.revision for e in cache.history] == list(range(506, 511))
    with pytest.raises(TooOld, match="the oldest this server holds is 505"):
        cache.subscribe(WatchFilter(), resource_version=504)
    sub, _ = cache.subscribe(WatchFilter(), resource_version=505)
    assert sub.queue.qsize() == 5   # 506..510 replayed
