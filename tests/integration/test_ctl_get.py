"""`ctl get`: kubectl's tables per kind, output formats, selectors, -A, --show-labels and -w."""

import json
import os
import selectors
import signal
import subprocess
import sys
import time

import pytest
import yaml

OBJECTS = """\
apiVersion: v1
kind: Pod
metadata: {name: web-1, labels: {app: web, tier: front}}
spec:
  containers: [{name: c, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: db-1, labels: {app: db}}
spec:
  nodeName: node-a
  containers: [{name: c, image: busybox}, {name: d, image: busybox}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: "busybox:1.36"}]
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: rs1}
spec:
  replicas: 1
  selector: {matchLabels: {app: rs1}}
  template:
    metadata: {labels: {app: rs1}}
    spec:
      containers: [{name: c, image: busybox}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ds1}
spec:
  selector: {matchLabels: {app: ds1}}
  template:
    metadata: {labels: {app: ds1}}
    spec:
      nodeSelector: {disk: ssd}
      containers: [{name: c, image: busybox}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: job1}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox}]
---
apiVersion: v1
kind: Service
metadata: {name: svc1}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Secret
metadata: {name: sec1}
stringData: {a: b}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cm1, labels: {app: web}}
data: {a: b, c: d}
"""


def apply_objects(ctl, namespace):
    r = ctl("apply", "-f", "-", "-n", namespace, input=OBJECTS)
    assert r.returncode == 0, r.stderr


def headers(text):
    """The header line of each table, as lists of column names (split on 3+ spaces)."""
    blocks = text.strip("\n").split("\n\n")
    return [[h.strip() for h in block.splitlines()[0].split("   ") if h.strip()] for block in blocks]


