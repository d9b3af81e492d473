"""EventRecorder against a real API server: a repeat updates the stored Event (count 2, same
name, uid and firstTimestamp) from the recorder's compact record, not from a kept copy."""

from __future__ import annotations

from controlplane.client.events import NORMAL, EventRecorder


async def test_repeat_bumps_the_stored_event(client, namespace) -> None:
    cm = await client.create({"apiVersion": "v1", "kind": "ConfigMap",
                              "metadata": {"name": "watched", "namespace": namespace}})
    recorder = EventRecorder(client, component="test", host="n1", max_entries=8)
    first = await recorder.record(cm, NORMAL, "Touched", "touched once")
    second = await recorder.record(cm, NORMAL, "Touched", "touched once")
    assert first is not None and second is not None
    stored = await client.get("events", first["metadata"]["name"], namespace)
    assert stored["count"] == 2
    assert stored["metadata"]["uid"] == first["metadata"]["uid"]
    assert stored["metadata"]["creationTimestamp"] == first["metadata"]["creationTimestamp"]
    assert stored["firstTimestamp"] == first["firstTimestamp"]
    assert stored["lastTimestamp"] == second["lastTimestamp"] > first["lastTimestamp"]
    assert stored["involvedObject"]["uid"] == cm["metadata"]["uid"]
    events = (await client.list("events", namespace)).items
    assert [e["metadata"]["name"] for e in events] == [first["metadata"]["name"]]
