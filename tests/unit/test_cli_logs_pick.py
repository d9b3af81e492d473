"""`ctl logs TYPE/NAME`: which of a workload's pods is shown (kubectl's order) and by which selector."""

from __future__ import annotations

from cli.commands.logs import most_active_first, selector_of


def pod(name: str, *, node: str = "n1", phase: str = "Running", ready_since: str | None = None,
        restarts: int = 0, created: str = "2024-01-01T00:00:00Z") -> dict:
    conditions = [{"type": "Ready", "status": "True" if ready_since else "False",
                   "lastTransitionTime": ready_since or created}]
    return {"metadata": {"name": name, "creationTimestamp": created}, "spec": {"nodeName": node},
            "status": {"phase": phase, "conditions": conditions,
                       "containerStatuses": [{"name": "main", "restartCount": restarts}]}}


def names(pods: list[dict]) -> list[str]:
    return [p["metadata"]["name"] for p in most_active_first(pods)]


def test_scheduled_running_ready_first():
    assert names([pod("unbound", node="", phase="Pending"), pod("pending", phase="Pending"),
                  pod("done", phase="Succeeded"), pod("unknown", phase="Unknown"),
                  pod("running"), pod("ready", ready_since="2024-01-01T00:01:00Z")]) == [
        "ready", "running", "unknown", "pending", "done", "unbound"]


def test_ready_longest_then_fewest_restarts_then_oldest():
    assert names([pod("late", ready_since="2024-01-01T00:05:00Z"),
                  pod("early", ready_since="2024-01-01T00:01:00Z")]) == ["early", "late"]
    assert names([pod("flaky", restarts=3), pod("steady", restarts=0)]) == ["steady", "flaky"]
    assert names([pod("new", created="2024-02-01T00:00:00Z"), pod("old", created="2024-01-01T00:00:00Z")]) == [
        "old", "new"]


def test_selectors():
    assert selector_of("Deployment", {"spec": {"selector": {"matchLabels": {"app": "web", "tier": "fe"}}}}) == \
        "app=web,tier=fe"
    assert selector_of("Job", {"spec": {"selector": {"matchExpressions": [
        {"key": "env", "operator": "In", "values": ["a", "b"]}]}}}) == "env in (a,b)"
    assert selector_of("Service", {"spec": {"selector": {"app": "web"}}}) == "app=web"
    assert selector_of("ReplicaSet", {"spec": {}}) == ""
