"""Field managers (controlplane/apiserver/fieldmanager.py): fieldsV1 sets, apply conflicts,
forced ownership, removal of fields an applier dropped, and Update recording."""

from __future__ import annotations

import pytest

from controlplane.apiserver import fieldmanager as fm
from controlplane.rest import status

NOW = "2026-12-07T06:00:00Z"


def deployment(replicas: int | None = 3, image: str = "nginx", labels: dict | None = None) -> dict:
    spec: dict = {"selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web"}},
                               "spec": {"containers": [{"name": "web", "image": image,
                                                        "ports": [{"containerPort": 80}]}]}}}
    if replicas is not None:
        spec["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": labels or {"app": "web"}},
            "spec": spec}


def test_fields_v1_as_kubernetes_writes_them() -> None:
    obj = deployment()
    obj["metadata"]["finalizers"] = ["example.com/x"]
    tree = fm.to_fields_v1(fm.fields_of(obj))
    assert tree["f:metadata"] == {"f:labels": {"f:app": {}}, "f:finalizers": {'v:"example.com/x"': {}}}
    assert tree["f:spec"]["f:replicas"] == {}
    containers = tree["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert containers == {'k:{"name":"web"}': {".": {}, "f:name": {}, "f:image": {},
                                                "f:ports": {'k:{"containerPort":80}': {".": {}, "f:containerPort": {}}}}}
    assert "f:apiVersion" not in tree and "f:kind" not in tree
    assert fm.from_fields_v1(tree) == fm.fields_of(obj)   # the round trip


def test_path_text() -> None:
    assert fm.path_text(("f:spec", "f:replicas")) == ".spec.replicas"
    assert fm.path_text(("f:spec", "f:containers", 'k:{"name":"c"}', "f:image")) == '.spec.containers[name="c"].image'


def test_create_records_the_applier() -> None:
    out = fm.apply(None, deployment(), manager="kubectl", force=False, now=NOW)
    [entry] = out["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"], entry["apiVersion"]) == ("kubectl", "Apply", "apps/v1")
    assert "f:replicas" in entry["fieldsV1"]["f:spec"]


def test_an_update_takes_the_fields_it_changed() -> None:
    live = fm.apply(None, deployment(3), manager="kubectl", force=False, now=NOW)
    scaled = {**live, "spec": {**live["spec"], "replicas": 5}}
    fm.record_update(live, scaled, manager="kubectl-scale", api_version="apps/v1", now=NOW, subresource="scale")
    applier, scaler = scaled["metadata"]["managedFields"]
    assert "f:replicas" not in applier["fieldsV1"]["f:spec"]
    assert scaler == {"manager": "kubectl-scale", "operation": "Update", "apiVersion": "apps/v1", "time": NOW,
                      "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}, "subresource": "scale"}


def test_no_managed_fields_no_recording() -> None:
    live, out = deployment(3), deployment(5)
    fm.record_update(live, out, manager="kubectl-scale", api_version="apps/v1", now=NOW)
    assert "managedFields" not in out["metadata"]


def test_conflict_names_the_manager_and_field_and_force_moves_it() -> None:
    live = fm.apply(None, deployment(3), manager="kubectl", force=False, now=NOW)
    scaled = {**live, "spec": {**live["spec"], "replicas": 5}}
    fm.record_update(live, scaled, manager="kubectl-scale", api_version="apps/v1", now=NOW, subresource="scale")
    with pytest.raises(fm.ApplyConflict) as caught:
        fm.apply(scaled, deployment(3), manager="kubectl", force=False, now=NOW)
    assert str(caught.value) == ('Apply failed with 1 conflict: conflict with "kubectl-scale" with subresource '
                                 '"scale" using apps/v1: .spec.replicas')
    st = status.of_exception(caught.value, kind="deployments", name="web", group="apps")
    assert (st["code"], st["reason"]) == (409, "Conflict")
    assert st["details"]["causes"] == [{"reason": "FieldManagerConflict", "field": ".spec.replicas",
                                        "message": 'conflict with "kubectl-scale" with subresource "scale" '
                                                   'using apps/v1'}]
    # the same value is no conflict (shared ownership)
    same = fm.apply(scaled, deployment(5), manager="kubectl", force=False, now=NOW)
    assert [e["manager"] for e in same["metadata"]["managedFields"]] == ["kubectl", "kubectl-scale"]
    forced = fm.apply(scaled, deployment(3), manager="kubectl", force=True, now=NOW)
    assert forced["spec"]["replicas"] == 3
    assert [e["manager"] for e in forced["metadata"]["managedFields"]] == ["kubectl"]   # the scaler owned nothing else


def test_disjoint_managers_coexist_and_dropped_fields_go() -> None:
    live = fm.apply(None, deployment(3, labels={"app": "web", "tier": "front"}), manager="kubectl",
                    force=False, now=NOW)
    other = {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "web", "annotations": {"owner": "team-b"}}}
    both = fm.apply(live, other, manager="other", force=False, now=NOW)
    assert both["metadata"]["annotations"] == {"owner": "team-b"}
    assert both["spec"]["replicas"] == 3
    # kubectl drops the tier label and replicas: gone (nobody else owns them); other's annotation stays
    again = fm.apply(both, deployment(None, labels={"app": "web"}), manager="kubectl", force=False, now=NOW)
    assert again["metadata"]["labels"] == {"app": "web"}
    assert "replicas" not in again["spec"]
    assert again["metadata"]["annotations"] == {"owner": "team-b"}
    # a container dropped from the config goes as a whole item
    two = deployment()
    two["spec"]["template"]["spec"]["containers"].append({"name": "side", "image": "busybox"})
    live2 = fm.apply(None, two, manager="kubectl", force=False, now=NOW)
    one = fm.apply(live2, deployment(), manager="kubectl", force=False, now=NOW)
    assert [c["name"] for c in one["spec"]["template"]["spec"]["containers"]] == ["web"]


def test_internal_writes_keep_managed_fields() -> None:
    live = fm.apply(None, deployment(3), manager="kubectl", force=False, now=NOW)
    out = deployment(3)
    out["metadata"]["managedFields"] = [{"manager": "forged"}]
    fm.on_update(live, out, None, NOW)
    assert out["metadata"]["managedFields"] == live["metadata"]["managedFields"]


def test_several_conflicts_are_listed_per_manager() -> None:
    live = fm.apply(None, deployment(3, image="a"), manager="kubectl", force=False, now=NOW)
    changed = fm.apply(live, deployment(5, image="b"), manager="ci", force=True, now=NOW)
    with pytest.raises(fm.ApplyConflict) as caught:
        fm.apply(changed, deployment(3, image="a"), manager="kubectl", force=False, now=NOW)
    assert str(caught.value) == ('Apply failed with 2 conflicts: conflicts with "ci":\n'
                                 '- .spec.replicas\n- .spec.template.spec.containers[name="web"].image')
