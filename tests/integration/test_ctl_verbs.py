"""kubectl's everyday verbs in `ctl`, typed the way the Kubernetes documentation tells users to.

label, annotate, taint, create (namespace, deployment, configmap, secret generic, job,
serviceaccount), run, set image, patch (strategic, merge, json), edit (with $EDITOR),
wait, events, completion. Against a real API server on etcd (no scheduler, no
controllers: these verbs only write objects); each asserts what the user sees.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml


def ok(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr}{r.stdout}"
    assert "Traceback" not in r.stderr
    return r.stdout


def fails(r: subprocess.CompletedProcess, message: str) -> None:
    assert r.returncode == 1, f"expected failure, got {r.returncode}: {r.stdout}{r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    assert message in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def get(ctl, *args: str) -> dict:
    return json.loads(ok(ctl("get", *args, "-o", "json")))


@pytest.fixture
def ns(ctl) -> str:
    name = f"v-{uuid.uuid4().hex[:8]}"
    ok(ctl("create", "namespace", name))
    return name


@pytest.fixture
def node(ctl) -> str:
    name = f"node-{uuid.uuid4().hex[:6]}"
    manifest = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}
    ok(ctl("apply", "-f", "-", input=json.dumps(manifest)))
    return name


def test_create_namespace_as_the_docs_do(ctl):
    name = f"qos-example-{uuid.uuid4().hex[:6]}"
    assert ok(ctl("create", "namespace", name)) == f"namespace/{name} created\n"
    assert get(ctl, "namespace", name)["metadata"]["name"] == name
    fails(ctl("create", "namespace", name), f'Error from server (AlreadyExists): namespaces "{name}" already exists')
    fails(ctl("create", "namespace", "Bad_Name"), 'metadata.name: Invalid value: "Bad_Name"')


def test_label_nodes_and_pods(ctl, node, ns):
    assert ok(ctl("label", "nodes", node, "disktype=ssd")) == f"node/{node} labeled\n"
    assert get(ctl, "node", node)["metadata"]["labels"]["disktype"] == "ssd"
    fails(ctl("label", "nodes", node, "disktype=hdd"), "'disktype' already has a value (ssd), and --overwrite is false")
    assert ok(ctl("label", "nodes", node, "disktype=hdd", "--overwrite")) == f"node/{node} labeled\n"
    assert get(ctl, "node", node)["metadata"]["labels"]["disktype"] == "hdd"
    assert ok(ctl("label", f"node/{node}", "disktype-")) == f"node/{node} unlabeled\n"
    assert "disktype" not in (get(ctl, "node", node)["metadata"].get("labels") or {})
    fails(ctl("label", "nodes", node, "bad key=x"), "")  # click splits nothing: the server names the key
    # -l and --all on namespaced objects
    for name in ("a", "b"):
        ok(ctl("create", "configmap", name, "--from-literal=k=v", "-n", ns))
    out = ok(ctl("label", "cm", "--all", "-n", ns, "tier=web"))
    assert out == "configmap/a labeled\nconfigmap/b labeled\n"
    assert ok(ctl("label", "cm", "-l", "tier=web", "-n", ns, "env=prod")).count("labeled") == 2
    fails(ctl("label", "cm", "a", "-n", ns, "Bad/Key/x=1"), "metadata.labels")


def test_annotate(ctl, ns):
    ok(ctl("create", "configmap", "game", "--from-literal=lives=3", "-n", ns))
    assert ok(ctl("annotate", "cm", "game", "-n", ns, "description=my frontend")) == "configmap/game annotated\n"
    assert get(ctl, "cm", "game", "-n", ns)["metadata"]["annotations"]["description"] == "my frontend"
    fails(ctl("annotate", "cm/game", "-n", ns, "description=other"), "--overwrite is false")
    ok(ctl("annotate", "cm/game", "-n", ns, "description-"))
    assert "description" not in (get(ctl, "cm", "game", "-n", ns)["metadata"].get("annotations") or {})


def test_taint_nodes(ctl, node):
    assert ok(ctl("taint", "nodes", node, "key1=value1:NoSchedule")) == f"node/{node} tainted\n"
    taints = get(ctl, "node", node)["spec"]["taints"]
    assert taints == [{"key": "key1", "value": "value1", "effect": "NoSchedule"}]
    fails(ctl("taint", "nodes", node, "key1=value2:NoSchedule"),
          f"node {node} already has key1 taint(s) with same effect(s) and --overwrite is false")
    ok(ctl("taint", "nodes", node, "key1=value1:NoExecute"))
    assert {t["effect"] for t in get(ctl, "node", node)["spec"]["taints"]} == {"NoSchedule", "NoExecute"}
    assert ok(ctl("taint", "nodes", node, "key1=value1:NoSchedule-")) == f"node/{node} untainted\n"
    assert [t["effect"] for t in get(ctl, "node", node)["spec"]["taints"]] == ["NoExecute"]
    ok(ctl("taint", "nodes", node, "key1-"))
    assert not get(ctl, "node", node)["spec"].get("taints")
    fails(ctl("taint", "nodes", node, "key1:NoSchedule-"), 'taint "key1:NoSchedule" not found')
    fails(ctl("taint", "nodes", node, "key1=v:Sometimes"), "unsupported taint effect 'Sometimes'")
    fails(ctl("taint", "pods", "x", "key1=v:NoSchedule"), "taints apply only to nodes")


def test_create_deployment_configmap_secret_job_serviceaccount(ctl, ns, tmp_path):
    assert ok(ctl("create", "deployment", "web", "--image=nginx:1.27", "--replicas=3", "-n", ns)) == \
        "deployment.apps/web created\n"
    d = get(ctl, "deploy", "web", "-n", ns)
    assert d["spec"]["replicas"] == 3 and d["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    assert d["spec"]["template"]["spec"]["containers"][0]["name"] == "nginx"
    assert d["spec"]["template"]["metadata"]["labels"] == {"app": "web"}

    (tmp_path / "ui.properties").write_text("color.good=purple\n")
    ok(ctl("create", "configmap", "game-config", "--from-literal=lives=3",
           f"--from-file={tmp_path / 'ui.properties'}", "-n", ns))
    assert get(ctl, "cm", "game-config", "-n", ns)["data"] == {"lives": "3", "ui.properties": "color.good=purple\n"}
    fails(ctl("create", "configmap", "x", "--from-literal=novalue", "-n", ns), "invalid literal source novalue")
    fails(ctl("create", "configmap", "x", f"--from-file={tmp_path / 'nothere'}", "-n", ns), "cannot read")

    (tmp_path / "password.txt").write_text("S!B\\*d$zDsb=")
    assert ok(ctl("create", "secret", "generic", "db-user-pass", "--from-literal=username=admin",
                  f"--from-file=password={tmp_path / 'password.txt'}", "-n", ns)) == "secret/db-user-pass created\n"
    data = get(ctl, "secret", "db-user-pass", "-n", ns)["data"]
    assert base64.b64decode(data["password"]).decode() == "S!B\\*d$zDsb="
    # describe secret shows sizes, never values (kubectl's)
    described = ok(ctl("describe", "secret", "db-user-pass", "-n", ns))
    assert "password:  12 bytes" in described and "username:  5 bytes" in described
    assert "admin" not in described and "zDsb" not in described

    ok(ctl("create", "job", "pi", "--image=perl:5.34", "-n", ns, "--", "perl", "-Mbignum=bpi", "-wle",
           "print bpi(20)", server=False))
    job = get(ctl, "job", "pi", "-n", ns)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["perl", "-Mbignum=bpi", "-wle", "print bpi(20)"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    fails(ctl("create", "job", "nope", "-n", ns), "either --image or --from must be specified")
    fails(ctl("create", "job", "nope", "--from=deployment/web", "-n", ns), "from must be an existing cronjob")

    assert ok(ctl("create", "serviceaccount", "build-robot", "-n", ns)) == "serviceaccount/build-robot created\n"


def test_create_dry_run_prints_the_object(ctl, ns):
    out = ok(ctl("create", "deployment", "web", "--image=busybox:1.36", "--dry-run=client", "-o", "yaml", "-n", ns))
    obj = yaml.safe_load(out)
    assert obj["kind"] == "Deployment" and obj["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:1.36"
    r = ctl("get", "deploy", "web", "-n", ns)
    assert r.returncode == 1 and "NotFound" in r.stderr       # nothing was written
    assert ok(ctl("create", "namespace", "dry-ns", "--dry-run=server")) == "namespace/dry-ns created (server dry run)\n"
    assert ctl("get", "ns", "dry-ns").returncode == 1
    fails(ctl("create", "deployment", "web", "--image=busybox", "--replicas=-1", "--dry-run=client", "-n", ns),
          "spec.replicas")


def test_run_pod(ctl, ns):
    assert ok(ctl("run", "nginx", "--image=nginx", "-n", ns)) == "pod/nginx created\n"
    pod = get(ctl, "pod", "nginx", "-n", ns)
    assert pod["metadata"]["labels"] == {"run": "nginx"}
    assert pod["spec"]["containers"][0]["name"] == "nginx"
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "Always"       # Kubernetes' default for untagged
    ok(ctl("run", "busybox", "--image=busybox:1.36", "--restart=Never", "-n", ns, "--", "sleep", "3600", server=False))
    pod = get(ctl, "pod", "busybox", "-n", ns)
    assert pod["spec"]["restartPolicy"] == "Never" and pod["spec"]["containers"][0]["args"] == ["sleep", "3600"]
    out = ok(ctl("run", "shell", "--image=busybox:1.36", "--command", "--dry-run=client", "-o", "json", "-n", ns,
                 "--", "sh", "-c", "echo hi", server=False))
    assert json.loads(out)["spec"]["containers"][0]["command"] == ["sh", "-c", "echo hi"]
    fails(ctl("run", "x", "-n", ns), 'required flag(s) "image" not set')


def test_set_image_and_patch(ctl, ns):
    ok(ctl("create", "deployment", "nginx", "--image=nginx:1.14.2", "-n", ns))
    assert ok(ctl("set", "image", "deployment/nginx", "nginx=nginx:1.16.1", "-n", ns)) == \
        "deployment.apps/nginx image updated\n"
    d = get(ctl, "deploy", "nginx", "-n", ns)
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.16.1"
    fails(ctl("set", "image", "deploy/nginx", "web=x:1", "-n", ns), 'unable to find container named "web"')

    # strategic merge: containers merge by name
    patch = '{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.27"}]}}}}'
    assert ok(ctl("patch", "deployment", "nginx", "-p", patch, "-n", ns)) == "deployment.apps/nginx patched\n"
    c = get(ctl, "deploy", "nginx", "-n", ns)["spec"]["template"]["spec"]["containers"]
    assert [(x["name"], x["image"]) for x in c] == [("nginx", "nginx:1.27")]
    # merge patch: null deletes
    ok(ctl("patch", "deploy/nginx", "--type=merge", "-p", '{"metadata":{"labels":{"tier":"web"}}}', "-n", ns))
    ok(ctl("patch", "deploy/nginx", "--type=merge", "-p", '{"metadata":{"labels":{"tier":null}}}', "-n", ns))
    assert "tier" not in get(ctl, "deploy", "nginx", "-n", ns)["metadata"].get("labels", {})
    # json patch
    ok(ctl("patch", "deploy", "nginx", "--type=json", "-p", '[{"op":"replace","path":"/spec/replicas","value":4}]',
           "-n", ns))
    assert get(ctl, "deploy", "nginx", "-n", ns)["spec"]["replicas"] == 4
    assert "patched (no change)" in ok(ctl("patch", "deploy", "nginx", "-p", '{"spec":{"replicas":4}}', "-n", ns))
    # the server validates the result
    fails(ctl("patch", "deploy", "nginx", "-p", '{"spec":{"replicas":-3}}', "-n", ns), "spec.replicas")
    fails(ctl("patch", "deploy", "nginx", "--type=json", "-p", '[{"op":"remove","path":"/spec/nothing"}]', "-n", ns),
          "the JSON patch cannot be applied")
    fails(ctl("patch", "deploy", "nginx", "-p", "{not json", "-n", ns), "unable to parse the patch")


def test_selector_is_immutable(ctl, ns):
    ok(ctl("create", "deployment", "web", "--image=nginx:1.27", "-n", ns))
    d = get(ctl, "deploy", "web", "-n", ns)
    d["spec"]["selector"] = {"matchLabels": {"app": "web2"}}
    d["spec"]["template"]["metadata"]["labels"] = {"app": "web2"}
    for key in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields", "annotations"):
        d["metadata"].pop(key, None)
    d.pop("status", None)
    r = ctl("apply", "-f", "-", "-n", ns, input=json.dumps(d))
    assert r.returncode == 1 and "spec.selector: Invalid value:" in r.stderr and "field is immutable" in r.stderr
    assert get(ctl, "deploy", "web", "-n", ns)["spec"]["selector"] == {"matchLabels": {"app": "web"}}


def _editor(tmp_path: Path, script: str) -> str:
    path = tmp_path / "editor.py"
    path.write_text(f"import sys, pathlib\nfile = pathlib.Path(sys.argv[1])\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return f"{sys.executable} {path}"


def test_edit_saves_and_reopens_on_error(ctl, ns, tmp_path, api_server):
    ok(ctl("create", "deployment", "web", "--image=nginx:1.27", "-n", ns))

    def edit(editor: str, *args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
               "SKIFF_CONFIG": str(tmp_path / "ctl-config"), "EDITOR": editor, "KUBE_EDITOR": ""}
        return subprocess.run([sys.executable, "-m", "cli.main", "edit", *args, "-n", ns], env=env,
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)

    editor = _editor(tmp_path, "file.write_text(file.read_text().replace('replicas: 1', 'replicas: 2'))")
    assert ok(edit(editor, "deployment", "web")) == "deployment.apps/web edited\n"
    assert get(ctl, "deploy", "web", "-n", ns)["spec"]["replicas"] == 2
    # First save is invalid: the editor sees the error as a comment, then fixes it.
    seen = tmp_path / "seen.txt"
    editor = _editor(tmp_path, f"""
