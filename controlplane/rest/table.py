"""Table responses (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`): what `kubectl get` prints.

kubectl asks the server for the columns of a kind rather than knowing them itself. The
columns are the ones `ctl get` prints (api/printing/columns.py), so both clients show the
same: a `-o wide` column has priority 1. Each row carries the object's metadata
(PartialObjectMetadata; the whole object with `includeObject=Object`), from which kubectl
takes the namespace column of `-A` and the labels of `--show-labels`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from api.printing.columns import COLUMNS, columns_for
from api.printing.timefmt import now

TABLE_MEDIA = "as=Table"


def wants_table(accept: str) -> bool:
    """The first type kubectl accepts is a meta.k8s.io/v1 Table (it also offers v1beta1, and plain JSON last)."""
    for entry in accept.split(","):
        params = {p.strip().partition("=")[0]: p.strip().partition("=")[2] for p in entry.split(";")[1:]}
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io" and params.get("v") == "v1":
            return True
    return False


def _definitions(kind: str) -> list[dict[str, Any]]:
    wide = {id(c) for c in COLUMNS.get(kind, [])} - {id(c) for c in columns_for(kind)}
    out = []
    for column in columns_for(kind, wide=True):
        out.append({"name": column.header.title() if column.header != "NAME" else "Name", "type": "string",
                    "format": "name" if column.header == "NAME" else "", "description": "",
                    "priority": 1 if id(column) in wide else 0})
    return out


def _row(kind: str, obj: dict[str, Any], at: datetime, include: str) -> dict[str, Any]:
    cells = [column.value(obj, at) or "<none>" for column in columns_for(kind, wide=True)]
    row: dict[str, Any] = {"cells": cells}
    if include == "Object":
        row["object"] = obj
    elif include != "None":
        row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                         "metadata": obj.get("metadata") or {}}
    return row


def table(kind: str, objects: list[dict[str, Any]], *, resource_version: str = "", include: str = "Metadata",
          extra_meta: dict[str, Any] | None = None) -> dict[str, Any]:
    at = now()
    meta: dict[str, Any] = {"resourceVersion": resource_version} if resource_version else {}
    meta.update(extra_meta or {})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": _definitions(kind),
            "rows": [_row(kind, o, at, include) for o in objects]}
