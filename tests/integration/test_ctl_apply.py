"""`ctl apply`, `create` and `replace` against a real API server (as a real process)."""

import json

DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: busybox:1.36
        command: [sleep, "3600"]
"""
CM = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: fast
"""


def cm(name, value="1"):
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  key: \"{value}\"\n"


def test_apply_created_configured_unchanged(ctl, namespace, tmp_path):
    f = tmp_path / "web.yaml"
    f.write_text(f"{DEPLOY}---\n{CM}")
    r = ctl("apply", "-f", str(f), "-n", namespace)
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout.splitlines() == ["deployment.apps/web created", "configmap/settings created"]

    r = ctl("apply", "-f", str(f), "-n", namespace)
    assert r.stdout.splitlines() == ["deployment.apps/web unchanged", "configmap/settings unchanged"]

    f.write_text(f"{DEPLOY.replace('replicas: 2', 'replicas: 3')}---\n{CM}")
    r = ctl("apply", "-f", str(f), "-n", namespace)
    assert r.stdout.splitlines() == ["deployment.apps/web configured", "configmap/settings unchanged"]
    live = json.loads(ctl("get", "deploy", "web", "-n", namespace, "-o", "json").stdout)
    assert live["spec"]["replicas"] == 3 and live["metadata"]["namespace"] == namespace


def test_apply_directory_recursively_and_stdin(ctl, namespace, tmp_path):
    (tmp_path / "a.yaml").write_text(cm("top"))
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "b.yml").write_text(cm("deep"))
    (tmp_path / "nested" / "c.json").write_text(json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "json-one"}}))
    (tmp_path / "README.md").write_text("not a manifest")
    r = ctl("apply", "-f", str(tmp_path), "-n", namespace)
    assert r.stdout.splitlines() == ["configmap/top created"]
    r = ctl("apply", "-R", "-f", str(tmp_path), "-n", namespace)
    assert r.stdout.splitlines() == ["configmap/top unchanged", "configmap/deep created", "configmap/json-one created"]
    r = ctl("apply", "-f", "-", "-n", namespace, input=cm("from-stdin") + "---\n" + cm("second"))
    assert (r.returncode, r.stdout.splitlines()) == (0, ["configmap/from-stdin created", "configmap/second created"])


def test_dry_runs_write_nothing(ctl, namespace):
    r = ctl("apply", "-f", "-", "-n", namespace, "--dry-run=client", input=cm("dry"))
    assert (r.returncode, r.stdout) == (0, "configmap/dry created (dry run)\n")
    r = ctl("apply", "-f", "-", "-n", namespace, "--dry-run=server", input=cm("dry"))
    assert (r.returncode, r.stdout) == (0, "configmap/dry created (server dry run)\n")
    r = ctl("get", "cm", "dry", "-n", namespace)
    assert r.returncode == 1 and 'configmaps "dry" not found' in r.stderr


def test_create_refuses_existing_objects_and_writes_nothing(ctl, namespace):
    r = ctl("create", "-f", "-", "-n", namespace, input=cm("one"))
    assert (r.returncode, r.stdout) == (0, "configmap/one created\n")
    r = ctl("create", "-f", "-", "-n", namespace, input=cm("two") + "---\n" + cm("one"))
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == ('Error from server (AlreadyExists): error when creating "STDIN": '
                        'configmaps "one" already exists\n')
    assert ctl("get", "cm", "two", "-n", namespace).returncode == 1  # the batch stopped before any write


def test_replace_with_a_stale_resource_version_is_a_conflict(ctl, namespace):
    ctl("apply", "-f", "-", "-n", namespace, input=cm("v"))
    old = ctl("get", "cm", "v", "-n", namespace, "-o", "yaml").stdout
    ctl("apply", "-f", "-", "-n", namespace, input=cm("v", "2"))  # someone else changes it
    r = ctl("replace", "-f", "-", "-n", namespace, input=old.replace('key: "1"', 'key: "3"'))
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith('Error from server (Conflict): error when replacing "STDIN": ')
    assert len(r.stderr.splitlines()) == 1
    live = json.loads(ctl("get", "cm", "v", "-n", namespace, "-o", "json").stdout)
    assert live["data"] == {"key": "2"}
    fresh = ctl("get", "cm", "v", "-n", namespace, "-o", "yaml").stdout
    r = ctl("replace", "-f", "-", "-n", namespace, input=fresh.replace("key: '2'", "key: '4'"))
    assert (r.returncode, r.stdout) == (0, "configmap/v replaced\n")


def test_namespace_rules(ctl, namespace):
    own = cm("mine").replace("name: mine", f"name: mine\n  namespace: {namespace}")
    r = ctl("apply", "-f", "-", "-n", "default", input=own)
    assert r.returncode == 1
    assert r.stderr == (f'error: STDIN:5: the namespace from the provided object "{namespace}" does not match the '
                        f'namespace "default". You must pass \'--namespace={namespace}\' to perform this operation.\n')
    r = ctl("apply", "-f", "-", input=own)  # no -n: the object's own namespace
    assert (r.returncode, r.stdout) == (0, "configmap/mine created\n")
    # A namespace created earlier in the same batch can hold the objects after it.
    fresh = f"{namespace}-x"
    batch = (f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {fresh}\n---\n"
             + cm("inside").replace("name: inside", f"name: inside\n  namespace: {fresh}"))
    r = ctl("apply", "-f", "-", input=batch)
    assert (r.returncode, r.stdout.splitlines()) == (0, [f"namespace/{fresh} created", "configmap/inside created"])


HOSTNET_POD = """\
apiVersion: v1
kind: Pod
metadata: {name: hostnet, namespace: %(ns)s}
spec:
  hostNetwork: true
  containers:
  - name: sh
    image: busybox:1.36
"""


def test_a_namespace_made_privileged_by_the_same_file_admits_its_pod(ctl, namespace, tmp_path):
    """kubectl applies in file order: a file that labels its namespace privileged and then
    creates a hostNetwork pod works. ctl's dry run of the whole file first must not refuse the
    pod for the label it has not written yet."""
    f = tmp_path / "pod.yaml"
    f.write_text(HOSTNET_POD % {"ns": namespace})
    r = ctl("apply", "-f", str(f))
    assert r.returncode == 1 and "violates PodSecurity" in r.stderr and "spec.hostNetwork" in r.stderr
    f.write_text(f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n  labels: "
                 "{pod-security.kubernetes.io/enforce: privileged}\n---\n" + HOSTNET_POD % {"ns": namespace})
    r = ctl("apply", "-f", str(f))
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    assert r.stdout.splitlines() == [f"namespace/{namespace} configured", "pod/hostnet created"]
