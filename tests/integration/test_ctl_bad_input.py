"""Bad input to `ctl`: one clear line on stderr, exit code 1, and nothing written.

Every manifest below starts with a valid ConfigMap, so "nothing written" also
proves that all documents are validated before the first write.
"""

import pytest

GOOD = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: good\ndata: {a: b}\n---\n"


def deployment(container="- name: web\n        image: busybox", *, replicas="1", api="apps/v1", name="web",
               extra=""):
    return f"""\
apiVersion: {api}
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:{extra}
      containers:
      {container}
"""


CASES = {
    "malformed yaml": ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  labels: a: b\n",
                       "error: error parsing STDIN: line 11: mapping values are not allowed here"),
    "duplicate key": ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  name: y\n",
                      'error: error parsing STDIN: line 11: duplicate key "name"'),
    "unknown kind": ("apiVersion: v1\nkind: Gizmo\nmetadata:\n  name: x\n",
                     'error: STDIN:8: kind: no kind "Gizmo" is registered; known kinds: rbac.authorization.k8s.io/v1/ClusterRoleBinding, '),
    "unknown apiVersion": (deployment(api="apps/v2"),
                           'error: STDIN:7: apiVersion: no kind "Deployment" is registered for version "apps/v2"; '
                           'Deployment is served as "apps/v1"'),
    "missing field": (deployment("- name: web"),
                      'error: STDIN:20: Deployment "web" is invalid: spec.template.spec.containers[0].image: '
                      'field required'),
    "wrong type": (deployment(replicas="many"),
                   'error: STDIN:12: Deployment "web" is invalid: spec.replicas: '),
    "bad value": (deployment(extra="\n      restartPolicy: Sometimes"),
                  'error: STDIN:19: Deployment "web" is invalid: spec.template.spec.restartPolicy: '
                  'Unsupported value: "Sometimes"'),
    "unknown field": (deployment("- name: web\n        image: busybox\n        imagee: typo"),
                      'error: STDIN:22: Deployment "web" is invalid: spec.template.spec.containers[0].imagee: '
                      'unknown field'),
    "invalid name": (deployment(name="Web_1"),
                     'error: STDIN:10: Deployment "Web_1" is invalid: metadata.name: Invalid value: "Web_1"'),
    "oversize": ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n  blob: " + "x" * 1_600_000 + "\n",
                 'error: STDIN:7: ConfigMap "big" is invalid: object is too large: '),
    "not an object": ("- just\n- a list\n", "error: STDIN:7: an object must be a mapping, got list"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_manifest(ctl, namespace, case):
    manifest, message = CASES[case]
    r = ctl("apply", "-f", "-", "-n", namespace, input=GOOD + manifest)
    assert r.returncode == 1
    assert r.stdout == ""
    assert len(r.stderr.splitlines()) == 1, r.stderr
    assert r.stderr.startswith(message), r.stderr
    listed = ctl("get", "cm,deploy", "-n", namespace, "-o", "name")
    assert (listed.returncode, listed.stdout) == (0, "")


def test_every_bad_document_is_reported(ctl, namespace):
    bad = deployment("- name: web") + "---\n" + deployment(name="other", replicas="-1")
    r = ctl("apply", "-f", "-", "-n", namespace, input=GOOD + bad)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.splitlines() == [
        'error: STDIN:20: Deployment "web" is invalid: spec.template.spec.containers[0].image: field required',
        'error: STDIN:27: Deployment "other" is invalid: spec.replicas: Invalid value: -1: must be greater than or '
        'equal to 0',
    ]


def test_server_side_problems_stop_the_batch_before_any_write(ctl, namespace):
    elsewhere = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lost\n  namespace: no-such-namespace\n"
    r = ctl("apply", "-f", "-", input=GOOD.replace("name: good", f"name: good\n  namespace: {namespace}")
            + elsewhere)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == ('Error from server (NotFound): error when applying "STDIN": '
                        'namespaces "no-such-namespace" not found\n')
    assert ctl("get", "cm", "-n", namespace, "-o", "name").stdout == ""


@pytest.mark.parametrize("args, message", [
    (["get", "gizmos"], 'error: the server doesn\'t have a resource type "gizmos"\n'),
    (["get", "pods", "nope"], 'Error from server (NotFound): pods "nope" not found\n'),
    (["delete", "pod", "nope"], 'Error from server (NotFound): pods "nope" not found\n'),
    (["delete", "pods"], "error: resource(s) were provided, but no name was specified; "
                         "give names, -l SELECTOR or --all\n"),
    (["apply", "-f", "/no/such/file.yaml"], 'error: the path "/no/such/file.yaml" does not exist\n'),
    (["get", "pods", "-l", "a in (b"], "error: selector (-l): "),
    (["get", "pods", "-o", "xml"], 'error: unable to match a printer suitable for the output format "xml", '
                                   'allowed formats are: wide,yaml,json,name,jsonpath=TEMPLATE,custom-columns=SPEC\n'),
    (["get", "pods", "--bogus"], "error: No such option '--bogus'"),
])
def test_bad_command_lines(ctl, namespace, args, message):
    r = ctl(*args, "-n", namespace)
    assert r.returncode == 1
    assert r.stderr.startswith(message) and len(r.stderr.splitlines()) == 1, r.stderr


def test_no_objects(ctl):
    r = ctl("apply", "-f", "-", input="---\n# nothing here\n")
    assert (r.returncode, r.stderr) == (1, "error: no objects passed to apply\n")
