"""Metadata every object carries (ObjectMeta), owner references, label selectors.

Server-set fields (uid, resourceVersion, generation, creationTimestamp,
deletionTimestamp) are accepted on input so that `get -o yaml | apply -f -`
round-trips, but the API server overwrites them.
"""

from __future__ import annotations

from typing import Any, Optional

from pydantic import field_validator, model_validator

from api.base import ApiModel
from api.errors import ValidationFailed, as_pydantic_error
from api.selectors import (OPERATORS, Selector, check_label_key, check_label_value, requirement_from_expression,
                           selector_from_spec)


def _check_labels(labels: dict[str, str] | None) -> dict[str, str] | None:
    for key, value in (labels or {}).items():
        if msg := check_label_key(key):
            raise ValueError(msg)
        if msg := check_label_value(value):
            raise ValueError(msg)
    return labels


class OwnerReference(ApiModel):
    api_version: str
    kind: str
    name: str
    uid: str
    controller: Optional[bool] = None
    block_owner_deletion: Optional[bool] = None


class ManagedFieldsEntry(ApiModel):
    """Which fields one field manager owns (server-side apply; controlplane/apiserver/fieldmanager.py).
    `fieldsV1` is Kubernetes' ownership tree: `f:<field>`, `k:{"<merge key>":...}` for a keyed
    list item, `v:<json>` for a set item, `.` for the item itself."""
    manager: Optional[str] = None
    operation: Optional[str] = None          # Apply or Update
    api_version: Optional[str] = None
    time: Optional[str] = None
    fields_type: Optional[str] = None        # FieldsV1
    fields_v1: Optional[dict[str, Any]] = None
    subresource: Optional[str] = None


# The types below mirror Kubernetes' own, one per kind: their field declarations look like other
# kinds' (the `duplicates` tool pairs them by shape), but each is a separate API type; no logic to share.
class ObjectMeta(ApiModel):
    name: Optional[str] = None
    generate_name: Optional[str] = None
    namespace: Optional[str] = None
    uid: Optional[str] = None
    resource_version: Optional[str] = None
    generation: Optional[int] = None
    creation_timestamp: Optional[str] = None
    deletion_timestamp: Optional[str] = None
    deletion_grace_period_seconds: Optional[int] = None
    labels: Optional[dict[str, str]] = None
    annotations: Optional[dict[str, str]] = None
    owner_references: Optional[list[OwnerReference]] = None
    finalizers: Optional[list[str]] = None
    managed_fields: Optional[list[ManagedFieldsEntry]] = None

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        return _check_labels(v)

    @field_validator("annotations")
    @classmethod
    def _annotations(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        for key in v or {}:
            if msg := check_label_key(key):
                raise ValueError(msg.replace("label key", "annotation key"))
        if v and sum(len(k) + len(val) for k, val in v.items()) > 256 * 1024:
            raise ValueError("annotations may not exceed 256KiB in total")
        return v

    def controller_ref(self) -> OwnerReference | None:
        for ref in self.owner_references or []:
            if ref.controller:
                return ref
        return None


class LabelSelectorRequirement(ApiModel):
    key: str
    operator: str
    values: Optional[list[str]] = None


class LabelSelector(ApiModel):
    match_labels: Optional[dict[str, str]] = None
    match_expressions: Optional[list[LabelSelectorRequirement]] = None

    @field_validator("match_labels")
    @classmethod
    def _match_labels(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        return _check_labels(v)

    @model_validator(mode="after")
    def _expressions(self) -> "LabelSelector":
        errors = []
        for i, expr in enumerate(self.match_expressions or []):
            try:
                requirement_from_expression(expr.to_json(), path=f"matchExpressions[{i}]", operators=OPERATORS)
            except ValidationFailed as e:
                errors += e.errors
        if errors:  # reported at their exact paths, e.g. spec.selector.matchExpressions[0].operator
            raise as_pydantic_error(errors, title="LabelSelector")
        return self

    def to_selector(self) -> Selector:
        return selector_from_spec(self.to_json())


def selector_of(spec: dict[str, Any] | None) -> Selector:
    return selector_from_spec(spec)
