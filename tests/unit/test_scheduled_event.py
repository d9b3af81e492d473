"""The Scheduled event the API server writes with a bind is an Event as the model gives it."""

from __future__ import annotations

from api.registry import parse_object
from controlplane.apiserver.events import scheduled_event


def test_scheduled_event_is_in_the_normalized_form_of_the_model():
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1"},
           "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}
    event = scheduled_event(pod, message="Successfully assigned shop/web-1 to n1; score 87",
                            component="default-scheduler")
    server_set = {"uid", "creationTimestamp"}
    normalized = parse_object(event).to_json()
    assert {k: v for k, v in normalized["metadata"].items() if k not in server_set} == \
        {k: v for k, v in event["metadata"].items() if k not in server_set}
    assert {k: v for k, v in normalized.items() if k != "metadata"} == \
        {k: v for k, v in event.items() if k != "metadata"}
    assert event["metadata"]["name"].startswith("web-1.") and event["metadata"]["namespace"] == "shop"
    assert event["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "namespace": "shop", "name": "web-1",
                                       "uid": "u-1"}
    assert event["source"] == {"component": "default-scheduler"} and event["reason"] == "Scheduled"
