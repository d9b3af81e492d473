"""Reading manifests: `-f FILE`, `-f DIR` (with `-R` recursively) and `-f -` (stdin).

A file holds one or more YAML documents separated by `---`, or JSON; a
document of `kind: List` stands for its `items`. Every document comes back as a
`Document` that remembers its file and the YAML node tree, so a later error
about `spec.template.spec.containers[0].image` can point at the line it is on.

YAML is read strictly, as kubectl's strict validation does: a key given twice
in one mapping is an error, and dates stay strings (they are Kubernetes
timestamps, not Python datetimes). Syntax errors carry the file and line:
`error parsing web.yaml: line 4: mapping values are not allowed here`.

Limits are checked while reading, before the work they bound: a source larger
than MAX_MANIFEST_BYTES is refused from its size (stdin after reading one byte
more), a document nested deeper than MAX_NESTING as the parser descends, and a
document larger than an object may be before it is turned into Python values.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence, TextIO

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError

from api.limits import MAX_MANIFEST_BYTES, MAX_NESTING, MAX_OBJECT_BYTES, nesting_depth
from cli.errors import CliError

EXTENSIONS = (".yaml", ".yml", ".json")
STDIN = "STDIN"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys, keeps timestamps as strings and stops
    descending past MAX_NESTING levels."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                raise ComposerError(None, None, f"maps and lists nest more than {MAX_NESTING} levels deep",
                                    self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise ConstructorError(None, None, f'duplicate key "{key}"', key_node.start_mark)
            try:
                seen.add(key)
            except TypeError:
                pass  # unhashable keys are reported by the base class
        return super().construct_mapping(node, deep=deep)


_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@dataclass
class Document:
    """One object read from a manifest source."""

    source: str              # the file name, or STDIN
    line: int                # 1-based line where the document's content starts
    data: Any
    node: yaml.Node | None = None

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"

    def line_of(self, path: str) -> int:
        """The line of the field at `path` (`spec.containers[0].image`), or of its nearest parent."""
        node, line = self.node, self.line
        if node is None:
            return line
        for name, index in _PATH_PART.findall(path):
            if index:
                if not isinstance(node, yaml.SequenceNode) or int(index) >= len(node.value):
                    break
                node = node.value[int(index)]
                line = node.start_mark.line + 1
                continue
            if not isinstance(node, yaml.MappingNode):
                break
            match = next(((k, v) for k, v in node.value if getattr(k, "value", None) == name), None)
            if match is None:
                break
            line = match[0].start_mark.line + 1
            node = match[1]
        return line

    def at(self, path: str) -> str:
        """`web.yaml:14` for the line of the field at `path`."""
        return f"{self.source}:{self.line_of(path)}"


def _yaml_error(source: str, exc: yaml.YAMLError) -> CliError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f" line {mark.line + 1}:" if mark is not None else ""
    return CliError(f"error parsing {source}:{where} {problem}")


def parse_yaml(text: str, source: str) -> list[Document]:
    """All documents of a YAML stream (empty documents skipped, Lists expanded)."""
    loader = _StrictLoader(text)
    docs: list[Document] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            span = node.end_mark.index - node.start_mark.index
            if span > 2 * MAX_OBJECT_BYTES:     # YAML's punctuation and indentation: JSON is smaller
                raise CliError(f"{source}:{node.start_mark.line + 1}: the document is {span} bytes; an object may "
                               f"be at most {MAX_OBJECT_BYTES} bytes (1.5 MiB)")
            data = loader.construct_document(node)
            if data is None:
                continue
            docs.extend(_expand(Document(source, node.start_mark.line + 1, data, node)))
    except yaml.YAMLError as exc:
        raise _yaml_error(source, exc) from None
    finally:
        loader.dispose()
    return docs


def parse_json(text: str, source: str) -> list[Document]:
    if not text.strip():
        return []
    try:
        data = json.loads(text)
        too_deep = nesting_depth(data) > MAX_NESTING
    except json.JSONDecodeError as exc:
        raise CliError(f"error parsing {source}: line {exc.lineno}: {exc.msg}") from None
    except RecursionError:
        too_deep = True
    if too_deep:
        raise CliError(f"error parsing {source}: maps and lists nest more than {MAX_NESTING} levels deep")
    return _expand(Document(source, 1, data))


def _expand(doc: Document) -> list[Document]:
    """A `kind: List` document becomes one Document per item."""
    data = doc.data
    if not (isinstance(data, dict) and data.get("kind") == "List" and "items" in data):
        return [doc]
    items = data.get("items") or []
    if not isinstance(items, list):
        raise CliError(f"{doc.where}: items: a List's items must be a list of objects")
    item_nodes: list[yaml.Node | None] = [None] * len(items)
    if isinstance(doc.node, yaml.MappingNode):
        for key, value in doc.node.value:
            if getattr(key, "value", None) == "items" and isinstance(value, yaml.SequenceNode):
                item_nodes = list(value.value) + [None] * (len(items) - len(value.value))
    return [Document(doc.source, node.start_mark.line + 1 if node is not None else doc.line, item, node)
            for item, node in zip(items, item_nodes)]


def _files_in(directory: Path, recursive: bool) -> list[Path]:
    pattern = directory.rglob("*") if recursive else directory.iterdir()
    return sorted(p for p in pattern if p.is_file() and p.suffix.lower() in EXTENSIONS)


def _too_large(source: str, size: str) -> str:
    return (f"{source} is {size} larger than ctl reads from one source ({MAX_MANIFEST_BYTES} bytes, "
            f"{MAX_MANIFEST_BYTES // 1024 // 1024} MiB); split it into several files")


def read_source(name: str, *, recursive: bool = False, stdin: TextIO | None = None) -> list[Document]:
    """The documents of one `-f` argument."""
    if name == "-":
        text = (stdin or sys.stdin).read(MAX_MANIFEST_BYTES + 1)
        if len(text) > MAX_MANIFEST_BYTES:
            raise CliError(_too_large(STDIN, "more than"))
        return parse_yaml(text, STDIN)
    path = Path(name)
    if not path.exists():
        raise CliError(f'the path "{name}" does not exist')
    files = _files_in(path, recursive) if path.is_dir() else [path]
    docs: list[Document] = []
    for file in files:
        try:
            size = file.stat().st_size
            if size > MAX_MANIFEST_BYTES:
                raise CliError(_too_large(str(file), f"{size} bytes,"))
            text = file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read {file}: {getattr(exc, 'strerror', None) or exc}") from None
        parse = parse_json if file.suffix.lower() == ".json" else parse_yaml
        docs.extend(parse(text, str(file)))
    return docs


def read(names: Sequence[str] | Iterable[str], *, recursive: bool = False,
         stdin: TextIO | None = None) -> list[Document]:
    """Every document of every `-f` argument, in order."""
    docs: list[Document] = []
    for name in names:
        docs.extend(read_source(name, recursive=recursive, stdin=stdin))
    return docs
