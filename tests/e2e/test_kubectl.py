"""The real kubectl against a local cluster with a node, through the kubeconfig `ctl cluster up`
wrote (issue 14, Done when 1).

One cluster for the module (`ctl cluster up --nodes 1` in the module's temp dir, the busybox
image loaded under two tags); the tests run in file order on it, as a user's session would:
version and discovery, `apply -f deploy/examples/` twice and then with a new image (a rolling
update), server-side apply and diff, the output formats, a watch, describe, logs (follow,
previous), exec (with a terminal and with stdin), rollout, scale/label/annotate/edit/patch,
explain, wait, auth can-i, expose, port-forward, delete -f. Each asserts what kubectl printed.
kubectl runs with a HOME of its own (its discovery cache), the cluster's kubeconfig, and
nothing from the machine's user. `cluster down` at the end must leave nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from procs import REPO, Ctl, free_port, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root: node network namespaces, containers"),
              pytest.mark.skipif(shutil.which("kubectl") is None,
                                 reason="no kubectl on PATH (the real client is what is tested)")]

EXAMPLES = REPO / "deploy" / "examples"
OLD, NEW = "skiff.local/busybox:1.35", "skiff.local/busybox:1.36"


class Kubectl:
    """The real kubectl with the cluster's kubeconfig and a HOME of its own."""

    def __init__(self, kubeconfig: str, home: Path):
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "SKIFF_"))}
        self.env.update(KUBECONFIG=kubeconfig, HOME=str(home))

    def __call__(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        out = subprocess.run(["kubectl", *args], input=input, capture_output=True, text=True, timeout=timeout,
                             env={**self.env, **(env or {})})
        if check and out.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({out.returncode}): {out.stderr}{out.stdout}")
        return out

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(["kubectl", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=self.env)

    def json(self, *args: str) -> dict:
        return json.loads(self("get", *args, "-o", "json").stdout)


@pytest.fixture(scope="module")
def kubectl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    from e2e.test_multinode_network import leftovers
    base = tmp_path_factory.mktemp("kubectl")
    cluster_dir = (base / "cluster").resolve()
    archive = base / "busybox.tar"
    subprocess.run([sys.executable, str(REPO / "deploy" / "build-test-image.py"), "--out", str(base / "layout"),
                    "--archive", str(archive), "--tag", OLD, "--tag", NEW], check=True, capture_output=True)
    ctl = Ctl(base / "config")
    tag = hashlib.sha256(str(cluster_dir).encode()).hexdigest()
    try:
        up = ctl("cluster", "up", "--dir", str(cluster_dir), "--port", str(free_port()), "--nodes", "1",
                 "--timeout", "240", timeout=300)
        # What `cluster up` tells the user: `kubectl: KUBECONFIG=<file> kubectl get nodes`.
        said = re.search(r"^kubectl: KUBECONFIG=(\S+) kubectl get nodes$", up.stdout, re.M)
        assert said, up.stdout
        ctl("image", "load", str(archive), timeout=300)
        (base / "home").mkdir()
        yield Kubectl(said.group(1), base / "home")
    finally:
        down = ctl("cluster", "down", "--dir", str(cluster_dir), check=False, timeout=240)
    assert down.returncode == 0, down.stderr
    assert leftovers(cluster_dir, [f"skiff-{tag[:6]}-", f"skb{tag[:6]}", f"skv{tag[:6]}"], f"skiff-{tag[:8]}") == []


def _web_images(kubectl: Kubectl) -> set[str]:
    """The images of the web pods, terminating ones included."""
    pods = kubectl.json("pods", "-l", "app=web")["items"]
    return {c["image"] for p in pods for c in p["spec"]["containers"]}


def test_version_api_resources_and_nodes(kubectl: Kubectl) -> None:
    out = kubectl("version").stdout
    assert re.search(r"^Client Version: v1\.\d+", out, re.M) and re.search(r"^Server Version: v1\.\d+", out, re.M)
    resources = kubectl("api-resources").stdout
    assert re.search(r"^deployments\s+deploy\s+apps/v1\s+true\s+Deployment$", resources, re.M), resources
    assert re.search(r"^pods\s+po\s+v1\s+true\s+Pod$", resources, re.M)
    nodes = kubectl("get", "nodes", "-o", "wide").stdout.splitlines()
    assert nodes[0].split()[:6] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP"]
    assert nodes[1].split()[:2] == ["node-1", "Ready"] and re.search(r"\s198\.1[89]\.\d+\.\d+\s", nodes[1])


def test_apply_twice_then_a_new_image_rolls(kubectl: Kubectl) -> None:
    first = kubectl("apply", "-f", str(EXAMPLES)).stdout
    assert "deployment.apps/web created" in first and "service/web created" in first and "pod/client created" in first
    again = kubectl("apply", "-f", str(EXAMPLES)).stdout.splitlines()
    assert sorted(again) == ["configmap/web-content unchanged", "deployment.apps/web unchanged",
                             "pod/client unchanged", "service/web unchanged"]
    out = kubectl("wait", "--for=condition=Available", "deployment/web", "--timeout=180s", timeout=200).stdout
    assert out.strip() == "deployment.apps/web condition met"
    changed = (EXAMPLES / "web.yaml").read_text().replace(OLD, NEW)
    assert "deployment.apps/web configured" in kubectl("apply", "-f", "-", input=changed).stdout
    out = kubectl("rollout", "status", "deployment/web", "--timeout=180s", timeout=200).stdout
    assert 'deployment "web" successfully rolled out' in out
    wait_for(lambda: _web_images(kubectl) == {NEW}, timeout=60, what="only pods of the new image left")


def test_server_side_apply_and_diff(kubectl: Kubectl, tmp_path: Path) -> None:
    manifest = (EXAMPLES / "web.yaml").read_text().replace(OLD, NEW)
    out = kubectl("apply", "--server-side", "-f", "-", input=manifest).stdout
    assert "deployment.apps/web serverside-applied" in out, out
    # No change: diff prints nothing and exits 0; a change: a unified diff and exit 1.
    same = kubectl("diff", "-f", "-", input=manifest, check=False)
    assert (same.returncode, same.stdout) == (0, ""), same.stderr
    more = kubectl("diff", "-f", "-", input=manifest.replace("replicas: 2", "replicas: 3"), check=False)
    assert more.returncode == 1 and "-  replicas: 2" in more.stdout and "+  replicas: 3" in more.stdout, more


def test_get_pods_in_every_format_and_get_all(kubectl: Kubectl) -> None:
    wide = kubectl("get", "pods", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    client = next(line for line in wide if line.startswith("client "))
    assert client.split()[1:3] == ["1/1", "Running"] and "node-1" in client.split()
    as_yaml = yaml.safe_load(kubectl("get", "pod", "client", "-o", "yaml").stdout)
    assert (as_yaml["kind"], as_yaml["spec"]["nodeName"]) == ("Pod", "node-1")
    as_json = json.loads(kubectl("get", "pods", "-o", "json").stdout)
    assert as_json["kind"] == "List" and "client" in {p["metadata"]["name"] for p in as_json["items"]}
    images = kubectl("get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].spec.containers[0].image}").stdout
    assert set(images.split()) == {NEW}
    everything = kubectl("get", "all").stdout
    for line in ("pod/client ", "service/web ", "deployment.apps/web ", "replicaset.apps/web-"):
        assert line in everything, everything


def test_get_pods_watch_shows_a_change(kubectl: Kubectl) -> None:
    watch = kubectl.popen("get", "pods", "-w")
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(watch.stdout), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any(line.startswith("client ") for line in lines), timeout=30, what="the listing")
        before = len(lines)
        kubectl("label", "pod", "client", "watched=yes")
        # The label changes no column, but the MODIFIED event prints the pod's line again.
        wait_for(lambda: any(line.startswith("client ") for line in lines[before:]), timeout=30,
                 what="the watch's event for client")
    finally:
        watch.kill()
        watch.wait(5)


def test_describe_and_logs_follow_and_previous(kubectl: Kubectl) -> None:
    out = kubectl("describe", "pod", "client").stdout
    assert re.search(r"^Name:\s+client$", out, re.M) and re.search(r"^Node:\s+node-1/", out, re.M)
    assert re.search(r"^Status:\s+Running$", out, re.M) and "Events:" in out
    # A container that prints, lives a moment and fails: `logs -f` follows it to its end,
    # `logs --previous` is the run before.
    kubectl("run", "talker", f"--image={OLD}", "--restart=Always", "--",
            "sh", "-c", "echo run-at-$(date +%s%N); sleep 2; echo bye; exit 1")
    wait_for(lambda: kubectl.json("pod", "talker")["status"].get("containerStatuses", [{}])[0]
             .get("restartCount", 0) >= 1, timeout=90, what="talker restarted once")
    previous = kubectl("logs", "talker", "--previous").stdout.split()
    assert previous[0].startswith("run-at-") and previous[1] == "bye"
    wait_for(lambda: kubectl.json("pod", "talker")["status"]["containerStatuses"][0]["state"].get("running"),
             timeout=90, what="talker running again")
    followed = kubectl("logs", "-f", "talker", timeout=60).stdout.split()
    assert followed[0].startswith("run-at-") and followed[-1] == "bye", followed
    kubectl("delete", "pod", "talker", "--grace-period=1")


def test_exec_with_a_terminal_and_with_stdin(kubectl: Kubectl) -> None:
    # -it needs a terminal on kubectl's side: `script` gives it one.
    command = "kubectl exec -it client -- sh -c 'echo hi; exit 0'"
    out = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True, timeout=60,
                         env=kubectl.env)
    assert out.returncode == 0 and "hi" in out.stdout.splitlines()[0], out
    piped = kubectl("exec", "-i", "client", "--", "sh", "-c", "tr a-z A-Z; echo err >&2", input="hello\nworld\n")
    assert (piped.stdout, piped.stderr) == ("HELLO\nWORLD\n", "err\n")
    failed = kubectl("exec", "client", "--", "sh", "-c", "exit 3", check=False)
    assert (failed.returncode, failed.stderr.strip()) == (3, "command terminated with exit code 3")
    missing = kubectl("exec", "nope", "--", "true", check=False)
    assert (missing.returncode, missing.stderr.strip()) == (1, 'Error from server (NotFound): pods "nope" not found')


def test_rollout_history_undo_and_restart(kubectl: Kubectl) -> None:
    history = kubectl("rollout", "history", "deployment/web").stdout.split("\n")
    assert history[0] == "deployment.apps/web " and history[1].split() == ["REVISION", "CHANGE-CAUSE"]
    assert len([line for line in history[2:] if line.strip()]) >= 2
    assert kubectl("rollout", "undo", "deployment/web").stdout.strip() == "deployment.apps/web rolled back"
    kubectl("rollout", "status", "deployment/web", "--timeout=180s", timeout=200)
    wait_for(lambda: _web_images(kubectl) == {OLD}, timeout=60, what="only pods of the old image left")
    assert kubectl("rollout", "restart", "deployment/web").stdout.strip() == "deployment.apps/web restarted"
    out = kubectl("rollout", "status", "deployment/web", "--timeout=180s", timeout=200).stdout
    assert 'deployment "web" successfully rolled out' in out
    template = kubectl.json("deployment", "web")["spec"]["template"]["metadata"]
    assert "kubectl.kubernetes.io/restartedAt" in template.get("annotations", {})


def test_scale_label_annotate_edit_and_patch(kubectl: Kubectl, tmp_path: Path) -> None:
    assert kubectl("scale", "deployment", "web", "--replicas=3").stdout.strip() == "deployment.apps/web scaled"
    wait_for(lambda: kubectl.json("deployment", "web")["status"].get("readyReplicas") == 3, timeout=120,
             what="3 ready replicas")
    assert kubectl("label", "pod", "client", "tier=tools").stdout.strip() == "pod/client labeled"
    assert kubectl("annotate", "pod", "client", "note=hello").stdout.strip() == "pod/client annotated"
    assert kubectl("get", "pods", "-l", "tier=tools", "-o", "name").stdout.strip() == "pod/client"
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\nsed -i "s/note: hello/note: edited/" "$1"\n')
    editor.chmod(0o755)
    out = kubectl("edit", "pod", "client", env={"EDITOR": str(editor), "KUBE_EDITOR": str(editor)}).stdout
    assert out.strip() == "pod/client edited"
    assert kubectl("get", "pod", "client", "-o", "jsonpath={.metadata.annotations.note}").stdout == "edited"
    for kind, patch in (("strategic", '{"spec":{"revisionHistoryLimit":4}}'),
                        ("merge", '{"metadata":{"labels":{"patched":"merge"}}}'),
                        ("json", '[{"op":"replace","path":"/spec/minReadySeconds","value":1}]')):
        out = kubectl("patch", "deployment", "web", f"--type={kind}", "-p", patch).stdout
        assert out.strip() == "deployment.apps/web patched", (kind, out)
    got = kubectl("get", "deployment", "web", "-o",
                  "jsonpath={.spec.revisionHistoryLimit} {.metadata.labels.patched} {.spec.minReadySeconds}").stdout
    assert got == "4 merge 1"


def test_explain_and_wait(kubectl: Kubectl) -> None:
    out = kubectl("explain", "deployment.spec.strategy").stdout
    assert "KIND:       Deployment" in out and "FIELD: strategy <DeploymentStrategy>" in out and "rollingUpdate" in out
    out = kubectl("wait", "--for=condition=Available", "deployment/web", "--timeout=120s", timeout=150).stdout
    assert out.strip() == "deployment.apps/web condition met"


def test_auth_can_i_and_whoami(kubectl: Kubectl) -> None:
    assert kubectl("auth", "can-i", "create", "deployments").stdout.strip() == "yes"
    refused = kubectl("auth", "can-i", "create", "pods", "--as=system:serviceaccount:default:default", check=False)
    assert (refused.returncode, refused.stdout.strip()) == (1, "no")
    assert kubectl("auth", "can-i", "list", "pods", "--as=system:serviceaccount:default:default",
                   check=False).stdout.strip() == "no"
    assert "kubernetes-admin" in kubectl("auth", "whoami").stdout


def test_expose_and_port_forward(kubectl: Kubectl) -> None:
    out = kubectl("expose", "deployment", "web", "--name=web-exposed", "--port=81", "--target-port=8080").stdout
    assert out.strip() == "service/web-exposed exposed"
    line = kubectl("get", "service", "web-exposed").stdout.splitlines()[1].split()
    assert line[:2] == ["web-exposed", "ClusterIP"] and line[4] == "81/TCP"
    port = free_port()
    forward = kubectl.popen("port-forward", "deployment/web", f"{port}:8080")
    try:
        from e2e.test_services_proxy import _get_from_here
        body = wait_for(lambda: _get_from_here("127.0.0.1", port), timeout=30, what="the forwarded port answering")
        assert b"Hello from Skiff" in body
    finally:
        forward.kill()
        output = forward.communicate(timeout=5)[0]
    assert f"Forwarding from 127.0.0.1:{port} -> 8080" in output, output


IN_CLUSTER = """
apiVersion: v1
kind: Namespace
metadata:
  name: in-cluster
  labels: {pod-security.kubernetes.io/enforce: privileged}   # for the hostPath below
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: reader, namespace: in-cluster}
---
apiVersion: v1
kind: Pod
metadata: {name: asker, namespace: in-cluster}
spec:
  serviceAccountName: reader
  terminationGracePeriodSeconds: 1
  containers:
  - name: sh
    image: %(image)s
    command: ["sleep", "3600"]
    volumeMounts: [{name: kubectl, mountPath: /usr/local/bin/kubectl, readOnly: true}]
  volumes:
  - name: kubectl
    hostPath: {path: %(kubectl)s, type: File}
"""
VIEW_BINDING = """
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader-views, namespace: in-cluster}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{kind: ServiceAccount, name: reader, namespace: in-cluster}]
"""


def test_in_cluster_client_with_its_service_account(kubectl: Kubectl) -> None:
    # The pod's images hold no Python (they are built from busybox-static), so the in-cluster
    # client is kubectl itself (client-go's in-cluster config: KUBERNETES_SERVICE_HOST/PORT, the
    # mounted ServiceAccount token and CA), a static binary mounted from this machine.
    real = str(Path(shutil.which("kubectl") or "kubectl").resolve())
    kubectl("apply", "-f", "-", input=IN_CLUSTER % {"image": OLD, "kubectl": real})
    try:
        kubectl("wait", "-n", "in-cluster", "--for=condition=Ready", "pod/asker", "--timeout=120s", timeout=150)
        ask = ("exec", "-n", "in-cluster", "asker", "--", "kubectl", "get", "pods", "-o", "name")
        refused = kubectl(*ask, check=False)
        assert refused.returncode == 1
        assert ('pods is forbidden: User "system:serviceaccount:in-cluster:reader" cannot list resource "pods"'
                in refused.stderr), refused.stderr
        kubectl("apply", "-f", "-", input=VIEW_BINDING)
        listed = wait_for(lambda: (lambda r: r if r.returncode == 0 else None)(kubectl(*ask, check=False)),
                          timeout=30, what="the pod listing its namespace once bound to view")
        assert listed.stdout.split() == ["pod/asker"]
    finally:
        kubectl("delete", "namespace", "in-cluster", "--wait=false", check=False)


def test_delete_f(kubectl: Kubectl) -> None:
    out = kubectl("delete", "-f", str(EXAMPLES), "--wait=true", timeout=180).stdout.splitlines()
    assert sorted(out) == ['configmap "web-content" deleted', 'deployment.apps "web" deleted',
                           'pod "client" deleted', 'service "web" deleted']
    wait_for(lambda: kubectl("get", "pods", "-l", "app=web", "-o", "name").stdout == "", timeout=120,
             what="the web pods gone")
    gone = kubectl("get", "deployment", "web", check=False)
    assert 'deployments.apps "web" not found' in gone.stderr
