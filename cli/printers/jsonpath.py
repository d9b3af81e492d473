"""`-o jsonpath=TEMPLATE` and `-o custom-columns=SPEC`: pick fields out of objects.

The subset of kubectl's JSONPath that scripts use:

    {.metadata.name}                       a field
    {.spec.containers[0].image}            a list element; [*] takes every one
    {.items[*].metadata.name}              fields of every item, space separated
    {range .items[*]}{.metadata.name}{"\\n"}{end}   a loop; {"..."} is literal text
    {.metadata.labels.app\\.kubernetes\\.io/name}    dots inside a key escaped

Text outside braces is printed as is. Values that are objects or lists print
as JSON. custom-columns is `HEADER:PATH,HEADER:PATH` with the same paths (braces
optional), printed as a table; a path with no value prints `<none>`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from cli.errors import CliError
from cli.printers.tabwriter import align

_SEGMENT = re.compile(r"\.((?:\\.|[^.\[\]\\])+)|\[(\*|-?\d+)\]|\[['\"]([^'\"]+)['\"]\]")


def _segments(path: str) -> list[str | int]:
    """`.spec.containers[0].image` -> ["spec", "containers", 0, "image"]; "*" for [*]."""
    path = path.strip()
    if path.startswith("$"):
        path = path[1:]
    if path in ("", "."):
        return []
    out: list[str | int] = []
    pos = 0
    for match in _SEGMENT.finditer(path):
        if match.start() != pos:
            break
        name, index, quoted = match.groups()
        if name is not None:
            out.append(name.replace("\\.", "."))
        elif quoted is not None:
            out.append(quoted)
        else:
            out.append("*" if index == "*" else int(index))
        pos = match.end()
    if pos != len(path):
        raise CliError(f"error parsing jsonpath {path!r}: unrecognized expression at {path[pos:]!r}")
    return out


def evaluate(path: str, obj: Any) -> list[Any]:
    """Every value the path reaches from obj (empty when it reaches none)."""
    values = [obj]
    for seg in _segments(path):
        nxt: list[Any] = []
        for value in values:
            if seg == "*":
                if isinstance(value, list):
                    nxt.extend(value)
                elif isinstance(value, dict):
                    nxt.extend(value.values())
            elif isinstance(seg, int):
                if isinstance(value, list) and -len(value) <= seg < len(value):
                    nxt.append(value[seg])
            elif isinstance(value, dict) and seg in value:
                nxt.append(value[seg])
        values = nxt
    return values


def _text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _tokens(template: str) -> list[tuple[str, str]]:
    """("text", ...) and ("expr", ...) pieces of a template."""
    out, pos = [], 0
    for match in re.finditer(r"\{((?:\"(?:\\.|[^\"\\])*\"|[^{}])*)\}", template):
        if match.start() > pos:
            out.append(("text", template[pos:match.start()]))
        out.append(("expr", match.group(1).strip()))
        pos = match.end()
    if "{" in template[pos:] or "}" in template[pos:]:
        raise CliError(f"error parsing jsonpath {template!r}: unclosed or stray brace")
    if pos < len(template):
        out.append(("text", template[pos:]))
    return out


def render(template: str, obj: Any) -> str:
    """Fill a jsonpath template from obj (kubectl's -o jsonpath)."""
    tokens = _tokens(template)

    def run(start: int, current: Any, out: list[str]) -> int:
        """Render tokens from start until a matching {end}; the index after it."""
        i = start
        while i < len(tokens):
            kind, text = tokens[i]
            if kind == "text":
                out.append(text)
            elif text == "end":
                return i + 1
            elif text.startswith("range "):
                items = evaluate(text[len("range "):], current)
                after = _skip_range(i + 1)
                for item in items:
                    run(i + 1, item, out)
                i = after
                continue
            elif text.startswith('"') and text.endswith('"'):
                out.append(json.loads(text))
            else:
                out.append(" ".join(_text(v) for v in evaluate(text, current)))
            i += 1
        return i

    def _skip_range(i: int) -> int:
        depth = 1
        while i < len(tokens):
            kind, text = tokens[i]
            if kind == "expr" and text.startswith("range "):
                depth += 1
            elif kind == "expr" and text == "end":
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
        raise CliError("error parsing jsonpath: {range} without {end}")

    out: list[str] = []
    run(0, obj, out)
    return "".join(out)


def custom_columns(spec: str, objects: list[Any], *, headers: bool = True) -> str:
    """`NAME:.metadata.name,NODE:.spec.nodeName` as a table of objects."""
    return align(custom_rows(spec, objects, headers=headers))


def custom_rows(spec: str, objects: list[Any], *, headers: bool = True) -> list[list[str]]:
    """The cells of a custom-columns table, header row first (if wanted)."""
    columns = []
    for part in spec.split(","):
        header, sep, path = part.partition(":")
        if not sep or not header or not path:
            raise CliError(f'custom-columns format must be HEADER:PATH[,HEADER:PATH...], got "{part}"')
        path = path.strip()
        if path.startswith("{") and path.endswith("}"):
            path = path[1:-1]
        _segments(path)  # report a bad path before printing anything
        columns.append((header, path))
    rows = [[h for h, _p in columns]] if headers else []
    for obj in objects:
        rows.append([",".join(_text(v) for v in evaluate(p, obj)) or "<none>" for _h, p in columns])
    return rows
