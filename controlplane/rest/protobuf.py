"""Reading the Kubernetes protobuf bodies kubectl sends, for the few kinds it sends them for.

kubectl's typed clients (`kubectl create namespace|configmap|secret|serviceaccount|deployment`,
`kubectl auth can-i`, `kubectl drain`'s evictions) send `Content-Type:
application/vnd.kubernetes.protobuf` and have no fallback to JSON on a 415. Skiff answers in JSON (which kubectl accepts) and reads these
bodies by the field numbers of Kubernetes' generated.proto files: the envelope (`k8s\\0`,
then a `runtime.Unknown`: typeMeta 1 {apiVersion 1, kind 2}, raw 2) and, in `raw`, the
object by one of the SCHEMAS below. Go writes every non-pointer field, so zero values (""
or 0, an empty message) are skipped; a field the schema does not know that holds anything
else is refused with a 415 naming it (never silently dropped): use `kubectl create -f` /
`apply -f`, which send JSON.
"""

from __future__ import annotations

import base64
from typing import Any, Union

MAGIC = b"k8s\x00"

# A schema maps a field number to (JSON name, type); a type is "string", "bytes" (base64 in
# JSON), "int", "bool", "map" (string -> string), "bytesmap" (string -> base64), a nested
# schema (a dict), or a one-item list of one of these (a repeated field).
Schema = dict[int, tuple[str, Any]]

OBJECT_META: Schema = {1: ("name", "string"), 2: ("generateName", "string"), 3: ("namespace", "string"),
                       11: ("labels", "map"), 12: ("annotations", "map"), 14: ("finalizers", ["string"])}
LABEL_SELECTOR: Schema = {1: ("matchLabels", "map")}
CONTAINER_PORT: Schema = {1: ("name", "string"), 2: ("hostPort", "int"), 3: ("containerPort", "int"),
                          4: ("protocol", "string")}
ENV_VAR: Schema = {1: ("name", "string"), 2: ("value", "string")}
CONTAINER: Schema = {1: ("name", "string"), 2: ("image", "string"), 3: ("command", ["string"]),
                     4: ("args", ["string"]), 5: ("workingDir", "string"), 6: ("ports", [CONTAINER_PORT]),
                     7: ("env", [ENV_VAR]), 8: ("resources", {}), 14: ("imagePullPolicy", "string")}
POD_SPEC: Schema = {2: ("containers", [CONTAINER]), 3: ("restartPolicy", "string")}
POD_TEMPLATE: Schema = {1: ("metadata", OBJECT_META), 2: ("spec", POD_SPEC)}
DELETE_OPTIONS: Schema = {1: ("gracePeriodSeconds", "int"),
                          2: ("preconditions", {1: ("uid", "string"), 2: ("resourceVersion", "string")}),
                          3: ("orphanDependents", "bool"), 4: ("propagationPolicy", "string"), 5: ("dryRun", ["string"])}

SCHEMAS: dict[str, Schema] = {
    "Namespace": {1: ("metadata", OBJECT_META), 2: ("spec", {1: ("finalizers", ["string"])})},
    "ConfigMap": {1: ("metadata", OBJECT_META), 2: ("data", "map"), 3: ("binaryData", "bytesmap"),
                  4: ("immutable", "bool")},
    "Secret": {1: ("metadata", OBJECT_META), 2: ("data", "bytesmap"), 3: ("type", "string"),
               4: ("stringData", "map"), 5: ("immutable", "bool")},
    "ServiceAccount": {1: ("metadata", OBJECT_META), 3: ("imagePullSecrets", [{1: ("name", "string")}]),
                       4: ("automountServiceAccountToken", "bool")},
    # `kubectl drain` posts its evictions (pods/NAME/eviction) this way.
    "Eviction": {1: ("metadata", OBJECT_META), 2: ("deleteOptions", DELETE_OPTIONS)},
    "Deployment": {1: ("metadata", OBJECT_META), 2: ("spec", {
        1: ("replicas", "int"), 2: ("selector", LABEL_SELECTOR), 3: ("template", POD_TEMPLATE),
        4: ("strategy", {1: ("type", "string")}), 5: ("minReadySeconds", "int"),
        6: ("revisionHistoryLimit", "int"), 7: ("paused", "bool"), 9: ("progressDeadlineSeconds", "int")})},
}


