"""Validation errors that name the field they are about.

Every problem with an object is a `FieldError(path, message)`, where path is a
Kubernetes-style field path such as `spec.template.spec.containers[0].image`.
`ValidationFailed` carries one or more of them; its string form is one line per
error, e.g. `spec.replicas: Invalid value: -1: must be greater than or equal to 0`.

The constructors `invalid`, `unsupported`, `duplicate`, `not_found`, `required`
and `forbidden` word messages the way Kubernetes' field.ErrorList does, so every
kind's validation reads alike. `as_pydantic_error` lets a pydantic validator
report FieldErrors at their exact nested paths.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Sequence

if TYPE_CHECKING:
    # Only as_pydantic_error needs pydantic_core (imported there): label selectors and
    # FieldErrors are used by processes that load no pydantic at all (the node agent).
    import pydantic_core


@dataclass(frozen=True)
class FieldError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ValidationFailed(ValueError):
    """An object (or selector, quantity, name...) is invalid; `errors` says where and why."""

    def __init__(self, errors: Sequence[FieldError] | FieldError, *, kind: str = "", name: str = ""):
        self.errors: list[FieldError] = [errors] if isinstance(errors, FieldError) else list(errors)
        self.kind = kind
        self.name = name
        super().__init__(str(self))

    def __str__(self) -> str:
        return "; ".join(str(e) for e in self.errors)

    def prefixed(self, prefix: str) -> "ValidationFailed":
        """The same errors with `prefix` put in front of each path (for nested validation)."""
        return ValidationFailed([FieldError(join_path(prefix, e.path), e.message) for e in self.errors],
                                kind=self.kind, name=self.name)


def join_path(prefix: str, path: str) -> str:
    if not prefix:
        return path
    if not path:
        return prefix
    return prefix + ("" if path.startswith("[") else ".") + path


def format_loc(loc: Iterable[object]) -> str:
    """Turn a pydantic error location ('spec', 'containers', 0, 'image') into
    `spec.containers[0].image`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = str(part)
            if text.startswith("["):  # a map key reported by as_pydantic_error: limits[cpu]
                out += text
                continue
            # pydantic adds the function name of wrap/after validators and the
            # union member tag to locations; those are not fields.
            if text.startswith("function-") or text.endswith("]") and "[" in text and "." not in text:
                continue
            out = join_path(out, text)
    return out


# ---- message constructors (Kubernetes' field.Invalid, field.NotSupported, ...) ----

def show(value: Any) -> str:
    """A value as Kubernetes prints it in messages: JSON (`"Always"`, `-1`, `{"app":"web"}`)."""
    try:
        return json.dumps(value, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        return repr(value)


def invalid(path: str, value: Any, message: str) -> FieldError:
    return FieldError(path, f"Invalid value: {show(value)}: {message}")


def unsupported(path: str, value: Any, supported: Iterable[str]) -> FieldError:
    return FieldError(path, f"Unsupported value: {show(value)}: supported values: "
                            + ", ".join(show(s) for s in supported))


def duplicate(path: str, value: Any) -> FieldError:
    return FieldError(path, f"Duplicate value: {show(value)}")


def not_found(path: str, value: Any) -> FieldError:
    return FieldError(path, f"Not found: {show(value)}")


def required(path: str, detail: str = "") -> FieldError:
    return FieldError(path, f"field required: {detail}" if detail else "field required")


def forbidden(path: str, message: str) -> FieldError:
    return FieldError(path, f"Forbidden: {message}")


# ---- FieldErrors inside pydantic validators ----

_LOC_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]|(\[[^\]]*\])")


def path_to_loc(path: str) -> tuple[str | int, ...]:
    """`matchExpressions[0].operator` -> ('matchExpressions', 0, 'operator');
    a map key stays subscripted: `limits[cpu]` -> ('limits', '[cpu]')."""
    return tuple(int(index) if index else name or key for name, index, key in _LOC_PART.findall(path))


def as_pydantic_error(errors: Sequence[FieldError], *, title: str = "") -> pydantic_core.ValidationError:
    """A pydantic ValidationError holding `errors` at their paths (relative to the model
    being validated). Raised from a validator, pydantic nests the locations under the
    model's own, so the final path is exact (`spec.selector.matchExpressions[0].operator`)."""
    import pydantic_core
    return pydantic_core.ValidationError.from_exception_data(title or "FieldError", [
        {"type": pydantic_core.PydanticCustomError(FIELD_ERROR_TYPE, "{message}", {"message": e.message}),
         "loc": path_to_loc(e.path), "input": None}
        for e in errors
    ])


FIELD_ERROR_TYPE = "field_error"
