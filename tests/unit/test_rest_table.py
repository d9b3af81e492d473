"""Table responses of lists (controlplane/rest/table.py): the cached, encoded rows say exactly
what rows computed afresh say, now and later, for each includeObject; a changed object gets
a new row; cells that move with the clock (AGE, RESTARTS' "(2m ago)", an Event's LAST SEEN)
are recomputed on every render."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from controlplane.rest import table as tables


def pod(name: str, *, restarts: int = 0, version: str = "7") -> dict:
    status: dict = {"phase": "Pending"}
    if restarts:
        status = {"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}],
                  "containerStatuses": [{"name": "c", "ready": True, "restartCount": restarts, "state": {"running": {}},
                                         "lastState": {"terminated": {"finishedAt": "2026-12-07T04:30:00Z"}}}]}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "d", "resourceVersion": version, "labels": {"app": "x"},
                         "creationTimestamp": "2026-12-07T04:00:00Z"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], "nodeName": "n1"}, "status": status}


def raw(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


@pytest.mark.parametrize("include", ["Metadata", "Object", "None"])
def test_cached_rows_are_the_rows_computed_afresh(include: str, monkeypatch) -> None:
    objects = [pod("a"), pod("b", restarts=3), pod("c")]
    cache = tables.RowCache()
    for minutes in (0, 90, 60 * 24 * 3):   # the same cache, rendered again as time passes
        at = dt.datetime(2026, 12, 7, 4, 31, tzinfo=dt.timezone.utc) + dt.timedelta(minutes=minutes)
        monkeypatch.setattr(tables, "now", lambda: at)
        fresh = tables.table("Pod", objects, resource_version="9", include=include, extra_meta={"continue": "t"})
        cached = json.loads(tables.table_bytes("Pod", [raw(o) for o in objects], resource_version="9",
                                               include=include, extra_meta={"continue": "t"}, cache=cache))
        assert cached == fresh
    assert fresh["rows"][1]["cells"][3] == "3 (3d ago)" and fresh["rows"][0]["cells"][4] == "3d"


def test_a_changed_object_gets_its_new_row_and_events_keep_moving(monkeypatch) -> None:
    cache = tables.RowCache()
    before, after = pod("a"), pod("a", restarts=1, version="8")
    assert json.loads(tables.table_bytes("Pod", [raw(before)], cache=cache))["rows"][0]["cells"][2] == "Pending"
    assert json.loads(tables.table_bytes("Pod", [raw(after)], cache=cache))["rows"][0]["cells"][2] == "Running"
    event = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e", "namespace": "d"}, "type": "Normal",
             "lastTimestamp": "2026-12-07T04:30:00Z", "involvedObject": {"kind": "Pod", "name": "a"}, "reason": "R",
             "message": "m"}
    for minutes in (5, 7):
        at = dt.datetime(2026, 12, 7, 4, 30, tzinfo=dt.timezone.utc) + dt.timedelta(minutes=minutes)
        monkeypatch.setattr(tables, "now", lambda: at)
        row = json.loads(tables.table_bytes("Event", [raw(event)], cache=cache))["rows"][0]
        assert row["cells"][0] == f"{minutes}m" and row == tables.table("Event", [event])["rows"][0]


def test_the_cache_is_bounded() -> None:
    cache = tables.RowCache(size=10)
    tables.table_bytes("Pod", [raw(pod(f"p{i}")) for i in range(25)], cache=cache)
    assert len(cache.rows) <= 10
