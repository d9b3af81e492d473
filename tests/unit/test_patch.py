"""The REST API's patch formats (controlplane/apiserver/patch.py) as Kubernetes applies them."""

from __future__ import annotations

import pytest

from api.errors import ValidationFailed
from controlplane.apiserver.patch import JSON_PATCH, MERGE_PATCH, STRATEGIC, apply_patch

LIVE = {"spec": {"replicas": 2, "template": {"spec": {
    "containers": [{"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80}],
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                   {"name": "side", "image": "busybox"}],
    "tolerations": [{"key": "a"}]}}},
    "metadata": {"name": "web", "finalizers": ["x"], "labels": {"app": "web", "tier": "front"}}}


def test_strategic_merge_merges_containers_by_name_and_keeps_the_rest() -> None:
    # What `kubectl apply` sends for a changed image: the merge key and the change only.
    patch = {"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "web"}, {"name": "side"}],
                                            "containers": [{"name": "web", "image": "nginx:2"}]}}}}
    out = apply_patch(STRATEGIC, LIVE, patch)
    web, side = out["spec"]["template"]["spec"]["containers"]
    assert web == {**LIVE["spec"]["template"]["spec"]["containers"][0], "image": "nginx:2"}
    assert side == {"name": "side", "image": "busybox"}
    assert LIVE["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1"   # the input is not changed


def test_strategic_merge_directives() -> None:
    patch = {"metadata": {"labels": {"tier": None}, "$deleteFromPrimitiveList/finalizers": ["x"]},
             "spec": {"template": {"spec": {
                 "containers": [{"name": "side", "$patch": "delete"},
                                {"name": "web", "env": [{"name": "A", "$patch": "delete"}, {"name": "C", "value": "3"}]}],
                 "tolerations": [{"key": "b"}]}}}}
    out = apply_patch(STRATEGIC, LIVE, patch)
    spec = out["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["containers"]] == ["web"]
    assert spec["containers"][0]["env"] == [{"name": "B", "value": "2"}, {"name": "C", "value": "3"}]
    assert spec["tolerations"] == [{"key": "b"}]                  # no merge key: replaced whole
    assert out["metadata"]["labels"] == {"app": "web"} and out["metadata"]["finalizers"] == []
    replaced = apply_patch(STRATEGIC, LIVE, {"spec": {"$patch": "replace", "replicas": 5}})
    assert replaced["spec"] == {"replicas": 5}
    with pytest.raises(ValidationFailed, match='does not contain declared merge key "name"'):
        apply_patch(STRATEGIC, LIVE, {"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}})


def test_merge_patch_replaces_lists_and_json_patch_reports_a_bad_path() -> None:
    out = apply_patch(MERGE_PATCH, LIVE, {"spec": {"template": {"spec": {"containers": [{"name": "only"}]}}},
                                          "metadata": {"labels": None}})
    assert out["spec"]["template"]["spec"]["containers"] == [{"name": "only"}] and "labels" not in out["metadata"]
    assert apply_patch(JSON_PATCH, LIVE, [{"op": "replace", "path": "/spec/replicas", "value": 3}])["spec"]["replicas"] == 3
    with pytest.raises(ValidationFailed, match="the JSON patch cannot be applied"):
        apply_patch(JSON_PATCH, LIVE, [{"op": "replace", "path": "/spec/nope/x", "value": 3}])
    with pytest.raises(ValidationFailed, match="unsupported patch type"):
        apply_patch("text/plain", LIVE, {})
