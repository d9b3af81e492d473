"""Field managers: who owns which field of an object, and server-side apply.

Kubernetes records in `metadata.managedFields` one entry per field manager (`kubectl`,
`kubectl-scale`, a controller...) and operation (`Apply` for server-side apply, `Update`
for every other write), each with the set of fields it owns as a `fieldsV1` tree:

    f:spec: {f:replicas: {}, f:template: {f:spec: {f:containers: {
        'k:{"name":"web"}': {.: {}, f:name: {}, f:image: {}}}}}}

`f:<field>` is a map field, `k:<json of the merge key>` an item of a list that merges by
key (the strategic merge keys of rest/patch.py: containers by name, ...), `v:<json>` an item
of a set-like list of scalars (finalizers), and `.` the list item itself. Other lists are
atomic: owned whole. Internally a field set is a set of paths, tuples of those elements:
the leaves, and each keyed or set item.

`apply` is server-side apply: the applied configuration's fields become the applier's;
a field it sets to a value other than the live one while another manager owns it is a
conflict (`ApplyConflict`, 409) unless forced, which moves the ownership; a field the
applier owned before, left out of the configuration now and owned by nobody else, is
removed from the object. `record_update` gives an `Update` manager the fields its write
changed (and takes them from the others). Both are only computed for objects that carry
managedFields (an apply creates them), so plain writes pay nothing.

Simplifications against Kubernetes' structured-merge-diff: one merge key per list (Kubernetes
keys container ports by containerPort and protocol), no per-type `x-kubernetes-list-type`
schema beyond the merge keys, `status` is never owned, and the main resource's managers do
not see subresource (status) writes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable

from controlplane.rest import patch as patches
from controlplane.storage import Conflict

Path = tuple[str, ...]
APPLY, UPDATE = "Apply", "Update"
MISSING = object()
# metadata fields a manager can own; the rest of metadata is the server's
OWNED_METADATA = ("labels", "annotations", "finalizers", "ownerReferences")


class ApplyConflict(Conflict):
    """A server-side apply would change fields other managers own (Kubernetes' 409 Conflict)."""

    def __init__(self, conflicts: list[tuple[dict[str, Any], Path]]):
        self.causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {describe(entry)}",
                        "field": path_text(path)} for entry, path in conflicts]
        if len(conflicts) == 1:
            entry, path = conflicts[0]
            super().__init__(f"Apply failed with 1 conflict: conflict with {describe(entry)}: {path_text(path)}")
            return
        by_manager: dict[str, list[str]] = {}
        for entry, path in conflicts:
            by_manager.setdefault(describe(entry), []).append(path_text(path))
        lines = [line for who, paths in sorted(by_manager.items())
                 for line in [f"conflicts with {who}:", *(f"- {p}" for p in paths)]]
        super().__init__(f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines))


def describe(entry: dict[str, Any]) -> str:
    """A manager as Kubernetes names it in a conflict."""
    out = json.dumps(entry.get("manager", ""))
    if entry.get("subresource"):
        out += f' with subresource {json.dumps(entry["subresource"])}'
    if entry.get("operation") == APPLY:
        return out
    return f'{out} using {entry.get("apiVersion", "")}'


def path_text(path: Path) -> str:
    """`.spec.template.spec.containers[name="web"].image`, as Kubernetes prints a field path."""
    out = ""
    for element in path:
        kind, _, body = element.partition(":")
        if kind == "f":
            out += "." + body
        elif kind == "k":
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(body).items()) + "]"
        else:
            out += f"[={body}]"
    return out


# -- field sets ------------------------------------------------------------------------

def fields_of(obj: dict[str, Any]) -> set[Path]:
    """The field set an object (or an applied configuration) names."""
    out: set[Path] = set()
    for key, value in obj.items():
        if key in ("apiVersion", "kind", "status"):
            continue
        if key == "metadata":
            if isinstance(value, dict):
                for field in OWNED_METADATA:
                    if field in value:
                        _collect(value[field], ("f:metadata", f"f:{field}"), field, out)
            continue
        _collect(value, (f"f:{key}",), key, out)
    return out


