"""Table responses (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`): what `kubectl get` prints.

kubectl asks the server for the columns of a kind rather than knowing them itself. The
columns are the ones `ctl get` prints (api/printing/columns.py), so both clients show the
same: a `-o wide` column has priority 1. Each row carries the object's metadata
(PartialObjectMetadata; the whole object with `includeObject=Object`), from which kubectl
takes the namespace column of `-A` and the labels of `--show-labels`.

A list's Table is built from the objects' stored JSON (`table_bytes`), and each row is
kept, encoded, in a `RowCache` keyed on that JSON: an object that has not changed since
the last `kubectl get` is neither decoded nor has its columns computed again. Only the cells
that depend on the time are recomputed each time — AGE from the creation timestamp kept
in the row; a cell that moves with the clock otherwise (RESTARTS' "(2m ago)", a Job's
DURATION, an Event's LAST SEEN: found by computing the row at two instants) keeps the
decoded object with the row, so that row is computed afresh each time.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from typing import Any, Iterable

from api.printing.columns import AGE, COLUMNS, Column, columns_for, get
from api.printing.timefmt import now, since

TABLE_MEDIA = "as=Table"
# Rows kept by RowCache: a few lists of 5,000 objects. Past it the older half is dropped.
ROW_CACHE_SIZE = 20_000
# The second instant at which a row is computed to find its cells that move with the clock.
_LATER = dt.timedelta(days=3 * 365 + 17, seconds=7)


def wants_table(accept: str) -> bool:
    """The first type kubectl accepts is a meta.k8s.io/v1 Table (it also offers v1beta1, and plain JSON last)."""
    for entry in accept.split(","):
        params = {p.strip().partition("=")[0]: p.strip().partition("=")[2] for p in entry.split(";")[1:]}
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io" and params.get("v") == "v1":
            return True
    return False


_DEFINITIONS: dict[str, list[dict[str, Any]]] = {}


def _definitions(kind: str) -> list[dict[str, Any]]:
    known = _DEFINITIONS.get(kind)
    if known is not None:
        return known
    wide = {id(c) for c in COLUMNS.get(kind, [])} - {id(c) for c in columns_for(kind)}
    out = []
    for column in columns_for(kind, wide=True):
        out.append({"name": column.header.title() if column.header != "NAME" else "Name", "type": "string",
                    "format": "name" if column.header == "NAME" else "", "description": "",
                    "priority": 1 if id(column) in wide else 0})
    _DEFINITIONS[kind] = out
    return out


def _cells(columns: list[Column], obj: dict[str, Any], at: dt.datetime) -> list[str]:
    return [column.value(obj, at) or "<none>" for column in columns]


def _row_object(obj: dict[str, Any], include: str) -> dict[str, Any] | None:
    if include == "Object":
        return obj
    if include == "None":
        return None
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata") or {}}


def _row(kind: str, obj: dict[str, Any], at: dt.datetime, include: str) -> dict[str, Any]:
    row: dict[str, Any] = {"cells": _cells(columns_for(kind, wide=True), obj, at)}
    partial = _row_object(obj, include)
    if partial is not None:
        row["object"] = partial
    return row


def table(kind: str, objects: list[dict[str, Any]], *, resource_version: str = "", include: str = "Metadata",
          extra_meta: dict[str, Any] | None = None) -> dict[str, Any]:
    at = now()
    meta: dict[str, Any] = {"resourceVersion": resource_version} if resource_version else {}
    meta.update(extra_meta or {})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": _definitions(kind),
            "rows": [_row(kind, o, at, include) for o in objects]}


def _encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


class _Row:
    """One object's row, encoded: each cell's JSON (None where it is the AGE, recomputed from
    `created` each time) and the rest of the row after the cells. `obj` is kept only when a
    cell other than AGE moves with the clock: then the whole row is computed each time."""

    __slots__ = ("cells", "created", "tail", "obj")

    def __init__(self, cells: list[bytes | None], created: Any, tail: bytes, obj: dict[str, Any] | None):
        self.cells, self.created, self.tail, self.obj = cells, created, tail, obj


class RowCache:
    """Encoded Table rows by (kind, includeObject, the object's stored JSON). The key is the
    whole JSON, so a changed object (its resourceVersion is in it) is a new entry: a row can
    never show an older version of its object. Bounded at `size` rows."""

    def __init__(self, size: int = ROW_CACHE_SIZE):
        self.size = size
        self.rows: dict[tuple[str, str, bytes], _Row] = {}

    def _make(self, kind: str, columns: list[Column], raw: bytes, at: dt.datetime, include: str) -> _Row:
        obj = json.loads(raw)
        now_cells, later_cells = _cells(columns, obj, at), _cells(columns, obj, at + _LATER)
        cells: list[bytes | None] = []
        moving = False
        for column, a, b in zip(columns, now_cells, later_cells):
            if column is AGE:
                cells.append(None)
            else:
                moving = moving or a != b
                cells.append(_encode(a))
        partial = _row_object(obj, include)
        tail = b"]}" if partial is None else \
            b'],"object":' + (raw if include == "Object" else _encode(partial)) + b"}"
        created = get(obj, "metadata.creationTimestamp")   # since() reads only a string: the rest are alike
        row = _Row(cells, created if isinstance(created, str) else None, tail, obj if moving else None)
        if len(self.rows) >= self.size:
            for key in list(itertools.islice(self.rows, len(self.rows) // 2 + 1)):
                del self.rows[key]
        self.rows[(kind, include, raw)] = row
        return row

    def row(self, kind: str, columns: list[Column], raw: bytes, at: dt.datetime, include: str,
            ages: dict[Any, bytes]) -> bytes:
        """The row's JSON at `at`; `ages`: the AGE cells computed so far at `at`, by creation time
        (objects made in a burst share their second, so a list computes few)."""
        row = self.rows.get((kind, include, raw))
        if row is None:
            row = self._make(kind, columns, raw, at, include)
        if row.obj is not None:   # a cell besides AGE moves with the clock: the whole row afresh
            return b'{"cells":' + _encode(_cells(columns, row.obj, at))[:-1] + row.tail
        parts = []
        for cell in row.cells:
            if cell is None:
                cell = ages.get(row.created)
                if cell is None:
                    cell = ages[row.created] = _encode(since(row.created, at) or "<none>")
            parts.append(cell)
        return b'{"cells":[' + b",".join(parts) + row.tail


ROWS = RowCache()


def table_bytes(kind: str, raws: Iterable[bytes], *, resource_version: str = "", include: str = "Metadata",
                extra_meta: dict[str, Any] | None = None, cache: RowCache = ROWS) -> bytes:
    """The Table of a list, encoded, from each object's stored JSON (what `table()` gives, as bytes)."""
    at = now()
    columns = columns_for(kind, wide=True)
    meta: dict[str, Any] = {"resourceVersion": resource_version} if resource_version else {}
    meta.update(extra_meta or {})
    head = _encode({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
                    "columnDefinitions": _definitions(kind)})[:-1]
    ages: dict[Any, bytes] = {}
    rows = b",".join(cache.row(kind, columns, raw, at, include, ages) for raw in raws)
    return head + b',"rows":[' + rows + b"]}"
