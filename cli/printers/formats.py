"""The `-o` formats of `ctl get`, parsed once, and how each prints a batch of objects.

Two families, as in kubectl:
  - per-object formats (table, wide, name, custom-columns) print rows, so a
    watch can keep adding rows under the same header;
  - document formats (yaml, json, jsonpath) print one document: the object
    itself when exactly one was asked for by name, else a `kind: List`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from api.registry import ResourceInfo
from cli.errors import CliError
from cli.printers import jsonpath
from cli.printers.structured import as_list, to_json, to_name, to_yaml
from cli.printers.table import Table
from cli.printers.tabwriter import TabWriter

CHOICES = ("wide", "yaml", "json", "name", "jsonpath=TEMPLATE", "custom-columns=SPEC")


@dataclass(frozen=True)
class OutputFormat:
    kind: str          # table, wide, name, custom-columns, yaml, json, jsonpath
    arg: str = ""      # the template or column spec

    @classmethod
    def parse(cls, text: str | None) -> "OutputFormat":
        if not text:
            return cls("table")
        name, sep, arg = text.partition("=")
        if (not sep and name in ("wide", "yaml", "json", "name")) or (sep and name in ("jsonpath", "custom-columns")):
            return cls(name, arg)
        raise CliError(f'unable to match a printer suitable for the output format "{text}", '
                       f'allowed formats are: {",".join(CHOICES)}')

    @property
    def is_document(self) -> bool:
        return self.kind in ("yaml", "json", "jsonpath")

    def document(self, data: Any) -> str:
        if self.kind == "yaml":
            return to_yaml(data)
        if self.kind == "json":
            return to_json(data)
        return jsonpath.render(self.arg, data)

    def documents(self, objects: list[dict[str, Any]], *, single: bool) -> str:
        return self.document(objects[0] if single and len(objects) == 1 else as_list(objects))


@dataclass
class RowPrinter:
    """Rows of one kind for a per-object format; the header once, widths kept across calls."""

    fmt: OutputFormat
    info: ResourceInfo
    with_namespace: bool = False
    show_labels: bool = False
    name_prefix: str = ""
    headers: bool = True
    _table: Table | None = field(default=None, init=False)
    _writer: TabWriter = field(default_factory=lambda: TabWriter(min_width=6, padding=3, remember_widths=True),
                               init=False)

    def render(self, objects: list[dict[str, Any]]) -> str:
        if self.fmt.kind == "name":
            return "".join(to_name(self.info, o) + "\n" for o in objects)
        if self.fmt.kind == "custom-columns":
            for row in jsonpath.custom_rows(self.fmt.arg, objects, headers=self.headers):
                self._writer.write("\t".join(row) + "\n")
            self.headers = False
            return self._writer.flush()
        if self.fmt.is_document:  # a watch prints each change as its own document
            return "".join(("---\n" if self.fmt.kind == "yaml" else "") + self.fmt.document(o) for o in objects)
        if self._table is None:
            self._table = Table(self.info.kind, wide=self.fmt.kind == "wide", with_namespace=self.with_namespace,
                                show_labels=self.show_labels, name_prefix=self.name_prefix, headers=self.headers)
        return self._table.render(objects)
