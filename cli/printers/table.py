"""kubectl's tables: uppercase headers, columns three spaces apart, `<none>` for empty cells.

A `Table` prints objects of one kind. With `-A` a NAMESPACE column comes
first, with `--show-labels` a LABELS column comes last, and when several kinds
are shown together names carry their kind (`pod/web`, `deployment.apps/web`).
The tab writer remembers column widths, so rows printed later by `get -w`
stay aligned under the header printed first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

from api.printing.columns import columns_for, format_labels, get
from cli.printers.tabwriter import TabWriter
from api.printing.timefmt import now

NONE = "<none>"


class Table:
    def __init__(self, kind: str, *, wide: bool = False, with_namespace: bool = False, show_labels: bool = False,
                 name_prefix: str = "", headers: bool = True):
        self.columns = columns_for(kind, wide=wide)
        self.with_namespace = with_namespace
        self.show_labels = show_labels
        self.name_prefix = name_prefix
        self.print_headers = headers
        self.writer = TabWriter(min_width=6, padding=3, remember_widths=True)
        self._header_done = False

    def header_cells(self) -> list[str]:
        cells = [c.header for c in self.columns]
        if self.with_namespace:
            cells.insert(0, "NAMESPACE")
        if self.show_labels:
            cells.append("LABELS")
        return cells

    def row_cells(self, obj: dict[str, Any], at: datetime | None = None) -> list[str]:
        at = at or now()
        cells = []
        for i, column in enumerate(self.columns):
            text = column.value(obj, at)
            if i == 0 and column.header == "NAME" and self.name_prefix:
                text = f"{self.name_prefix}/{text}"
            cells.append(text)
        if self.with_namespace:
            cells.insert(0, get(obj, "metadata.namespace", ""))
        if self.show_labels:
            cells.append(format_labels(get(obj, "metadata.labels")))
        return [_clean(c) for c in cells]

    def render(self, objects: Iterable[dict[str, Any]], *, at: datetime | None = None) -> str:
        """The header (the first time only) and one row per object."""
        at = at or now()
        if self.print_headers and not self._header_done:
            self.writer.write("\t".join(self.header_cells()) + "\n")
            self._header_done = True
        for obj in objects:
            self.writer.write("\t".join(self.row_cells(obj, at)) + "\n")
        return self.writer.flush()


def _clean(text: str) -> str:
    text = " ".join(str(text).split("\t")).replace("\n", " ")
    return text if text.strip() else NONE
