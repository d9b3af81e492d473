"""EventRecorder: a repeated (object, type, reason, message) bumps one Event's count; what the
recorder keeps per Event is small and bounded (least recently used keys are forgotten)."""

from __future__ import annotations

import sys
from typing import Any

from controlplane.client.errors import Conflict, Invalid, NotFound
from controlplane.client.events import NORMAL, WARNING, EventRecorder


class FakeClient:
    """Stores Events as an API server would: server fields set, resourceVersion checked on update."""

    def __init__(self) -> None:
        self.events: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.revision = 0

    def _stored(self, event: dict[str, Any], uid: str, created: str) -> dict[str, Any]:
        self.revision += 1
        # Padding stands in for what a real server adds (managedFields and the like): the
        # recorder must not keep it.
        stored = {**event, "metadata": {**event["metadata"], "uid": uid, "creationTimestamp": created,
                                        "resourceVersion": str(self.revision),
                                        "annotations": {"padding": "x" * 2000}}}
        self.events[event["metadata"]["name"]] = stored
        return stored

    async def create(self, event: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("create", event))
        return self._stored(event, uid=f"uid-{len(self.events)}", created="2026-01-01T00:00:00Z")

    async def update(self, event: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("update", event))
        current = self.events.get(event["metadata"]["name"])
        if current is None:
            raise NotFound("not found")
        if event["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise Conflict("conflict")
        meta = current["metadata"]
        return self._stored(event, uid=meta["uid"], created=meta["creationTimestamp"])


def pod(name: str, uid: str | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "ns", "uid": uid or f"u-{name}"}}


async def test_a_repeat_bumps_the_count_of_the_same_event() -> None:
    client = FakeClient()
    recorder = EventRecorder(client, component="skiff-agent", host="n1")  # type: ignore[arg-type]
    first = await recorder.record(pod("a"), NORMAL, "Pulled", "already present")
    second = await recorder.record(pod("a"), NORMAL, "Pulled", "already present")
    third = await recorder.record(pod("a"), NORMAL, "Pulled", "already present")
    assert [verb for verb, _ in client.calls] == ["create", "update", "update"]
    assert len(client.events) == 1
    assert second["metadata"]["name"] == third["metadata"]["name"] == first["metadata"]["name"]
    assert third["count"] == 3
    assert third["firstTimestamp"] == first["firstTimestamp"]
    assert third["lastTimestamp"] >= second["lastTimestamp"] > first["firstTimestamp"]
    # The update is a whole Event rebuilt from the compact record, with the version it read.
    _, sent = client.calls[2]
    assert sent["metadata"]["resourceVersion"] == second["metadata"]["resourceVersion"]
    assert sent["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "name": "a", "namespace": "ns", "uid": "u-a"}
    assert sent["source"] == {"component": "skiff-agent", "host": "n1"}
    assert sent["reason"] == "Pulled" and sent["type"] == NORMAL and sent["message"] == "already present"


async def test_different_keys_are_different_events() -> None:
    client = FakeClient()
    recorder = EventRecorder(client, component="c")  # type: ignore[arg-type]
    await recorder.record(pod("a"), NORMAL, "Started", "Started container main")
    await recorder.record(pod("a"), NORMAL, "Started", "Started container side")   # other message
    await recorder.record(pod("a"), WARNING, "Started", "Started container main")  # other type
    await recorder.record(pod("a", uid="u-a2"), NORMAL, "Started", "Started container main")  # a new pod, same name
    assert [verb for verb, _ in client.calls] == ["create"] * 4


async def test_a_changed_or_expired_event_is_written_anew() -> None:
    client = FakeClient()
    recorder = EventRecorder(client, component="c")  # type: ignore[arg-type]
    first = await recorder.record(pod("a"), NORMAL, "Killing", "Stopping container main")
    del client.events[first["metadata"]["name"]]               # expired (TTL) on the server
    again = await recorder.record(pod("a"), NORMAL, "Killing", "Stopping container main")
    assert [verb for verb, _ in client.calls] == ["create", "update", "create"]
    assert again["count"] == 1 and again["metadata"]["name"] != first["metadata"]["name"]
    bumped = await recorder.record(pod("a"), NORMAL, "Killing", "Stopping container main")
    assert bumped["count"] == 2 and bumped["metadata"]["name"] == again["metadata"]["name"]


async def test_memory_is_bounded_and_the_least_recently_used_key_goes_first() -> None:
    client = FakeClient()
    recorder = EventRecorder(client, component="c", max_entries=3)  # type: ignore[arg-type]
    for name in ("a", "b", "c"):
        await recorder.record(pod(name), NORMAL, "Started", "Started container main")
    await recorder.record(pod("a"), NORMAL, "Started", "Started container main")  # a is now the most recent
    await recorder.record(pod("d"), NORMAL, "Started", "Started container main")  # forgets b, the oldest
    assert recorder.remembered == 3
    client.calls.clear()
    await recorder.record(pod("a"), NORMAL, "Started", "Started container main")
    await recorder.record(pod("b"), NORMAL, "Started", "Started container main")
    assert [verb for verb, _ in client.calls] == ["update", "create"]           # a remembered, b not
    assert recorder.remembered == 3

    # Many pods later the recorder still holds max_entries small records, not the Events:
    # the 2 KB the server added to each Event is not among what it keeps.
    recorder = EventRecorder(client, component="c", max_entries=100)  # type: ignore[arg-type]
    for i in range(1000):
        await recorder.record(pod(f"p{i}"), NORMAL, "Created", "Created container main")
    assert recorder.remembered == 100
    kept = sum(sys.getsizeof(v) + sum(sys.getsizeof(getattr(v, f)) for f in v.__slots__)
               for v in recorder._seen.values())
    assert kept < 100 * 400, kept


async def test_a_refused_event_is_logged_not_raised(caplog) -> None:
    class Refusing(FakeClient):
        async def create(self, event: dict[str, Any]) -> dict[str, Any]:
            raise Invalid("namespace is terminating")
    recorder = EventRecorder(Refusing(), component="c")  # type: ignore[arg-type]
    assert await recorder.record(pod("a"), WARNING, "Failed", "boom") is None
    assert recorder.remembered == 0
    assert "could not record event Failed a" in caplog.text