def test_default_tables_per_kind(ctl, namespace):
    apply_objects(ctl, namespace)
    r = ctl("get", "po,deploy,rs,ds,job,svc,secret,cm", "-n", namespace)
    assert r.returncode == 0, r.stderr
    assert headers(r.stdout) == [
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        ["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"],
        ["NAME", "COMPLETIONS", "DURATION", "AGE"],
        ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
        ["NAME", "TYPE", "DATA", "AGE"],
        ["NAME", "DATA", "AGE"],
    ]
    lines = r.stdout.splitlines()
    assert [ln.split()[:4] for ln in lines if ln.startswith("pod/")] == [["pod/db-1", "0/2", "Pending", "0"],
                                                                         ["pod/web-1", "0/1", "Pending", "0"]]
    assert any(ln.split()[:4] == ["deployment.apps/web", "0/2", "0", "0"] for ln in lines)
    assert any(ln.split()[:7] == ["daemonset.apps/ds1", "0", "0", "0", "0", "0", "disk=ssd"] for ln in lines)
    assert any(ln.split()[:4] == ["service/svc1", "ClusterIP"] + ln.split()[2:3] + ["<none>"] for ln in lines)
    assert any(ln.split()[:4] == ["secret/sec1", "Opaque", "1"] + ln.split()[3:4] for ln in lines)
    # One kind: names without the kind.
    r = ctl("get", "pods", "-n", namespace)
    assert r.stdout.splitlines()[0] == "NAME    READY   STATUS    RESTARTS   AGE"
    assert r.stdout.splitlines()[1].startswith("db-1    0/2     Pending   0          ")
    r = ctl("get", "ns", namespace)
    assert r.stdout.splitlines()[0].split() == ["NAME", "STATUS", "AGE"]
    assert r.stdout.splitlines()[1].split()[:2] == [namespace, "Active"]
    nodes = ctl("get", "no")  # cluster-wide; other tests may have registered some
    assert nodes.returncode == 0
    if nodes.stdout:
        assert nodes.stdout.splitlines()[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    else:
        assert nodes.stderr == "No resources found\n"


def test_output_formats(ctl, namespace):
    apply_objects(ctl, namespace)
    wide = ctl("get", "pods", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert [h.strip() for h in wide[0].split("   ") if h.strip()] == [
        "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE", "READINESS GATES"]
    assert wide[1].split()[5:7] == ["<none>", "node-a"]
    deploy_wide = ctl("get", "deploy", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert deploy_wide[0].split()[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert deploy_wide[1].split()[-3:] == ["c", "busybox:1.36", "app=web"]

    one = yaml.safe_load(ctl("get", "pod", "web-1", "-n", namespace, "-o", "yaml").stdout)
    assert (one["kind"], one["metadata"]["name"], one["status"]["phase"]) == ("Pod", "web-1", "Pending")
    many = json.loads(ctl("get", "pods", "-n", namespace, "-o", "json").stdout)
    assert many["kind"] == "List" and sorted(i["metadata"]["name"] for i in many["items"]) == ["db-1", "web-1"]
    assert ctl("get", "po,cm", "-n", namespace, "-o", "name").stdout.splitlines() == [
        "pod/db-1", "pod/web-1", "configmap/cm1"]
    assert ctl("get", "pod/web-1", "deploy/web", "-n", namespace, "-o", "name").stdout.splitlines() == [
        "pod/web-1", "deployment.apps/web"]
    assert ctl("get", "pods", "-n", namespace, "-o", "jsonpath={.items[*].metadata.name}").stdout == "db-1 web-1"
    r = ctl("get", "pods", "-n", namespace, "-o", "custom-columns=NAME:.metadata.name,NODE:.spec.nodeName")
    assert r.stdout.splitlines() == ["NAME    NODE", "db-1    node-a", "web-1   <none>"]


def test_selectors_all_namespaces_and_labels(ctl, namespace):
    apply_objects(ctl, namespace)

    def names(*args):
        return ctl("get", *args, "-n", namespace, "-o", "name").stdout.splitlines()
    assert names("pods", "-l", "app=web") == ["pod/web-1"]
    assert names("pods", "-l", "app!=web") == ["pod/db-1"]
    assert names("pods", "-l", "app in (web,db)") == ["pod/db-1", "pod/web-1"]
    assert names("pods", "-l", "!tier") == ["pod/db-1"]
    assert names("po,cm", "-l", "app=web") == ["pod/web-1", "configmap/cm1"]
    assert names("pods", "--field-selector", "spec.nodeName=node-a") == ["pod/db-1"]

    r = ctl("get", "cm", "-A")
    assert r.stdout.splitlines()[0].split() == ["NAMESPACE", "NAME", "DATA", "AGE"]
    assert any(line.split()[:3] == [namespace, "cm1", "2"] for line in r.stdout.splitlines())

    r = ctl("get", "pods", "-n", namespace, "--show-labels")
    lines = r.stdout.splitlines()
    assert lines[0].split()[-1] == "LABELS"
    assert lines[1].split()[-1] == "app=db" and lines[2].split()[-1] == "app=web,tier=front"


def test_empty_and_missing(ctl, namespace):
    r = ctl("get", "pods", "-n", namespace)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", f"No resources found in {namespace} namespace.\n")
    r = ctl("get", "pods", "-n", namespace, "-o", "json")
    assert json.loads(r.stdout)["items"] == []
    r = ctl("get", "cm", "a", "b", "-n", namespace)
    assert r.returncode == 1
    assert r.stderr.splitlines() == ['Error from server (NotFound): configmaps "a" not found',
                                     'Error from server (NotFound): configmaps "b" not found']


def read_lines_until(proc, predicate, timeout=20.0):
    """Read proc.stdout lines until predicate(lines) holds; fail at the deadline."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    lines, buffer = [], b""
    deadline = time.monotonic() + timeout
    while not predicate(lines):
        left = deadline - time.monotonic()
        assert left > 0, f"timed out; got {lines!r}"
        if sel.select(left):
            chunk = os.read(proc.stdout.fileno(), 65536)
            assert chunk, f"ctl exited early: {lines!r} {proc.stderr.read()!r}"
            buffer += chunk
            *done, buffer = buffer.split(b"\n")
            lines += [d.decode() for d in done]
    return lines


# `python -m cli.main`, with Ctrl-C working as from a terminal: a suite started from a background
# shell job passes SIGINT down as ignored (POSIX: `cmd &` without job control), and Python then
# leaves it ignored. (Not preexec_fn: forking this test process, which has gRPC threads, and
# running Python in the child before exec can crash the child.)
CTL_WITH_CTRL_C = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
                   "runpy.run_module('cli.main', run_name='__main__', alter_sys=True)")


def test_watch_streams_changes_until_interrupted(ctl, namespace, api_server, tmp_path):
    ctl("apply", "-f", "-", "-n", namespace, input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: first}\n")
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "SKIFF_CONFIG": str(tmp_path / "none")}
    # -X faulthandler: should the watch not end on SIGINT, SIGABRT makes it print every thread's stack.
    proc = subprocess.Popen([sys.executable, "-X", "faulthandler", "-c", CTL_WITH_CTRL_C, "get", "cm", "-w",
                             "-n", namespace, "--config", str(api_server.admin_config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))), env=env)
    try:
        lines = read_lines_until(proc, lambda ls: len(ls) >= 2)
        assert lines[0].split() == ["NAME", "DATA", "AGE"] and lines[1].split()[:2] == ["first", "0"]
        ctl("apply", "-f", "-", "-n", namespace,
            input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: second}\ndata: {a: b}\n")
        lines = read_lines_until(proc, lambda ls: any(line.startswith("second") for line in ls))
        assert lines[0].split()[:2] == ["second", "1"]
        assert len(lines[0]) >= len("second   1")
        assert ctl("delete", "cm", "first", "-n", namespace).returncode == 0
        lines = read_lines_until(proc, lambda ls: any(line.startswith("first") for line in ls))
        assert lines[0].split()[:2] == ["first", "0"]
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(10) == 0
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            proc.wait(10)
            pytest.fail("ctl get -w did not end within 10 s of SIGINT; its threads:\n"
                        + proc.stderr.read().decode(errors="replace")[-6000:])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        proc.stdout.close()
        proc.stderr.close()
