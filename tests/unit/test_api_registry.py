"""The kind registry: names, groups, scope, short names, and the schema `ctl explain` reads."""

from __future__ import annotations

from typing import Any

import pytest

from api import all_resources, lookup, parse_object
from api.errors import ValidationFailed
from api.registry import lookup_kind


@pytest.mark.parametrize("name, kind, api_version, namespaced", [
    ("po", "Pod", "v1", True),
    ("pods", "Pod", "v1", True),
    ("no", "Node", "v1", False),
    ("rs", "ReplicaSet", "apps/v1", True),
    ("deploy", "Deployment", "apps/v1", True),
    ("deployments.apps", "Deployment", "apps/v1", True),
    ("ds", "DaemonSet", "apps/v1", True),
    ("job", "Job", "batch/v1", True),
    ("jobs.batch", "Job", "batch/v1", True),
    ("svc", "Service", "v1", True),
    ("Service", "Service", "v1", True),
])
def test_lookup(name, kind, api_version, namespaced):
    info = lookup(name)
    assert (info.kind, info.api_version, info.namespaced) == (kind, api_version, namespaced)
    assert info.model.KIND == kind


def test_lookup_kind_says_which_version_serves_it():
    with pytest.raises(ValidationFailed, match='Deployment is served as "apps/v1"'):
        lookup_kind("extensions/v1beta1", "Deployment")
    with pytest.raises(ValidationFailed, match='no kind "Gizmo"'):
        parse_object({"apiVersion": "v1", "kind": "Gizmo", "metadata": {"name": "x"}})


def test_all_kinds_are_registered():
    kinds = {info.kind for info in all_resources()}
    assert {"Pod", "Node", "ReplicaSet", "Deployment", "DaemonSet", "Job", "Service"} <= kinds


def _walk(schema: dict[str, Any], defs: dict[str, Any], where: str, seen: set[str], missing: list[str]) -> None:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name not in seen:
            seen.add(name)
            _walk(defs[name], defs, name, seen, missing)
        return
    for key in ("anyOf", "allOf", "oneOf"):
        for sub in schema.get(key, []):
            _walk(sub, defs, where, seen, missing)
    for sub in (schema.get("items"), schema.get("additionalProperties")):
        if isinstance(sub, dict):
            _walk(sub, defs, where, seen, missing)
    for prop, sub in schema.get("properties", {}).items():
        ref = defs.get(sub.get("$ref", "").rsplit("/", 1)[-1], {})
        # pydantic leaves out a field's description when it repeats the referenced model's docstring
        if not sub.get("description") and not ref.get("description") and prop not in ("apiVersion", "kind", "metadata"):
            missing.append(f"{where}.{prop}")
        _walk(sub, defs, f"{where}.{prop}", seen, missing)


@pytest.mark.parametrize("kind", ["Pod", "Node", "ReplicaSet", "Deployment", "DaemonSet", "Job", "Service"])
def test_every_field_has_a_description(kind):
    schema = lookup(kind).model.model_json_schema(by_alias=True)
    missing: list[str] = []
    seen: set[str] = {"ObjectMeta", "LabelSelector", "LabelSelectorRequirement", "OwnerReference"}
    _walk(schema, schema.get("$defs", {}), kind, seen, missing)
    assert not missing, missing


def test_schema_uses_kubernetes_names():
    schema = lookup("Pod").model.model_json_schema(by_alias=True)
    defs = schema["$defs"]
    assert {"hostPID", "hostIPC", "restartPolicy", "terminationGracePeriodSeconds"} <= set(defs["PodSpec"]["properties"])
    assert {"hostIP", "podIP", "podIPs"} <= set(defs["PodStatus"]["properties"])
    assert defs["PodSpec"]["properties"]["restartPolicy"]["default"] == "Always"
    port = defs["HTTPGetAction"]["properties"]["port"]
    assert port.get("x-kubernetes-int-or-string") is True
