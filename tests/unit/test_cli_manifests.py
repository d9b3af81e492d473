"""Reading manifests (-f FILE|DIR|-) and validating every document before anything is written."""

import io

import pytest

from cli.errors import CliError, ManyErrors
from cli.manifests import parse_yaml, read
from cli.validation import check_all, identify_all

DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: busybox
"""
CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  when: 2024-05-01\n"


def test_multi_document_yaml_with_lines_and_empty_documents():
    docs = parse_yaml(f"---\n{DEPLOY}---\n---\n{CM}", "web.yaml")
    assert [d.data["kind"] for d in docs] == ["Deployment", "ConfigMap"]
    assert [d.line for d in docs] == [2, 18]
    assert docs[1].data["data"]["when"] == "2024-05-01"  # dates stay strings


def test_line_of_a_field_path():
    doc = parse_yaml(DEPLOY, "web.yaml")[0]
    assert doc.line_of("spec.template.spec.containers[0].image") == 14
    assert doc.line_of("spec.template.spec.containers[0].command") == 13  # missing: its container
    assert doc.line_of("metadata.name") == 4
    assert doc.at("spec.selector") == "web.yaml:6"


def test_list_kind_expands_items():
    text = "apiVersion: v1\nkind: List\nitems:\n- " + CM.replace("\n", "\n  ").rstrip() + "\n"
    docs = parse_yaml(text, "list.yaml")
    assert len(docs) == 1 and docs[0].data["kind"] == "ConfigMap" and docs[0].line == 4


@pytest.mark.parametrize("text, message", [
    ("a: b\n  c: d\n", "error parsing x.yaml: line 2: mapping values are not allowed here"),
    ("metadata:\n  name: a\n  name: b\n", 'error parsing x.yaml: line 3: duplicate key "name"'),
    ("key: [unclosed\n", "error parsing x.yaml: line 2:"),
])
def test_yaml_errors_name_file_and_line(text, message):
    with pytest.raises(CliError) as err:
        parse_yaml(text, "x.yaml")
    assert err.value.message.startswith(message)


def test_read_dir_recursive_and_stdin(tmp_path):
    (tmp_path / "a.yaml").write_text(CM)
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.json").write_text('{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}}')
    assert len(read([str(tmp_path)])) == 1
    assert [d.data["metadata"]["name"] for d in read([str(tmp_path)], recursive=True)] == ["settings", "b"]
    docs = read(["-"], stdin=io.StringIO(CM))
    assert docs[0].source == "STDIN"
    with pytest.raises(CliError, match='the path "nope.yaml" does not exist'):
        read(["nope.yaml"])
    (tmp_path / "bad.json").write_text('{"a": }')
    with pytest.raises(CliError, match="error parsing .*bad.json: line 1:"):
        read([str(tmp_path / "bad.json")])


def test_check_all_reports_every_bad_document_with_file_line_and_field():
    bad_deploy = DEPLOY.replace("        image: busybox\n", "")
    docs = parse_yaml(f"{CM}---\n{bad_deploy}---\napiVersion: v1\nkind: Gizmo\nmetadata: {{name: g}}\n", "f.yaml")
    with pytest.raises(ManyErrors) as err:
        check_all(docs, namespace="default")
    assert err.value.messages[0] == ('f.yaml:20: Deployment "web" is invalid: '
                                     'spec.template.spec.containers[0].image: field required')
    assert err.value.messages[1].startswith('f.yaml:23: kind: no kind "Gizmo" is registered; known kinds: ')
    assert "apps/v1/Deployment" in err.value.messages[1]


@pytest.mark.parametrize("text, fragment", [
    (CM + "extra: 1\n", "extra: unknown field"),
    (CM.replace("name: settings", "name: Not_Valid"), 'metadata.name: Invalid value: "Not_Valid"'),
    (DEPLOY.replace("spec:\n  selector", "spec:\n  replicas: many\n  selector"), "spec.replicas:"),
    ("apiVersion: v1\nkind: ConfigMap\n", "metadata.name: field required"),
    ("kind: ConfigMap\nmetadata: {name: a}\n", "apiVersion: field required"),
    ("apiVersion: v9\nkind: ConfigMap\nmetadata: {name: a}\n", 'ConfigMap is served as "v1"'),
    (f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big}}\ndata: {{a: {'x' * 1_600_000}}}\n",
     "object is too large"),
])
def test_check_all_rejects(text, fragment):
    with pytest.raises(ManyErrors) as err:
        check_all(parse_yaml(text, "f.yaml"), namespace="default")
    assert len(err.value.messages) == 1 and fragment in err.value.messages[0]


def test_namespaces_are_filled_in_and_checked_against_n():
    checked = check_all(parse_yaml(CM, "f"), namespace="dev")
    assert checked[0].namespace == "dev" and checked[0].ref == "configmap/settings"
    own = CM.replace("name: settings", "name: settings\n  namespace: prod")
    assert check_all(parse_yaml(own, "f"), namespace="default")[0].namespace == "prod"
    with pytest.raises(ManyErrors, match='does not match the namespace "dev"'):
        check_all(parse_yaml(own, "f"), namespace="dev", explicit_namespace=True)
    ns = check_all(parse_yaml("apiVersion: v1\nkind: Namespace\nmetadata: {name: a, namespace: x}\n", "f"),
                   namespace="dev")
    assert ns[0].namespace == "" and ns[0].ref == "namespace/a"


def test_identify_needs_only_kind_and_name():
    docs = parse_yaml(DEPLOY.replace("        image: busybox\n", "") + "---\n" + CM, "f")
    assert [c.ref for c in identify_all(docs, namespace="default")] == ["deployment.apps/web",
                                                                        "configmap/settings"]
    with pytest.raises(ManyErrors, match="metadata.name: field required"):
        identify_all(parse_yaml("apiVersion: v1\nkind: ConfigMap\n", "f"), namespace="default")
