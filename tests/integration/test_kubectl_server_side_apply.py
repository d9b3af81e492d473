"""The real kubectl's server-side apply against the REST front: field managers, conflicts,
--force-conflicts, a second manager, and fields dropped from the configuration
(controlplane/apiserver/fieldmanager.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_kubectl_rest import DEPLOYMENT, Kubectl, kubectl, ns, pytestmark  # noqa: E402,F401 (fixtures)


def managers(kubectl: Kubectl, ns: str) -> dict[tuple[str, str], dict]:
    """(manager, operation) -> its managedFields entry."""
    live = yaml.safe_load(kubectl("get", "deploy", "web", "-n", ns, "-o", "yaml", "--show-managed-fields").stdout)
    return {(e["manager"], e["operation"]): e for e in live["metadata"]["managedFields"]}


def test_apply_scale_conflict_force_and_a_second_manager(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    manifest = tmp_path / "web.yaml"
    manifest.write_text(DEPLOYMENT.format(image="busybox:1.36").replace("replicas: 2", "replicas: 3"))
    out = kubectl("apply", "--server-side", "-n", ns, "-f", str(manifest))
    assert out.stdout.strip() == "deployment.apps/web serverside-applied"
    owners = managers(kubectl, ns)
    assert owners["kubectl", "Apply"]["apiVersion"] == "apps/v1"
    spec = owners["kubectl", "Apply"]["fieldsV1"]["f:spec"]
    assert "f:replicas" in spec
    assert spec["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']["f:image"] == {}
    plain = yaml.safe_load(kubectl("get", "deploy", "web", "-n", ns, "-o", "yaml").stdout)
    assert "managedFields" not in plain["metadata"]   # kubectl hides them unless asked
    same = kubectl("diff", "--server-side", "-n", ns, "-f", str(manifest), check=False)   # a dry-run apply
    assert (same.returncode, same.stdout) == (0, ""), same.stdout + same.stderr
    more = manifest.read_text().replace("replicas: 3", "replicas: 4")
    diff = kubectl("diff", "--server-side", "-n", ns, "-f", "-", input=more, check=False)
    assert diff.returncode == 1 and "-  replicas: 3\n+  replicas: 4" in diff.stdout, diff.stderr

    # kubectl 1.32's scale sends no fieldManager: the manager is its User-Agent's "kubectl", an Update
    # of the scale subresource (not the Apply of the same name)
    kubectl("scale", "deployment", "web", "-n", ns, "--replicas=5")
    scaler = managers(kubectl, ns)["kubectl", "Update"]
    assert scaler["subresource"] == "scale" and scaler["fieldsV1"] == {"f:spec": {"f:replicas": {}}}

    refused = kubectl("apply", "--server-side", "-n", ns, "-f", str(manifest), check=False)
    assert refused.returncode != 0
    assert ('Apply failed with 1 conflict: conflict with "kubectl" with subresource "scale" using apps/v1: '
            '.spec.replicas') in refused.stderr
    assert kubectl("get", "deploy", "web", "-n", ns, "-o", "jsonpath={.spec.replicas}").stdout == "5"

    forced = kubectl("apply", "--server-side", "--force-conflicts", "-n", ns, "-f", str(manifest))
    assert forced.stdout.strip() == "deployment.apps/web serverside-applied"
    assert kubectl("get", "deploy", "web", "-n", ns, "-o", "jsonpath={.spec.replicas}").stdout == "3"
    owners = managers(kubectl, ns)
    assert ("kubectl", "Update") not in owners and "f:replicas" in owners["kubectl", "Apply"]["fieldsV1"]["f:spec"]

    other = tmp_path / "other.yaml"
    other.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n"
                     "  annotations: {team: b}\n")
    kubectl("apply", "--server-side", "--field-manager=other", "-n", ns, "-f", str(other))
    owners = managers(kubectl, ns)
    assert owners["other", "Apply"]["fieldsV1"] == {"f:metadata": {"f:annotations": {"f:team": {}}}}
    assert ("kubectl", "Apply") in owners
    again = kubectl("apply", "--server-side", "-n", ns, "-f", str(manifest))   # disjoint: no conflict
    assert again.returncode == 0
    assert kubectl("get", "deploy", "web", "-n", ns, "-o", "jsonpath={.metadata.annotations.team}").stdout == "b"


def test_a_field_dropped_from_the_config_is_removed(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    manifest = tmp_path / "web.yaml"
    with_tier = DEPLOYMENT.format(image="busybox:1.36").replace("  labels: {app: web}\nspec:",
                                                                 "  labels: {app: web, tier: front}\nspec:")
    manifest.write_text(with_tier)
    kubectl("apply", "--server-side", "-n", ns, "-f", str(manifest))
    labels = lambda: kubectl("get", "deploy", "web", "-n", ns, "-o", "jsonpath={.metadata.labels}").stdout  # noqa
    assert '"tier":"front"' in labels()
    manifest.write_text(DEPLOYMENT.format(image="busybox:1.36"))
    kubectl("apply", "--server-side", "-n", ns, "-f", str(manifest))
    assert labels() == '{"app":"web"}'


def test_ctl_hides_managed_fields_unless_asked(kubectl: Kubectl, ns: str, ctl, tmp_path: Path) -> None:
    manifest = tmp_path / "web.yaml"
    manifest.write_text(DEPLOYMENT.format(image="busybox:1.36"))
    kubectl("apply", "--server-side", "-n", ns, "-f", str(manifest))
    plain = ctl("get", "deploy", "web", "-n", ns, "-o", "yaml")
    assert plain.returncode == 0, plain.stderr
    assert "managedFields" not in yaml.safe_load(plain.stdout)["metadata"]
    shown = yaml.safe_load(ctl("get", "deploy", "web", "-n", ns, "-o", "yaml", "--show-managed-fields").stdout)
    assert [(e["manager"], e["operation"]) for e in shown["metadata"]["managedFields"]] == [("kubectl", "Apply")]
    # an update through ctl (gRPC, no field manager) keeps the managers as they are
    assert ctl("scale", "deploy", "web", "-n", ns, "--replicas=4").returncode == 0
    again = yaml.safe_load(ctl("get", "deploy", "web", "-n", ns, "-o", "json", "--show-managed-fields").stdout)
    assert again["spec"]["replicas"] == 4
    assert [e["manager"] for e in again["metadata"]["managedFields"]] == ["kubectl"]
