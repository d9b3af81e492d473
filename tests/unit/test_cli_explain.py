"""`ctl explain` output, generated from the kinds' JSON schema."""

import pytest

from cli.errors import CliError
from cli.explain import explain


def test_kind_overview():
    text = explain("pods")
    assert text.startswith("KIND:       Pod\nVERSION:    v1\n\nDESCRIPTION:\n")
    fields = [line.split("\t")[0].strip() for line in text.splitlines() if "\t" in line]
    assert fields == ["apiVersion", "kind", "metadata", "spec", "status"]
    assert "  spec\t<PodSpec> -required-" in text


def test_field_path_into_a_list():
    text = explain("pod.spec.containers")
    assert "FIELD: containers <[]Container>" in text
    assert "  image\t<string> -required-" in text
    assert "  ports\t<[]ContainerPort>" in text
    assert "  env\t<[]EnvVar>" in text
    lines = text.splitlines()
    assert lines[lines.index("  image\t<string> -required-") + 1].startswith("    ")  # its description


def test_enum_map_and_group():
    assert "ENUM:\n    Always\n    OnFailure\n    Never" in explain("po.spec.restartPolicy")
    assert "FIELD: nodeSelector <map[string]string>" in explain("pod.spec.nodeSelector")
    assert explain("deployments.spec").startswith("GROUP:      apps\nKIND:       Deployment\n")
    assert explain("deployment.apps.spec").startswith("GROUP:      apps\n")


def test_recursive_lists_nested_fields_without_descriptions():
    text = explain("pod.spec.containers", recursive=True)
    assert "  livenessProbe\t<Probe>\n    exec\t<ExecAction>\n      command\t<[]string>" in text


@pytest.mark.parametrize("path, message", [
    ("pod.spec.nope", 'field "nope" does not exist in pod.spec'),
    ("gizmo", 'the server doesn\'t have a resource type "gizmo"'),
])
def test_unknown(path, message):
    with pytest.raises(CliError, match=message):
        explain(path)
