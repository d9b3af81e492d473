"""OpenAPI v3 documents generated from the pydantic models (api/), as kube-apiserver serves them.

    /openapi/v3                      {"paths": {"api/v1": {"serverRelativeURL": ...}, "apis/apps/v1": ...}}
    /openapi/v3/apis/apps/v1         {"openapi": "3.0.0", "paths": ..., "components": {"schemas": ...}}

Each group-version's document has the JSON schema of its kinds (the same schema `ctl
explain` reads, so the documentation cannot drift from what the server accepts), each
kind's schema marked with `x-kubernetes-group-version-kind` (how `kubectl explain` finds
it), and the paths of its verbs with the same mark. The PATCH operations list the
`fieldValidation` query parameter: kubectl then leaves validation to the server (which
always rejects unknown fields, whatever the parameter says) instead of fetching the
protobuf OpenAPI v2 to validate itself. Their request bodies do not offer the strategic
merge patch, so `kubectl apply` computes its patches from its own compiled-in
knowledge of the built-in kinds (their merge keys) rather than from these schemas.

Schemas are simplified for kubectl's readers: `X | None` (anyOf with null) becomes X,
a one-element allOf its element.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic.json_schema import models_json_schema

from api.registry import ResourceInfo
from controlplane.rest import discovery

REF = "#/components/schemas/{model}"
PATCH_TYPES = ("application/merge-patch+json", "application/json-patch+json", "application/apply-patch+yaml")


def _path_of(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _simplify(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_simplify(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _simplify(v) for k, v in schema.items()}
    options = [s for s in out.get("anyOf", []) if s.get("type") != "null"]
    if "anyOf" in out and len(options) == 1:
        rest = {k: v for k, v in out.items() if k != "anyOf"}
        out = {**options[0], **rest}
    if len(out.get("allOf", [])) == 1:
        rest = {k: v for k, v in out.items() if k != "allOf"}
        out = {**out["allOf"][0], **rest}
    if "$ref" in out and len(out) > 1:   # OpenAPI 3.0 ignores siblings of $ref: keep the description by allOf
        ref = out.pop("$ref")
        out = {**out, "allOf": [{"$ref": ref}]}
    return out


def _gvk(info: ResourceInfo) -> dict[str, str]:
    return {"group": info.group, "version": info.version, "kind": info.kind}


def _operation(info: ResourceInfo, action: str, ref: str, *, body: tuple[str, ...] = ()) -> dict[str, Any]:
    params = [{"name": "dryRun", "in": "query", "schema": {"type": "string"}}]
    if action in ("post", "put", "patch"):
        params += [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                   {"name": "fieldManager", "in": "query", "schema": {"type": "string"}}]
    if action == "list":
        params = [{"name": n, "in": "query", "schema": {"type": t}} for n, t in
                  (("labelSelector", "string"), ("fieldSelector", "string"), ("limit", "integer"),
                   ("continue", "string"), ("watch", "boolean"), ("resourceVersion", "string"),
                   ("timeoutSeconds", "integer"), ("allowWatchBookmarks", "boolean"))]
    op: dict[str, Any] = {"operationId": f"{action}{info.kind}", "parameters": params,
                          "responses": {"200": {"description": "OK", "content": {
                              "application/json": {"schema": {"$ref": ref}}}}},
                          "x-kubernetes-action": action, "x-kubernetes-group-version-kind": _gvk(info)}
    if body:
        op["requestBody"] = {"content": {t: {"schema": {"$ref": ref}} for t in body}}
    return op


def group_version_document(group: str, version: str) -> dict[str, Any] | None:
    infos = discovery.served(group, version)
    if not infos:
        return None
    keys, top = models_json_schema([(i.model, "validation") for i in infos], by_alias=True, ref_template=REF)
    schemas = {name: _simplify(s) for name, s in top.get("$defs", {}).items()}
    paths: dict[str, Any] = {}
    prefix = "/" + _path_of(group, version)
    for info in infos:
        ref = keys[(info.model, "validation")]["$ref"]
        name = ref.rsplit("/", 1)[-1]
        schemas[name]["x-kubernetes-group-version-kind"] = [_gvk(info)]
        base = f"{prefix}/namespaces/{{namespace}}/{info.plural}" if info.namespaced else f"{prefix}/{info.plural}"
        paths[base] = {"get": _operation(info, "list", ref),
                       "post": _operation(info, "post", ref, body=("application/json",))}
        paths[f"{base}/{{name}}"] = {"get": _operation(info, "get", ref),
                                     "put": _operation(info, "put", ref, body=("application/json",)),
                                     "patch": _operation(info, "patch", ref, body=PATCH_TYPES),
                                     "delete": _operation(info, "delete", ref)}
    return {"openapi": "3.0.0", "info": {"title": "Skiff", "version": version}, "paths": paths,
            "components": {"schemas": schemas}}


class Documents:
    """The documents, each generated once (the models do not change while the server runs)."""

    def __init__(self) -> None:
        self._by_path: dict[str, dict[str, Any]] = {}
        for group, versions in discovery.group_versions().items():
            for version in versions:
                document = group_version_document(group, version)
                if document is not None:
                    self._by_path[_path_of(group, version)] = document
        self._index = {"paths": {
            path: {"serverRelativeURL": f"/openapi/v3/{path}?hash="
                                        + hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]}
            for path, doc in sorted(self._by_path.items())}}

    def index(self) -> dict[str, Any]:
        return self._index

    def group_version(self, path: str) -> dict[str, Any] | None:
        return self._by_path.get(path)
