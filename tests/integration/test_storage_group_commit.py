"""Group commit (controlplane/storage/group_commit.py) against a real etcd: writes that
queue up while a transaction is in flight travel as one, yet each caller gets exactly
the answer it would have got alone.

The first of a burst of concurrent writes leaves alone; the rest queue behind it and
leave together in the next etcd transaction — that is how these tests make batches.
"""

from __future__ import annotations

import asyncio
import collections
import json
import uuid
from typing import Any, AsyncIterator

import pytest

from controlplane.storage import AlreadyExists, Conflict, NotFound, Store
from controlplane.storage.store import put


def cm(name: str, value: str = "") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"},
            "data": {"v": value}}


@pytest.fixture
async def store(etcd) -> AsyncIterator[Store]:
    from controlplane.main import connect_etcd
    client = await connect_etcd([etcd.endpoint])
    try:
        yield Store(client, prefix=f"/gc-{uuid.uuid4().hex[:8]}")
    finally:
        await client.close()


def version(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


async def test_concurrent_creates_of_one_name_exactly_one_wins(store):
    # The same name 20 times, among 20 other names: the others batch; the duplicates cannot
    # share a transaction (etcd refuses a key twice in one), so they follow one another.
    names = ["same"] * 20 + [f"other-{i}" for i in range(20)]
    results = await asyncio.gather(*(store.create("configmaps", "default", n, cm(n, str(i)))
                                     for i, n in enumerate(names)), return_exceptions=True)
    same = results[:20]
    winners = [r for r in same if isinstance(r, dict)]
    assert len(winners) == 1
    assert all(isinstance(r, AlreadyExists) and str(r) == 'configmaps "same" already exists'
               for r in same if r is not winners[0])
    assert all(isinstance(r, dict) for r in results[20:])
    stored = await store.get("configmaps", "default", "same")
    assert stored["data"] == winners[0]["data"] and version(stored) == version(winners[0])
    # Batches did form: fewer etcd transactions than writes, some objects sharing a version.
    assert store.committer.transactions < len(names)
    assert max(collections.Counter(version(r) for r in results[20:]).values()) > 1


async def test_one_conflicting_update_fails_alone_in_its_batch(store):
    created = await asyncio.gather(*(store.create("configmaps", "default", f"cm-{i}", cm(f"cm-{i}"))
                                     for i in range(10)))
    current = {o["metadata"]["name"]: version(o) for o in created}
    stale_name = "cm-5"
    moved = await store.update("configmaps", "default", stale_name, cm(stale_name, "moved on"),
                               expected_version=current[stale_name])
    sent_before = store.committer.transactions

    async def update(i: int) -> dict[str, Any]:
        name = f"cm-{i}"
        return await store.update("configmaps", "default", name, cm(name, "new"), expected_version=current[name])

    results = await asyncio.gather(*(update(i) for i in range(10)), return_exceptions=True)
    conflict = results[5]
    assert isinstance(conflict, Conflict)
    assert conflict.current_version == str(version(moved))
    assert (f"resourceVersion {current[stale_name]} is stale, current is {version(moved)}") in str(conflict)
    ok = [r for i, r in enumerate(results) if i != 5]
    assert all(isinstance(r, dict) and r["data"] == {"v": "new"} for r in ok)
    # Updates 1-9 queued behind update 0 and went as one transaction, with one revision.
    assert store.committer.transactions - sent_before == 2
    assert len({version(r) for r in ok[1:]}) == 1
    for r in ok:
        assert version(await store.get("configmaps", "default", r["metadata"]["name"])) == version(r)
    assert (await store.get("configmaps", "default", stale_name))["data"] == {"v": "moved on"}


async def test_conflict_on_a_deleted_object_is_not_found_and_deletes_batch(store):
    objs = await asyncio.gather(*(store.create("configmaps", "default", f"d-{i}", cm(f"d-{i}")) for i in range(6)))
    revisions = await asyncio.gather(*(store.delete("configmaps", "default", o["metadata"]["name"],
                                                    expected_version=version(o)) for o in objs))
    assert len(set(revisions[1:])) == 1
    with pytest.raises(NotFound):
        await store.update("configmaps", "default", "d-0", cm("d-0"), expected_version=version(objs[0]))
    with pytest.raises(NotFound):
        await store.delete("configmaps", "default", "d-0")


async def test_a_member_etcd_refuses_fails_alone(store):
    """A put with a revoked lease makes etcd refuse the whole transaction; the batch is
    then re-run one by one, so only that write fails."""
    lease = await store.grant_lease(60)
    await store.client.revoke_lease(lease)
    first = asyncio.ensure_future(store.create("configmaps", "default", "lead", cm("lead")))
    await asyncio.sleep(0)   # "lead" is in flight: what follows queues and batches
    bad = store.create("configmaps", "default", "bad", cm("bad"), lease=lease)
    good = [store.create("configmaps", "default", f"good-{i}", cm(f"good-{i}")) for i in range(5)]
    results = await asyncio.gather(bad, *good, return_exceptions=True)
    await first
    assert isinstance(results[0], Exception) and "lease not found" in str(results[0])
    assert all(isinstance(r, dict) for r in results[1:])
    with pytest.raises(NotFound):
        await store.get("configmaps", "default", "bad")


async def test_txn_with_extra_puts_batches_like_a_bind(store):
    """Store.txn is what a bind uses: several compares and puts of its own."""
    key_a, key_b = store.key("configmaps", "default", "a"), store.key("configmaps", "default", "b")
    results = await asyncio.gather(*(store.txn([], [put(k, json.dumps(cm(k.decode())).encode())], [],
                                               keys=(k,), size=100) for k in (key_a, key_b, key_a)))
    assert all(r.succeeded for r in results)
    assert results[2].revision > results[0].revision   # the same key never shares a transaction


async def test_a_watch_from_a_shared_revision(client, namespace):
    """Objects created together share a resourceVersion. A watch from that version gets
    none of them; a watch from the version before gets all of them."""
    def configmap(i: int) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i:02}", "namespace": namespace}}

    created = await asyncio.gather(*(client.create(configmap(i)) for i in range(30)))
    by_version: dict[int, set[str]] = collections.defaultdict(set)
    for obj in created:
        by_version[int(obj["metadata"]["resourceVersion"])].add(obj["metadata"]["name"])
    shared = [v for v, names in by_version.items() if len(names) > 1]
    assert shared, "30 concurrent creates should have formed at least one batch"
    rv = min(shared)
    before = max(v for v in by_version if v < rv) if any(v < rv for v in by_version) else rv - 1

    async def names_from(resource_version: int, expected: int) -> set[str]:
        seen: set[str] = set()
        if expected == 0:
            return seen
        async for event in client.watch("configmaps", namespace, resource_version=str(resource_version)):
            seen.add(event.object["metadata"]["name"])
            if len(seen) >= expected:
                break
        return seen

    after_rv = {n for v, names in by_version.items() if v > rv for n in names}
    after_before = {n for v, names in by_version.items() if v > before for n in names}
    got = await asyncio.wait_for(names_from(rv, len(after_rv)), 10)
    assert got == after_rv and not (got & by_version[rv])
    got = await asyncio.wait_for(names_from(before, len(after_before)), 10)
    assert got == after_before and by_version[rv] <= got