class Unreadable(ValueError):
    """A protobuf body Skiff cannot read; the message says what and why."""


def varint(data: bytes, at: int) -> tuple[int, int]:
    """The varint at `at` and the offset after it."""
    value = shift = 0
    while True:
        if at >= len(data):
            raise Unreadable("truncated varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


Value = Union[int, bytes]


def fields(data: bytes) -> list[tuple[int, Value]]:
    """The fields of a protobuf message in order: (number, int for a varint | bytes for a length-delimited)."""
    out: list[tuple[int, Value]] = []
    at = 0
    while at < len(data):
        key, at = varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = varint(data, at)
            out.append((number, value))
        elif wire == 2:
            size, at = varint(data, at)
            out.append((number, data[at:at + size]))
            at += size
        else:
            raise Unreadable(f"unsupported protobuf wire type {wire}")
    return out


def last_fields(data: bytes) -> dict[int, bytes]:
    """The length-delimited fields of a message, the last of each number (varints skipped)."""
    return {n: v for n, v in fields(data) if isinstance(v, bytes)}


def envelope(body: bytes) -> tuple[str, str, bytes]:
    """(apiVersion, kind, raw message) of a body in Kubernetes' protobuf envelope."""
    if not body.startswith(MAGIC):
        raise Unreadable("the body is not in Kubernetes' protobuf envelope (k8s\\0)")
    unknown = last_fields(body[len(MAGIC):])
    type_meta = last_fields(unknown.get(1, b""))
    return type_meta.get(1, b"").decode(), type_meta.get(2, b"").decode(), unknown.get(2, b"")


def decode_object(body: bytes) -> dict[str, Any]:
    """The object a protobuf create/update body holds, as its JSON would have it."""
    api_version, kind, raw = envelope(body)
    schema = SCHEMAS.get(kind)
    if schema is None:
        raise Unreadable(f"Skiff reads Kubernetes' protobuf only for {', '.join(sorted(SCHEMAS))}, not {kind or '?'}")
    return {"apiVersion": api_version, "kind": kind, **_message(raw, schema, kind)}


def _message(data: bytes, schema: Schema, path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, value in fields(data):
        if number not in schema:
            if _empty(value):   # Go writes every non-pointer field, set or not (uid "", creationTimestamp {})
                continue
            raise Unreadable(f"field {number} of {path} is not one Skiff reads from protobuf")
        name, kind = schema[number]
        here = f"{path}.{name}"
        if isinstance(kind, list):
            out.setdefault(name, []).append(_value(value, kind[0], here))
        elif kind in ("map", "bytesmap"):
            entry = last_fields(_bytes(value, here))
            item = entry.get(2, b"")
            out.setdefault(name, {})[entry.get(1, b"").decode()] = \
                item.decode() if kind == "map" else base64.b64encode(item).decode()
        elif kind == "string" and value == b"" or kind == "bool" and value == 0:
            continue            # a Go zero value: as absent in JSON (omitempty)
        else:
            out[name] = _value(value, kind, here)
    return out


def _empty(value: Value) -> bool:
    """A zero value: 0, "", or a message whose fields are all zero values."""
    if isinstance(value, int) or not value:
        return not value
    try:
        return all(_empty(v) for _, v in fields(value))
    except Unreadable:
        return False


def _value(value: Value, kind: Any, path: str) -> Any:
    if isinstance(kind, dict):
        return _message(_bytes(value, path), kind, path)
    if kind == "string":
        return _bytes(value, path).decode()
    if kind == "bytes":
        return base64.b64encode(_bytes(value, path)).decode()
    if not isinstance(value, int):
        raise Unreadable(f"{path}: expected a number")
    if kind == "bool":
        return bool(value)
    return value - (1 << 64) if value >= 1 << 63 else value


def _bytes(value: Value, path: str) -> bytes:
    if not isinstance(value, bytes):
        raise Unreadable(f"{path}: expected a length-delimited field")
    return value
