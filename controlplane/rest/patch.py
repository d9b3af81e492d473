"""The patch formats of Kubernetes' PATCH verb, applied to the stored object.

- `application/merge-patch+json` — RFC 7386: maps merge, `null` deletes, lists are replaced;
- `application/strategic-merge-patch+json` — what `kubectl apply`, `edit`, `label` and
  `patch` send for the built-in kinds: a merge patch in which lists of objects with a merge
  key (containers by `name`, container ports by `containerPort`, volume mounts by
  `mountPath`, ...: `MERGE_KEYS`, Kubernetes' `patchMergeKey`s for the fields Skiff has)
  merge item by item, with the directives `$patch` (replace, delete), `$retainKeys`,
  `$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>` (the order is taken
  from the patch's list itself; the directive is dropped). Other lists are replaced whole;
- `application/json-patch+json` — RFC 6902, by the `jsonpatch` library.

(`application/apply-patch+yaml`, server-side apply, is not a patch of the stored object:
resources.py hands it to controlplane/apiserver/fieldmanager.py, which merges with the
merge keys here.) A malformed patch raises ValidationFailed.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from api.errors import FieldError, ValidationFailed

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

# Field name -> the key its list items merge on (Kubernetes' patchMergeKey). "ports" is
# containerPort in a container and port in a Service: `_merge_key` looks at the items.
MERGE_KEYS: dict[str, str] = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "volumes": "name",
    "env": "name", "imagePullSecrets": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath",
    "hostAliases": "ip", "conditions": "type", "ownerReferences": "uid", "taints": "key", "addresses": "type",
    "ports": "containerPort", "resourceClaims": "name",
}
# Lists of scalars that merge as sets (patchStrategy "merge").
MERGED_SCALAR_LISTS = frozenset({"finalizers"})


def apply_patch(content_type: str, current: dict[str, Any], patch: Any) -> dict[str, Any]:
    """The object `patch` (already decoded) makes of `current`; `current` is not changed."""
    if content_type == JSON_PATCH:
        if not isinstance(patch, list):
            raise ValidationFailed(FieldError("", "a JSON patch must be a list of operations"))
        try:
            out = jsonpatch.apply_patch(current, patch)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError) as exc:
            raise ValidationFailed(FieldError("", f"the JSON patch cannot be applied: {exc}")) from None
        if not isinstance(out, dict):
            raise ValidationFailed(FieldError("", "the JSON patch must leave an object"))
        return out
    if not isinstance(patch, dict):
        raise ValidationFailed(FieldError("", "a merge patch must be a JSON object"))
    if content_type == MERGE_PATCH:
        return merge_patch(current, patch)
    if content_type == STRATEGIC:
        out = strategic_merge(current, patch, "")
        return out if isinstance(out, dict) else {}
    raise ValidationFailed(FieldError("", f"unsupported patch type {content_type!r}: use {JSON_PATCH}, "
                                          f"{MERGE_PATCH}, {STRATEGIC} or {APPLY_PATCH}"))


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _merge_key(field: str, items: list[Any]) -> str | None:
    key = MERGE_KEYS.get(field)
    if key == "containerPort" and any(isinstance(i, dict) and "containerPort" not in i and "port" in i
                                      for i in items):
        return "port"
    return key


def strategic_merge(current: Any, patch: dict[str, Any], path: str) -> Any:
    """Kubernetes' strategic merge of `patch` into `current` (a map); None means deleted."""
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    body = {k: v for k, v in patch.items() if not k.startswith("$")}
    if directive == "replace":
        return copy.deepcopy(body)
    if directive is not None:
        raise ValidationFailed(FieldError(f"{path}.$patch" if path else "$patch",
                                          f'Unsupported value: "{directive}": supported values: "replace", "delete"'))
    out = dict(current) if isinstance(current, dict) else {}
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.partition("/")[2]
            if isinstance(out.get(field), list) and isinstance(value, list):
                out[field] = [v for v in out[field] if v not in value]
    for key, value in body.items():
        here = f"{path}.{key}" if path else key
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict):
            merged = strategic_merge(out.get(key), value, here)
            if merged is None:
                out.pop(key, None)
            else:
                out[key] = merged
        elif isinstance(value, list):
            out[key] = _merge_list(key, out.get(key), value, here)
        else:
            out[key] = copy.deepcopy(value)
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _merge_list(field: str, current: Any, patch: list[Any], path: str) -> list[Any]:
    if field in MERGED_SCALAR_LISTS and isinstance(current, list):
        return list(current) + [v for v in patch if v not in current]
    key = _merge_key(field, patch)
    if key is None or not all(isinstance(i, dict) for i in patch):
        return [i for i in copy.deepcopy(patch)
                if not (isinstance(i, dict) and i.get("$patch") == "replace" and len(i) == 1)]
    if any(i.get("$patch") == "replace" for i in patch):   # `{"$patch": "replace"}` in a list: replace it whole
        return [i for i in copy.deepcopy(patch) if "$patch" not in i]
    out = [copy.deepcopy(i) for i in current] if isinstance(current, list) else []
    for index, item in enumerate(patch):
        if key not in item:
            raise ValidationFailed(FieldError(f"{path}[{index}]", f'does not contain declared merge key "{key}"'))
        found = next((n for n, have in enumerate(out) if isinstance(have, dict) and have.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if found is not None:
                del out[found]
            continue
        if found is None:
            out.append(strategic_merge({}, item, f"{path}[{index}]"))
        else:
            out[found] = strategic_merge(out[found], item, f"{path}[{index}]")
    return out
