"""`describe` layout: kubectl's pod layout, the generic layout and the Events table."""

from datetime import datetime, timezone

from api.registry import lookup
from cli.describe import describe, describe_pod, event_age, sort_events

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)

POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web", "tier": "front"},
                 "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
                 "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d9c",
                                      "uid": "u", "controller": True}]},
    "spec": {"nodeName": "n1", "serviceAccountName": "default",
             "containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "60"],
                             "ports": [{"containerPort": 80, "protocol": "TCP"}],
                             "resources": {"limits": {"memory": "64Mi", "cpu": "1"}},
                             "env": [{"name": "MODE", "value": "prod"}],
                             "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}]}],
             "volumes": [{"name": "data", "emptyDir": {}}],
             "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                              "tolerationSeconds": 300}]},
    "status": {"phase": "Running", "hostIP": "198.18.0.2", "podIP": "10.88.0.5", "podIPs": [{"ip": "10.88.0.5"}],
               "startTime": "2024-05-01T11:00:00Z", "qosClass": "Burstable",
               "conditions": [{"type": "Ready", "status": "True"}],
               "containerStatuses": [{"name": "c", "ready": True, "restartCount": 1, "image": "busybox:1.36",
                                      "containerID": "skiff://abc", "imageID": "sha256:1",
                                      "state": {"running": {"startedAt": "2024-05-01T11:00:01Z"}},
                                      "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled",
                                                                   "startedAt": "2024-05-01T10:59:00Z",
                                                                   "finishedAt": "2024-05-01T11:00:00Z"}}}]},
}


def event(reason, *, last, first=None, count=1, type_="Normal", message="m"):
    return {"type": type_, "reason": reason, "message": message, "count": count, "source": {"component": "x"},
            "firstTimestamp": first or last, "lastTimestamp": last, "involvedObject": {"name": "web-1"}}


def labels_of(text):
    return [line.split(":")[0] for line in text.splitlines() if line and not line.startswith(" ")
            and ":" in line]


def test_pod_layout_order_and_values():
    text = describe_pod(POD, [], at=NOW)
    assert labels_of(text) == ["Name", "Namespace", "Priority", "Service Account", "Node", "Start Time", "Labels",
                               "Annotations", "Status", "IP", "IPs", "Controlled By", "Containers", "Conditions",
                               "Volumes", "QoS Class", "Node-Selectors", "Tolerations", "Events"]
    lines = text.splitlines()
    assert lines[0] == "Name:             web-1"
    assert "Node:             n1/198.18.0.2" in lines
    assert "Labels:           app=web" in lines
    assert "                  tier=front" in lines
    assert "Annotations:      <none>" in lines  # last-applied is hidden
    assert "Controlled By:  ReplicaSet/web-5d9c" in lines
    for expected in ("    Image:         busybox:1.36", "    Port:          80/TCP", "    State:          Running",
                     "    Last State:     Terminated", "      Reason:       OOMKilled",
                     "      Exit Code:    137", "    Ready:          True", "    Restart Count:  1",
                     "      memory:  64Mi", "      MODE:  prod", "      /data from data (ro)",
                     "    Type:        EmptyDir (a temporary directory that shares a pod's lifetime)"):
        assert expected in lines, expected
    assert "Tolerations:     node.kubernetes.io/not-ready:NoExecute op=Exists for 300s" in lines
    assert lines[-1] == "Events:          <none>"


def test_terminating_and_unscheduled_pod():
    pod = {"metadata": {"name": "p", "namespace": "d", "deletionTimestamp": "2024-05-01T11:59:30Z",
                        "deletionGracePeriodSeconds": 30},
           "spec": {"containers": [{"name": "c", "image": "i"}]}, "status": {"phase": "Pending"}}
    text = describe_pod(pod, [], at=NOW)
    assert "Node:                      <none>" in text.splitlines()
    assert "Status:                    Terminating (lasts 30s)" in text.splitlines()
    assert "Termination Grace Period:  30s" in text.splitlines()


def test_events_table_sorted_by_time_with_repeats():
    events = [event("Started", last="2024-05-01T11:59:50Z"),
              event("FailedScheduling", type_="Warning", first="2024-05-01T11:53:37Z", last="2024-05-01T11:58:59Z",
                    count=2, message="0/2 nodes are available: 2 Insufficient cpu."),
              event("Scheduled", last="2024-05-01T11:59:00Z")]
    assert [e["reason"] for e in sort_events(events)] == ["FailedScheduling", "Scheduled", "Started"]
    assert event_age(events[1], NOW) == "61s (x2 over 6m23s)"
    text = describe_pod(POD, events, at=NOW)
    tail = text.splitlines()[-6:]
    assert tail[0] == "Events:"
    assert tail[1] == "  Type     Reason            Age                  From  Message"
    assert tail[2] == "  ----     ------            ----                 ----  -------"
    assert tail[3] == ("  Warning  FailedScheduling  61s (x2 over 6m23s)  x     "
                       "0/2 nodes are available: 2 Insufficient cpu.")
    assert tail[4] == "  Normal   Scheduled         60s                  x     m"
    assert tail[5] == "  Normal   Started           10s                  x     m"


def test_generic_layout():
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
              "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}}}
    lines = describe(lookup("deploy"), deploy, [], at=NOW).splitlines()
    assert lines[:6] == ["Name:         web", "Namespace:    default", "Labels:       app=web",
                         "Annotations:  <none>", "API Version:  apps/v1", "Kind:         Deployment"]
    assert "  Replicas:  2" in lines
    assert "    Match Labels:" in lines and "      app:  web" in lines
    assert lines[-1].startswith("Events:") and lines[-1].endswith("<none>")