def _item_key(field: str, items: list[Any]) -> str | None:
    key = patches._merge_key(field, items)
    if key and all(isinstance(i, dict) and key in i for i in items):
        return key
    return None


def _collect(value: Any, path: Path, field: str, out: set[Path]) -> None:
    if isinstance(value, dict) and value:
        for key, sub in value.items():
            _collect(sub, path + (f"f:{key}",), key, out)
    elif isinstance(value, list) and value:
        key = _item_key(field, value)
        if key is not None:
            for item in value:
                here = path + ("k:" + _compact({key: item[key]}),)
                out.add(here)
                _collect(item, here, "", out)
        elif field in patches.MERGED_SCALAR_LISTS:
            out.update(path + ("v:" + _compact(item),) for item in value)
        else:
            out.add(path)
    else:
        out.add(path)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def to_fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    owned = []
    for path in paths:
        node = tree
        for element in path:
            node = node.setdefault(element, {})
        owned.append(node)
    for node in owned:
        if node and "." not in node:
            node["."] = {}
    return tree


def from_fields_v1(tree: dict[str, Any], path: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for element, sub in (tree or {}).items():
        if element == ".":
            out.add(path)
        elif isinstance(sub, dict) and sub:
            out |= from_fields_v1(sub, path + (element,))
        else:
            out.add(path + (element,))
    return out


def value_at(obj: Any, path: Path) -> Any:
    for element in path:
        kind, _, body = element.partition(":")
        if kind == "f":
            obj = obj.get(body, MISSING) if isinstance(obj, dict) else MISSING
        elif kind == "k" and isinstance(obj, list):
            want = json.loads(body)
            obj = next((i for i in obj if isinstance(i, dict) and all(i.get(k) == v for k, v in want.items())),
                       MISSING)
        elif kind == "v" and isinstance(obj, list):
            item = json.loads(body)
            obj = item if item in obj else MISSING
        else:
            return MISSING
        if obj is MISSING:
            return MISSING
    return obj


def _remove(obj: dict[str, Any], path: Path) -> None:
    parent = value_at(obj, path[:-1])
    kind, _, body = path[-1].partition(":")
    if kind == "f" and isinstance(parent, dict):
        parent.pop(body, None)
    elif kind in ("k", "v") and isinstance(parent, list):
        item = value_at(parent, path[-1:])
        if item is not MISSING:
            parent.remove(item)


def _is_item(path: Path) -> bool:
    return bool(path) and path[-1][:2] in ("k:", "v:")


# -- managedFields entries -------------------------------------------------------------

def entries(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return list((obj.get("metadata") or {}).get("managedFields") or [])


@dataclass(frozen=True)
class Writer:
    """Who makes an update: its field manager, the subresource written (scale), and whether
    the object's managedFields were already computed by a server-side apply."""
    manager: str
    subresource: str = ""
    applied: bool = False


def on_update(current: dict[str, Any], out: dict[str, Any], writer: Writer | None, now: str) -> None:
    """The managedFields an update stores (handlers.py calls this on every update): the
    apply's own, the writer's changes recorded, or, for a writer without a name (the
    control plane's internal writes), the current ones unchanged. A request's own
    managedFields are ignored."""
    meta = out.setdefault("metadata", {})
    if writer is not None and writer.applied:
        return
    if writer is not None and writer.manager:
        record_update(current, out, manager=writer.manager, api_version=str(out.get("apiVersion", "")),
                      now=now, subresource=writer.subresource)
        return
    existing = (current.get("metadata") or {}).get("managedFields")
    if existing:
        meta["managedFields"] = existing
    else:
        meta.pop("managedFields", None)


def _entry(manager: str, operation: str, api_version: str, paths: set[Path], now: str,
           subresource: str = "") -> dict[str, Any]:
    out = {"manager": manager, "operation": operation, "apiVersion": api_version, "time": now,
           "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(sorted(paths))}
    if subresource:
        out["subresource"] = subresource
    return out


def _same(entry: dict[str, Any], manager: str, operation: str, subresource: str = "") -> bool:
    return (entry.get("manager") == manager and entry.get("operation") == operation
            and (entry.get("subresource") or "") == subresource)


def _with(entry: dict[str, Any], paths: set[Path]) -> dict[str, Any]:
    return {**entry, "fieldsV1": to_fields_v1(sorted(paths))}


def apply(live: dict[str, Any] | None, config: dict[str, Any], *, manager: str, force: bool,
          now: str) -> dict[str, Any]:
    """Server-side apply of `config` by `manager` to `live` (None: it is created): the new
    object, its managedFields set. Raises ApplyConflict."""
    applied = fields_of(config)
    api_version = str(config.get("apiVersion", ""))
    mine = _entry(manager, APPLY, api_version, applied, now)
    if live is None:
        out = json.loads(json.dumps(config))
        out.setdefault("metadata", {})["managedFields"] = [mine]
        return out
    others = [(e, from_fields_v1(e.get("fieldsV1") or {})) for e in entries(live) if not _same(e, manager, APPLY)]
    previous = next((from_fields_v1(e.get("fieldsV1") or {}) for e in entries(live) if _same(e, manager, APPLY)),
                    set())
    conflicts = [(entry, path) for entry, owned in others for path in sorted(applied & owned)
                 if not _is_item(path) and value_at(live, path) != value_at(config, path)]
    if conflicts and not force:
        raise ApplyConflict(conflicts)
    taken = {id(e): {p for c, p in conflicts if c is e} for e, _ in others}
    others = [(e, owned - taken[id(e)]) for e, owned in others]
    owned_by_others = set().union(*(owned for _, owned in others))
    out = json.loads(json.dumps(live))
    for path in sorted(previous - applied, key=len):   # an item before its fields (its key finds it)
        if not any(p[:len(path)] == path for p in owned_by_others):
            _remove(out, path)
    body = {k: v for k, v in config.items() if k not in ("apiVersion", "kind", "status")}
    body["metadata"] = {k: v for k, v in (config.get("metadata") or {}).items() if k in OWNED_METADATA}
    out = patches.strategic_merge(out, body, "")
    kept = {id(e): owned for e, owned in others}
    managed = []
    for entry in entries(live):    # in their order, the applier's own entry where it was
        if _same(entry, manager, APPLY):
            managed.append(mine)
        elif kept[id(entry)]:
            managed.append(entry if not taken[id(entry)] else _with(entry, kept[id(entry)]))
    if not any(e is mine for e in managed):
        managed.append(mine)
    out["metadata"]["managedFields"] = managed
    return out


def record_update(current: dict[str, Any], out: dict[str, Any], *, manager: str, api_version: str, now: str,
                  subresource: str = "") -> None:
    """An Update by `manager` made `out` of `current`: it now owns the fields it changed and
    nobody owns the fields it removed. Sets out's managedFields; nothing to do (and nothing
    computed) when `current` has none."""
    existing = entries(current)
    if not existing:
        (out.get("metadata") or {}).pop("managedFields", None)
        return
    before, after = fields_of(current), fields_of(out)
    changed = {p for p in after if (p not in before) if _is_item(p)} | \
              {p for p in after if not _is_item(p) and value_at(current, p) != value_at(out, p)}
    gone = before - after
    managed = []
    mine: set[Path] = set(changed)
    for entry in existing:
        owned = from_fields_v1(entry.get("fieldsV1") or {})
        if _same(entry, manager, UPDATE, subresource):
            mine |= owned - gone
            continue
        owned = owned - changed - gone
        if owned:
            managed.append(_with(entry, owned))
    if mine:
        managed.append(_entry(manager, UPDATE, api_version, mine, now, subresource))
    out.setdefault("metadata", {})["managedFields"] = managed