text = file.read_text()
seen = pathlib.Path({str(seen)!r})
if not seen.exists():
    seen.write_text(text)
    file.write_text(text.replace('replicas: 2', 'replicas: -5'))
else:
    seen.write_text(seen.read_text() + '\\n=====\\n' + text)
    file.write_text(text.replace('replicas: -5', 'replicas: 3'))
""")
    assert ok(edit(editor, "deploy/web")) == "deployment.apps/web edited\n"
    second = seen.read_text().split("=====")[1]
    assert '# deployments.apps "web" was not valid:' in second and "spec.replicas" in second
    assert get(ctl, "deploy", "web", "-n", ns)["spec"]["replicas"] == 3
    # Saving the same invalid text again gives up, with the copy named.
    editor = _editor(tmp_path, "file.write_text(file.read_text().replace('replicas: 3', 'replicas: -1'))")
    r = edit(editor, "deploy/web")
    fails(r, "Edit cancelled, no valid changes were saved.")
    Path(r.stderr.split("stored to '")[1].split("'")[0]).unlink()
    assert ok(edit(_editor(tmp_path, "pass"), "deploy/web")) == "Edit cancelled, no changes made.\n"


def test_wait_for_condition_jsonpath_and_delete(ctl, ns, api_server):
    ok(ctl("create", "namespace", f"{ns}-gone"))
    fails(ctl("wait", "--for=condition=Ready", "pod/none", "-n", ns, "--timeout=2s"), "NotFound")
    ok(ctl("run", "busybox1", "--image=busybox:1.36", "-n", ns))
    r = ctl("wait", "--for=condition=Ready", "pod/busybox1", "-n", ns, "--timeout=1s")
    fails(r, "timed out waiting for the condition on pods/busybox1")

    async def set_ready() -> None:
        from controlplane.client import Client
        async with Client(api_server.address, credentials=api_server.credentials) as c:
            pod = await c.get("Pod", "busybox1", ns)
            pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
            await c.update_status(pod)

    import asyncio
    timer = threading.Timer(1.5, lambda: asyncio.run(set_ready()))
    timer.start()
    try:
        out = ok(ctl("wait", "--for=condition=Ready", "pod/busybox1", "-n", ns, "--timeout=60s"))
    finally:
        timer.join()
    assert out == "pod/busybox1 condition met\n"
    assert ok(ctl("wait", "--for=jsonpath={.status.phase}=Running", "pod", "busybox1", "-n", ns)) == \
        "pod/busybox1 condition met\n"
    deleter = threading.Timer(1.0, lambda: ctl("delete", "pod", "busybox1", "-n", ns))
    deleter.start()
    try:
        assert ok(ctl("wait", "--for=delete", "pod/busybox1", "-n", ns, "--timeout=60s")) == "pod/busybox1 deleted\n"
    finally:
        deleter.join()
    fails(ctl("wait", "--for=ready", "pod/x", "-n", ns), "unrecognized condition")


def test_events_for_an_object(ctl, ns):
    for name, reason in (("web", "Scheduled"), ("db", "Pulled")):
        event = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": f"{name}.1"}, "type": "Normal",
                 "reason": reason, "message": f"{reason} {name}", "count": 1,
                 "involvedObject": {"kind": "Pod", "name": name, "namespace": ns},
                 "lastTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        ok(ctl("apply", "-f", "-", "-n", ns, input=json.dumps(event)))
    out = ok(ctl("events", "-n", ns)).splitlines()
    assert out[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert len(out) == 3
    out = ok(ctl("events", "--for", "pod/web", "-n", ns)).splitlines()
    assert len(out) == 2 and "pod/web" in out[1] and "Scheduled web" in out[1]


def test_completion_scripts(ctl, tmp_path):
    bash = ok(ctl("completion", "bash", server=False))
    assert "_CTL_COMPLETE" in bash and "complete " in bash
    assert "compdef" in ok(ctl("completion", "zsh", server=False))
    # the script's callback answers with ctl's commands
    env = {**os.environ, "COMP_WORDS": "ctl la", "COMP_CWORD": "1", "_CTL_COMPLETE": "bash_complete",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    r = subprocess.run([sys.executable, "-m", "cli.main"], env=env, capture_output=True, text=True, timeout=60)
    assert "plain,label" in r.stdout, r.stdout + r.stderr


def test_create_cronjob_and_a_job_from_it(ctl, ns):
    out = ok(ctl("create", "cronjob", "hello", "--image=busybox:1.36", "--schedule=*/1 * * * *", "-n", ns,
                 "--", "echo", "hello", server=False))
    assert out == "cronjob.batch/hello created\n"
    cj = get(ctl, "cronjob", "hello", "-n", ns)
    assert cj["spec"]["schedule"] == "*/1 * * * *"
    assert cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"] == ["echo", "hello"]
    assert ok(ctl("create", "job", "now", "--from=cronjob/hello", "-n", ns)) == "job.batch/now created\n"
    fails(ctl("create", "cronjob", "bad", "--image=busybox:1.36", "--schedule=not a schedule", "-n", ns),
          "spec.schedule")
