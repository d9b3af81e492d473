"""The real kubectl against the session's API server, through its REST API (controlplane/rest).

kubectl (found on PATH; skipped without one) uses the kubeconfig the control plane wrote
(`<state-dir>/kubeconfig`: https, the cluster CA, the admin's client certificate), as a
user would. Each test asserts what kubectl printed. The API server runs without scheduler
and controllers (the session fixture), so pods stay Pending and no ReplicaSets appear.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml

from procs import ControlPlane, wait_for

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="no kubectl on PATH (the real client is what is tested)")

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {{app: web}}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: web
        image: {image}
        command: ["sleep", "3600"]
        ports:
        - containerPort: 80
"""


class Kubectl:
    def __init__(self, kubeconfig: Path, home: Path):
        # A HOME of its own: kubectl's discovery and OpenAPI cache must not outlive the test's server.
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(home)}

    def __call__(self, *args: str, input: str | None = None, check: bool = True,
                 timeout: float = 60) -> subprocess.CompletedProcess:
        out = subprocess.run([KUBECTL, *args], input=input, capture_output=True, text=True, env=self.env,
                             timeout=timeout)
        if check and out.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({out.returncode}): {out.stderr}")
        return out

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([KUBECTL, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=self.env)


@pytest.fixture
def kubectl(api_server: ControlPlane, tmp_path: Path) -> Kubectl:
    return Kubectl(api_server.kubeconfig, tmp_path)


@pytest.fixture
def ns(kubectl: Kubectl) -> str:
    name = f"k-{uuid.uuid4().hex[:10]}"
    out = kubectl("create", "-f", "-", input=f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n")
    assert out.stdout.strip() == f"namespace/{name} created"
    return name


def test_the_control_plane_writes_a_kubeconfig_for_kubectl(api_server: ControlPlane) -> None:
    config = yaml.safe_load(api_server.kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    assert cluster["server"] == f"https://127.0.0.1:{api_server.rest_port}"
    assert base64.b64decode(cluster["certificate-authority-data"]).startswith(b"-----BEGIN CERTIFICATE-----")
    user = config["users"][0]["user"]
    assert set(user) == {"client-certificate-data", "client-key-data"}


def test_version_discovery_and_api_resources(kubectl: Kubectl) -> None:
    version = kubectl("version").stdout
    assert "Server Version: v1.32.0-skiff." in version
    resources = kubectl("api-resources").stdout.splitlines()
    assert resources[0].split() == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    rows = {line.split()[0]: line.split() for line in resources[1:]}
    assert rows["pods"] == ["pods", "po", "v1", "true", "Pod"]
    assert rows["deployments"] == ["deployments", "deploy", "apps/v1", "true", "Deployment"]
    assert rows["nodes"] == ["nodes", "no", "v1", "false", "Node"]


def test_get_nodes_and_pods_across_namespaces(kubectl: Kubectl, ns: str) -> None:
    node = f"n-{uuid.uuid4().hex[:8]}"
    kubectl("create", "-f", "-", input=f"apiVersion: v1\nkind: Node\nmetadata:\n  name: {node}\n")
    try:
        assert node in kubectl("get", "nodes").stdout.split()
        kubectl("run", "p1", "-n", ns, "--image=busybox", "--", "sleep", "60")
        lines = kubectl("get", "pods", "-A").stdout.splitlines()
        # The server's Table: the columns `ctl get` prints (api/printing/columns.py); NAMESPACE is kubectl's.
        assert lines[0].split() == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        assert [ns, "p1", "0/1", "Pending", "0"] in [line.split()[:5] for line in lines[1:]]
        wide = kubectl("get", "pods", "-n", ns, "-o", "wide").stdout.splitlines()
        assert wide[0].split()[5:] == ["IP", "NODE", "NOMINATED", "NODE", "READINESS", "GATES"]
        assert kubectl("get", "pods", "-n", ns, "-o", "jsonpath={.items[*].metadata.name}").stdout == "p1"
    finally:
        kubectl("delete", "node", node)


def test_apply_created_unchanged_configured_then_delete(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    manifest = tmp_path / "web.yaml"
    manifest.write_text(DEPLOYMENT.format(image="busybox:1.36"))
    assert kubectl("apply", "-n", ns, "-f", str(manifest)).stdout.strip() == "deployment.apps/web created"
    assert kubectl("apply", "-n", ns, "-f", str(manifest)).stdout.strip() == "deployment.apps/web unchanged"
    manifest.write_text(DEPLOYMENT.format(image="busybox:1.37"))
    assert kubectl("apply", "-n", ns, "-f", str(manifest)).stdout.strip() == "deployment.apps/web configured"
    live = yaml.safe_load(kubectl("get", "deploy", "web", "-n", ns, "-o", "yaml").stdout)
    container = live["spec"]["template"]["spec"]["containers"][0]
    # The strategic merge patch kubectl sent merged the container by name: the rest of it is kept.
    assert (container["image"], container["command"], container["ports"]) == \
        ("busybox:1.37", ["sleep", "3600"], [{"containerPort": 80, "protocol": "TCP"}])
    assert live["metadata"]["generation"] == 2
    kubectl("create", "-n", ns, "-f", "-", input="apiVersion: v1\nkind: Service\nmetadata: {name: front}\n"
                                                 "spec: {selector: {app: web}, ports: [{port: 80}]}\n")
    names = [line.split()[0] for line in kubectl("get", "all", "-n", ns).stdout.splitlines() if line.strip()]
    assert {"deployment.apps/web", "service/front"} <= set(names)   # the `all` category, two kinds: named by kind
    assert kubectl("delete", "-n", ns, "-f", str(manifest)).stdout.strip() == 'deployment.apps "web" deleted'
    missing = kubectl("get", "deploy", "web", "-n", ns, check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == 'Error from server (NotFound): deployments.apps "web" not found'


def test_patch_in_all_three_types_and_server_side_apply(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    manifest = tmp_path / "web.yaml"
    manifest.write_text(DEPLOYMENT.format(image="busybox:1.36"))
    kubectl("apply", "-n", ns, "-f", str(manifest))
    replicas = lambda: kubectl("get", "deploy", "web", "-n", ns, "-o", "jsonpath={.spec.replicas}").stdout  # noqa: E731
    kubectl("patch", "deploy", "web", "-n", ns, "--type=json", "-p", '[{"op":"replace","path":"/spec/replicas","value":3}]')
    assert replicas() == "3"
    kubectl("patch", "deploy", "web", "-n", ns, "--type=merge", "-p", '{"spec":{"replicas":4}}')
    assert replicas() == "4"
    out = kubectl("patch", "deploy", "web", "-n", ns, "-p", '{"spec":{"replicas":5}}')   # strategic
    assert out.stdout.strip() == "deployment.apps/web patched" and replicas() == "5"
    kubectl("label", "deploy", "web", "-n", ns, "tier=front")
    assert kubectl("get", "deploy", "-n", ns, "-l", "tier=front", "-o", "name").stdout.strip() == "deployment.apps/web"
    manifest.write_text(DEPLOYMENT.format(image="busybox:1.38"))
    out = kubectl("apply", "--server-side", "-n", ns, "-f", str(manifest))
    assert out.stdout.strip() == "deployment.apps/web serverside-applied"
    assert out.stderr == ""   # kubectl's migration of last-applied (a metadata-only apply) succeeded too
    image = kubectl("get", "deploy", "web", "-n", ns, "-o", "jsonpath={.spec.template.spec.containers[0].image}")
    assert image.stdout == "busybox:1.38"


def test_scale_edit_and_diff(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    manifest = tmp_path / "web.yaml"
    manifest.write_text(DEPLOYMENT.format(image="busybox:1.36"))
    kubectl("apply", "-n", ns, "-f", str(manifest))
    replicas = lambda: kubectl("get", "deploy", "web", "-n", ns, "-o", "jsonpath={.spec.replicas}").stdout  # noqa: E731
    assert kubectl("scale", "deploy", "web", "-n", ns, "--replicas=3").stdout.strip() == "deployment.apps/web scaled"
    assert replicas() == "3"
    out = kubectl("scale", "deploy", "web", "-n", ns, "--replicas=4", "--current-replicas=2", check=False)
    assert out.returncode == 1 and "Expected replicas to be 2, was 3" in out.stderr
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/replicas: 3/replicas: 6/' \"$1\"\n")
    editor.chmod(0o755)
    edited = subprocess.run([KUBECTL, "edit", "deploy", "web", "-n", ns], capture_output=True, text=True,
                            env={**kubectl.env, "EDITOR": str(editor)}, timeout=60)
    assert edited.stdout.strip() == "deployment.apps/web edited" and replicas() == "6"
    diff = kubectl("diff", "-n", ns, "-f", str(manifest), check=False)   # a server-side dry run of the apply
    assert diff.returncode == 1 and "-  replicas: 6\n+  replicas: 2" in diff.stdout
    assert replicas() == "6"


def test_get_pods_watch_receives_an_event(kubectl: Kubectl, ns: str) -> None:
    watch = kubectl.popen("get", "pods", "-n", ns, "-w")
    try:
        # The watch starts with a list; the pod may come before or after it: both print it.
        kubectl("run", "watched", "-n", ns, "--image=busybox", "--", "sleep", "60")
        seen: list[str] = []

        def printed() -> bool:
            line = watch.stdout.readline()
            seen.append(line)
            return line.split()[:1] == ["watched"]
        wait_for(printed, timeout=20, what="kubectl get pods -w to print the new pod")
    finally:
        watch.kill()
        watch.wait(5)


def test_missing_object_invalid_object_and_unknown_resource(kubectl: Kubectl, ns: str) -> None:
    out = kubectl("get", "pod", "nope", "-n", ns, check=False)
    assert (out.returncode, out.stderr.strip()) == (1, 'Error from server (NotFound): pods "nope" not found')
    bad = DEPLOYMENT.format(image="busybox").replace("replicas: 2", "replicas: -1")
    out = kubectl("apply", "-n", ns, "-f", "-", input=bad, check=False)
    assert out.returncode == 1
    assert 'Deployment "web" is invalid' in out.stderr and "spec.replicas" in out.stderr
    out = kubectl("get", "frobnicators", check=False)
    assert out.returncode == 1 and 'the server doesn\'t have a resource type "frobnicators"' in out.stderr


def test_explain_reads_the_models_schema(kubectl: Kubectl) -> None:
    out = kubectl("explain", "deployment.spec.strategy").stdout
    assert "KIND:       Deployment" in out and "FIELD: strategy <DeploymentStrategy>" in out
    assert "rollingUpdate" in out and "type\t<string>" in out


def test_rbac_refusal_and_no_credentials_as_kubectl_prints_them(api_server: ControlPlane, tmp_path: Path) -> None:
    from controlplane.client import kubeconfig
    from controlplane.pki.ca import ClusterPKI
    pki = ClusterPKI(api_server.state_dir / "pki")
    alice = pki.issue(common_name="alice", client=True)
    server = f"https://127.0.0.1:{api_server.rest_port}"
    config = tmp_path / "alice.conf"
    kubeconfig.write(config, kubeconfig.build(cluster="skiff", server=server, ca=pki.ca_pem, user="alice",
                                              cert=alice.cert, key=alice.key))
    out = Kubectl(config, tmp_path)("get", "pods", "-n", "default", check=False)
    assert out.returncode == 1
    assert out.stderr.strip() == ('Error from server (Forbidden): pods is forbidden: User "alice" cannot list '
                                  'resource "pods" in API group "" in the namespace "default"')
    # kubectl auth can-i / whoami (SelfSubjectAccessReview, SelfSubjectReview; kubectl sends them as protobuf).
    out = Kubectl(config, tmp_path)("auth", "can-i", "list", "pods", "-n", "default", check=False)
    assert (out.returncode, out.stdout.strip()) == (1, "no")
    assert Kubectl(api_server.kubeconfig, tmp_path)("auth", "can-i", "create", "deployments").stdout.strip() == "yes"
    whoami = Kubectl(config, tmp_path)("auth", "whoami").stdout.splitlines()
    assert whoami[1].split() == ["Username", "alice"] and whoami[2].split() == ["Groups", "[system:authenticated]"]
    anonymous = tmp_path / "nobody.conf"   # a token nobody issued
    kubeconfig.write(anonymous, kubeconfig.build(cluster="skiff", server=server, ca=pki.ca_pem, user="nobody",
                                                 token="abcdef.0123456789abcdef"))
    out = Kubectl(anonymous, tmp_path)("get", "pods", check=False)
    assert out.returncode == 1
    assert out.stderr.startswith("error: You must be logged in to the server (Unauthorized: bootstrap token "
                                 "'abcdef' is unknown")


def test_a_watching_kubectl_does_not_hold_up_the_shutdown(etcd, tmp_path: Path) -> None:
    cp = ControlPlane(tmp_path / "cp", etcd_endpoints=etcd.endpoint,
                      extra_args=["--etcd-prefix", f"/test-{uuid.uuid4().hex[:8]}", "--no-scheduler",
                                  "--no-controllers"]).start()
    kubectl = Kubectl(cp.kubeconfig, tmp_path)
    watch = None
    try:
        kubectl("run", "sleeper", "--image=busybox", "--", "sleep", "60")
        watch = kubectl.popen("get", "pods", "-w")
        # Its list printed the pod: the watch request follows at once.
        wait_for(lambda: watch.stdout.readline().split()[:1] == ["sleeper"], timeout=20, what="the list to print")
        started = time.monotonic()
        cp.proc.terminate()
        cp.proc.wait(timeout=15)
        assert time.monotonic() - started < 6
        watch.wait(timeout=15)   # the stream ended: kubectl gives up once it cannot reconnect
    finally:
        cp.stop()
        if watch is not None and watch.poll() is None:
            watch.kill()
            watch.wait(5)


def test_chunked_list(kubectl: Kubectl, ns: str) -> None:
    for name in ("a", "b", "c", "d", "e"):
        kubectl("create", "-n", ns, "-f", "-", input=f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\n")
    # Pages of two (limit/continue), in name order, none lost or repeated.
    out = kubectl("get", "configmaps", "-n", ns, "--chunk-size=2", "-o", "name").stdout.split()
    assert [n for n in out if n != "configmap/kube-root-ca.crt"] == [f"configmap/{n}" for n in "abcde"]


def test_kubectl_create_subcommands_send_protobuf_which_is_read(kubectl: Kubectl, ns: str) -> None:
    # `kubectl create namespace|configmap|secret|deployment` send Kubernetes' protobuf (no JSON fallback).
    name = f"x-{uuid.uuid4().hex[:6]}"
    try:
        assert kubectl("create", "namespace", name).stdout.strip() == f"namespace/{name} created"
        assert kubectl("get", "namespace", name, "-o", "jsonpath={.metadata.name}").stdout == name
    finally:
        kubectl("delete", "namespace", name, "--wait=false", check=False)
    out = kubectl("create", "configmap", "conf", "-n", ns, "--from-literal=a=1", "--from-literal=b=two")
    assert out.stdout.strip() == "configmap/conf created"
    assert kubectl("get", "configmap", "conf", "-n", ns, "-o", "jsonpath={.data.b}").stdout == "two"
    kubectl("create", "secret", "generic", "s", "-n", ns, "--from-literal=pw=hunter2")
    pw = kubectl("get", "secret", "s", "-n", ns, "-o", "jsonpath={.data.pw}").stdout
    assert base64.b64decode(pw) == b"hunter2"
    out = kubectl("create", "deployment", "d", "-n", ns, "--image=skiff.local/busybox:1.35", "--replicas=3",
                  "--port=8080")
    assert out.stdout.strip() == "deployment.apps/d created"
    got = yaml.safe_load(kubectl("get", "deployment", "d", "-n", ns, "-o", "yaml").stdout)
    assert got["spec"]["replicas"] == 3 and got["spec"]["selector"]["matchLabels"] == {"app": "d"}
    container = got["spec"]["template"]["spec"]["containers"][0]
    assert (container["image"], container["ports"][0]["containerPort"]) == ("skiff.local/busybox:1.35", 8080)
    # A kind whose protobuf Skiff does not read: a 415 that says so.
    out = kubectl("create", "role", "r", "-n", ns, "--verb=get", "--resource=pods", check=False)
    assert out.returncode == 1 and "Skiff reads Kubernetes' protobuf only for" in out.stderr, out.stderr


def test_a_body_over_the_limit_is_refused(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n  blob: " + "x" * (4 << 20) + "\n")
    out = kubectl("create", "-n", ns, "-f", str(big), check=False)
    assert out.returncode == 1
    assert "Error from server (RequestEntityTooLarge)" in out.stderr and "at most 1572864" in out.stderr, out.stderr


def test_a_deeply_nested_body_is_refused_by_name(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    nested = tmp_path / "nested.json"
    for depth in (150, 100_000):     # past the limit; past Python's own decoder stack
        nested.write_text('{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "deep"}, "data": '
                          + "[" * depth + "]" * depth + "}")
        out = kubectl("create", "--raw", path, "-f", str(nested), check=False)
        assert out.returncode == 1 and "nests maps and lists more than 100 levels deep" in out.stderr, out.stderr
    assert "NotFound" in kubectl("get", "configmap", "deep", "-n", ns, check=False).stderr


def test_field_validation_strict_warn_and_ignore(kubectl: Kubectl, ns: str) -> None:
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s}\ndata: {a: '1'}\nbogus: 1\n"
    strict = kubectl("create", "-n", ns, "-f", "-", input=manifest % "strict", check=False)
    assert strict.returncode == 1 and 'The ConfigMap "strict" is invalid: bogus: unknown field' in strict.stderr
    warned = kubectl("create", "-n", ns, "--validate=warn", "-f", "-", input=manifest % "warned")
    assert warned.stdout.strip() == "configmap/warned created"
    assert 'Warning: unknown field "bogus"' in warned.stderr, warned.stderr
    ignored = kubectl("apply", "-n", ns, "--validate=false", "-f", "-", input=manifest % "ignored")
    assert (ignored.stdout.strip(), ignored.stderr) == ("configmap/ignored created", "")
    assert kubectl("get", "configmap", "ignored", "-n", ns, "-o", "jsonpath={.data.a}").stdout == "1"


def test_aggregated_discovery_answers_in_two_requests(kubectl: Kubectl) -> None:
    # kubectl asks /api and /apis for apidiscovery.k8s.io/v2 first; served, it needs no per-group lists.
    out = kubectl("api-resources", "-v=6")
    asked = [line.split(" GET ", 1)[1].split()[0] for line in out.stderr.splitlines() if " GET https://" in line]
    assert sorted(a.rsplit("/", 1)[1].split("?")[0] for a in asked) == ["api", "apis"], asked
    assert any(line.split()[:3] == ["deployments", "deploy", "apps/v1"] for line in out.stdout.splitlines())
    assert any(line.split()[:2] == ["pods", "po"] for line in out.stdout.splitlines())
