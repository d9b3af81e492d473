"""`fieldValidation` on create, update and server-side apply, as Kubernetes serves it.

kubectl sends `?fieldValidation=Strict` (its default `--validate=strict`), `Warn`
(`--validate=warn`) or `Ignore` (`--validate=false`). The models refuse a field they do
not know (api/registry.py: "unknown field"); so with Warn or Ignore, a write refused only
for unknown fields is tried again without them, and Warn answers each one in a `Warning`
header (`299 - "unknown field \\"spec.foo\\""`), which kubectl prints as
`Warning: unknown field "spec.foo"`. Strict — and no parameter, Skiff's choice (Kubernetes'
default is Warn) — refuses them with a 422 naming the fields.
"""

from __future__ import annotations

import re
from typing import Any, Awaitable, Callable, TypeVar

from api.errors import FieldError, ValidationFailed

MODES = ("Strict", "Warn", "Ignore")
UNKNOWN = "unknown field"
_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
T = TypeVar("T")


def mode(query: Any) -> str:
    value = query.get("fieldValidation", "") or "Strict"
    if value not in MODES:
        raise ValidationFailed(FieldError("fieldValidation", f'Unsupported value: "{value}": supported values: '
                                                             f'"Ignore", "Strict", "Warn"'))
    return value


def _drop(obj: Any, path: str) -> bool:
    """Remove the field at `path` (`spec.containers[0].foo`) from `obj`; False when it is not there."""
    parts = [int(index) if index else name for name, index in _PART.findall(path)]
    for part in parts[:-1]:
        try:
            obj = obj[part]
        except (KeyError, IndexError, TypeError):
            return False
    if isinstance(obj, dict) and parts and parts[-1] in obj:
        del obj[parts[-1]]
        return True
    return False


async def tolerant(how: str, body: dict[str, Any], write: Callable[[dict[str, Any]], Awaitable[T]]
                   ) -> tuple[T, list[str]]:
    """`write(body)`, and with Warn or Ignore again without the unknown fields it was refused for;
    the warnings Warn gives."""
    warnings: list[str] = []
    while True:
        try:
            return await write(body), warnings
        except ValidationFailed as exc:
            unknown = [e.path for e in exc.errors if e.message == UNKNOWN]
            if how == "Strict" or not unknown or len(unknown) != len(exc.errors) \
                    or not all([_drop(body, path) for path in unknown]):
                raise
            if how == "Warn":
                warnings += [f'unknown field "{path}"' for path in unknown]


def warning_headers(warnings: list[str]) -> list[tuple[str, str]]:
    return [("Warning", '299 - "' + w.replace("\\", "\\\\").replace('"', '\\"') + '"') for w in warnings]
