"""Checking manifests before anything is written, as `kubectl --validate=strict` does.

Every document is parsed with the kind's model from api/ (unknown fields,
wrong types, bad values, invalid names, missing fields), its size is checked
against the API server's limit, and its namespace against `-n`. Problems from
all documents are collected first; if there is any, the command stops with one
line per bad document, naming the file, line, object and field:

    error: web.yaml:14: Deployment "web" is invalid: spec.template.spec.containers[0].image: field required

What goes to the server is the user's manifest as written (plus the namespace),
not the defaulted model, so `apply` records exactly what the user owns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from api.errors import ValidationFailed
from api.registry import ResourceInfo, lookup_kind, parse_object
from cli.errors import ManyErrors
from cli.manifests import Document

# The API server refuses objects above this size (etcd's default request limit).
from api.limits import MAX_OBJECT_BYTES


@dataclass
class Checked:
    """A document that passed validation, ready to send."""

    doc: Document
    info: ResourceInfo
    obj: dict[str, Any]

    @property
    def name(self) -> str:
        return self.obj["metadata"].get("name") or ""

    @property
    def namespace(self) -> str:
        return self.obj["metadata"].get("namespace") or ""

    @property
    def ref(self) -> str:
        """`deployment.apps/web`, as apply prints it."""
        return f"{self.info.qualified}/{self.name}"


def _invalid(doc: Document, exc: ValidationFailed) -> str:
    first = exc.errors[0].path if exc.errors else ""
    if exc.kind:
        return f'{doc.at(first)}: {exc.kind} "{exc.name}" is invalid: {exc}'
    return f"{doc.at(first)}: {exc}"


def _set_namespace(doc: Document, info: ResourceInfo, obj: dict[str, Any], *, namespace: str,
                   explicit: bool) -> str | None:
    """Fill in the namespace; an error message when the object's own disagrees with `-n`."""
    meta = obj.setdefault("metadata", {})
    if not info.namespaced:
        meta.pop("namespace", None)
        return None
    own = meta.get("namespace")
    if own and explicit and own != namespace:
        return (f'{doc.at("metadata.namespace")}: the namespace from the provided object "{own}" does not match '
                f'the namespace "{namespace}". You must pass \'--namespace={own}\' to perform this operation.')
    meta["namespace"] = own or namespace
    return None


def check_one(doc: Document, *, namespace: str, explicit_namespace: bool = False) -> Checked:
    """Validate one document; ValueError with the finished message when it is bad."""
    data = doc.data
    try:
        model = parse_object(data)
    except ValidationFailed as exc:
        raise ValueError(_invalid(doc, exc)) from None
    info = lookup_kind(data["apiVersion"], data["kind"])
    obj = json.loads(json.dumps(data, default=str))  # a private copy
    if not isinstance(obj.get("metadata"), dict):
        obj["metadata"] = {}
    size = len(json.dumps(model.to_json(), separators=(",", ":")))
    if size > MAX_OBJECT_BYTES:
        raise ValueError(f'{doc.where}: {info.kind} "{model.name}" is invalid: object is too large: {size} bytes; '
                         f'the limit is {MAX_OBJECT_BYTES} bytes (1.5 MiB)')
    if msg := _set_namespace(doc, info, obj, namespace=namespace, explicit=explicit_namespace):
        raise ValueError(msg)
    return Checked(doc, info, obj)


def check_all(docs: Sequence[Document], *, namespace: str, explicit_namespace: bool = False) -> list[Checked]:
    """Validate every document; ManyErrors (one line per bad document) if any is bad."""
    checked, errors = [], []
    for doc in docs:
        try:
            checked.append(check_one(doc, namespace=namespace, explicit_namespace=explicit_namespace))
        except ValueError as exc:
            errors.append(str(exc))
    if errors:
        raise ManyErrors(errors)
    return checked


def identify_all(docs: Sequence[Document], *, namespace: str, explicit_namespace: bool = False) -> list[Checked]:
    """Only what deletion needs: a known kind and a name. No field validation."""
    out, errors = [], []
    for doc in docs:
        data = doc.data
        try:
            if not isinstance(data, dict):
                raise ValueError(f"{doc.where}: a document must be a mapping, got {type(data).__name__}")
            try:
                info = lookup_kind(str(data.get("apiVersion", "")), str(data.get("kind", "")))
            except ValidationFailed as exc:
                raise ValueError(_invalid(doc, exc)) from None
            obj = dict(data)
            obj["metadata"] = dict(data.get("metadata") or {})
            if not obj["metadata"].get("name"):
                raise ValueError(f'{doc.at("metadata")}: {info.kind} is invalid: metadata.name: field required')
            if msg := _set_namespace(doc, info, obj, namespace=namespace, explicit=explicit_namespace):
                raise ValueError(msg)
            out.append(Checked(doc, info, obj))
        except ValueError as exc:
            errors.append(str(exc))
    if errors:
        raise ManyErrors(errors)
    return out
