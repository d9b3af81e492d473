"""`ctl describe`: kubectl's pod layout, with the pod's events sorted by time."""

import re
import time
from datetime import datetime, timedelta, timezone

POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: web-1
  labels: {app: web, tier: front}
spec:
  nodeName: node-x   # bound already, so no scheduler adds events of its own
  containers:
  - name: app
    image: busybox:1.36
    command: [sleep, "3600"]
    ports: [{containerPort: 8080}]
    env: [{name: MODE, value: fast}]
    resources: {limits: {cpu: 500m, memory: 64Mi}}
"""


def stamp(seconds_ago, at=None):
    return ((at or datetime.now(timezone.utc)) - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def kubectl_age(seconds):
    """How kubectl shows an age under ten minutes: `119s`, then `2m`, `6m23s`."""
    if seconds < 120:
        return f"{seconds}s"
    return f"{seconds // 60}m" + (f"{seconds % 60}s" if seconds % 60 else "")


def ages_between(timestamp, before, after):
    """The ages a timestamp (whole seconds) may be shown with by a command run between two times."""
    return {kubectl_age(s) for s in range(int(before - timestamp), int(after - timestamp) + 1)}


def event(name, *, pod, namespace, reason, type_="Normal", message, first, last, count=1,
          component="default-scheduler", at=None):
    return f"""\
apiVersion: v1
kind: Event
metadata: {{name: {name}}}
involvedObject: {{kind: Pod, name: {pod}, namespace: {namespace}}}
reason: {reason}
type: {type_}
message: "{message}"
count: {count}
firstTimestamp: "{stamp(first, at)}"
lastTimestamp: "{stamp(last, at)}"
source: {{component: {component}}}
"""


def test_describe_pod_layout_and_events(ctl, namespace):
    # The events' timestamps, in whole seconds as stored; the ages describe shows are checked
    # against them at the time describe ran (a loaded machine may take many seconds to get there).
    made = datetime.now(timezone.utc).replace(microsecond=0)
    events = "---\n".join([
        event("e1", pod="web-1", namespace=namespace, reason="Pulled", message="Pulled image", first=30, last=30,
              component="agent", at=made),
        event("e2", pod="web-1", namespace=namespace, reason="FailedScheduling", type_="Warning",
              message="0/2 nodes are available: 2 Insufficient cpu.", first=383, last=61, count=2, at=made),
        event("e3", pod="other", namespace=namespace, reason="Unrelated", message="not ours", first=5, last=5,
              at=made),
    ])
    assert ctl("apply", "-f", "-", "-n", namespace, input=POD).returncode == 0
    r = ctl("create", "-f", "-", "-n", namespace, input=events)
    assert r.returncode == 0, r.stderr

    before = time.time()
    r = ctl("describe", "pod", "web-1", "-n", namespace)
    after = time.time()
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    titles = [ln.split(":")[0] for ln in lines if ln and not ln.startswith(" ") and ":" in ln]
    assert titles == ["Name", "Namespace", "Priority", "Service Account", "Node", "Labels", "Annotations", "Status",
                      "IP", "IPs", "Containers", "Volumes", "QoS Class", "Node-Selectors", "Tolerations", "Events"]
    assert lines[:8] == ["Name:             web-1", f"Namespace:        {namespace}", "Priority:         0",
                         "Service Account:  default", "Node:             node-x/", "Labels:           app=web",
                         "                  tier=front", "Annotations:      <none>"]
    assert "Status:           Pending" in lines
    assert "    Image:      busybox:1.36" in lines
    assert "    Port:       8080/TCP" in lines
    assert "      cpu:     500m" in lines and "      memory:  64Mi" in lines
    assert any(re.fullmatch(r"      MODE:\s+fast", ln) for ln in lines)
    assert any(re.fullmatch(r"QoS Class:\s+Guaranteed", ln) for ln in lines)  # requests default to limits

    at = lines.index("Events:")
    table = lines[at + 1:]
    assert table[0].split() == ["Type", "Reason", "Age", "From", "Message"]
    assert table[1].split() == ["----", "------", "----", "----", "-------"]
    assert len(table) == 4  # the other pod's event is not shown
    # Oldest first; the age of the last sighting, and "over" the age of the first.
    scheduling = re.fullmatch(r"  Warning  FailedScheduling  (\S+) \(x2 over (\S+)\)  default-scheduler  "
                              r"0/2 nodes are available: 2 Insufficient cpu\.", table[2])
    assert scheduling, table[2]
    base = made.timestamp()
    assert scheduling[1] in ages_between(base - 61, before, after), (table[2], before - base, after - base)
    assert scheduling[2] in ages_between(base - 383, before, after), (table[2], before - base, after - base)
    pulled = re.fullmatch(r"  Normal   Pulled            (\S+)\s+agent\s+Pulled image", table[3])
    assert pulled, table[3]
    assert pulled[1] in ages_between(base - 30, before, after), (table[3], before - base, after - base)


def test_describe_by_prefix_generic_kind_and_missing(ctl, namespace):
    assert ctl("apply", "-f", "-", "-n", namespace, input=POD).returncode == 0
    r = ctl("describe", "po", "web", "-n", namespace)  # prefix of web-1
    assert r.returncode == 0 and r.stdout.startswith("Name:             web-1\n")
    assert r.stdout.rstrip().endswith("<none>")  # Events: <none>
    r = ctl("describe", "ns", namespace)
    assert [ln.split() for ln in r.stdout.splitlines()[:2]] == [["Name:", namespace], ["Labels:", "<none>"]]
    assert ["Kind:", "Namespace"] in [ln.split() for ln in r.stdout.splitlines()]
    r = ctl("describe", "pod", "nothing", "-n", namespace)
    assert (r.returncode, r.stderr) == (1, 'Error from server (NotFound): pods "nothing" not found\n')
