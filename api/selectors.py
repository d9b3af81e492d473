"""Label and field selectors.

Label selector strings follow kubectl: `app=web`, `app==web`, `tier!=db`,
`env in (prod,staging)`, `env notin (dev)`, `canary` (key exists) and `!canary`
(key absent), joined by commas (all must hold). `LabelSelector` objects in
manifests (matchLabels + matchExpressions with In, NotIn, Exists,
DoesNotExist) turn into the same `Requirement` list.

Field selectors (`spec.nodeName=n1,status.phase!=Running`) support `=`, `==`
and `!=` on dotted paths into the object's JSON form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from api.errors import FieldError, ValidationFailed, unsupported

IN, NOT_IN, EXISTS, DOES_NOT_EXIST = "In", "NotIn", "Exists", "DoesNotExist"
EQUALS, NOT_EQUALS = "=", "!="
# Gt and Lt appear in node affinity terms only.
GT, LT = "Gt", "Lt"
OPERATORS = (IN, NOT_IN, EXISTS, DOES_NOT_EXIST)

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?(/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_KEY_RE = re.compile(rf"^{_KEY}$")
_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def check_label_key(key: str) -> str | None:
    """An error message when key is not a valid label key, else None."""
    if not key or len(key.split("/")[-1]) > 63 or not _KEY_RE.match(key):
        return (f"invalid label key {key!r}: name part must consist of alphanumeric characters, "
                "'-', '_' or '.', and must start and end with an alphanumeric character")
    prefix = key.split("/")[0] if "/" in key else ""
    if len(prefix) > 253:
        return f"invalid label key {key!r}: prefix must be no more than 253 characters"
    return None


def check_label_value(value: str) -> str | None:
    if len(value) > 63 or not _VALUE_RE.match(value):
        return (f"invalid label value {value!r}: must be 63 characters or less and consist of "
                "alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric character")
    return None


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == EXISTS:
            return present
        if self.operator == DOES_NOT_EXIST:
            return not present
        if self.operator in (IN, EQUALS):
            return present and labels[self.key] in self.values
        if self.operator in (NOT_IN, NOT_EQUALS):
            return not present or labels[self.key] not in self.values
        if self.operator in (GT, LT):
            if not present:
                return False
            try:
                have, want = int(labels[self.key]), int(self.values[0])
            except ValueError:
                return False
            return have > want if self.operator == GT else have < want
        raise ValueError(f"unknown operator {self.operator!r}")

    def __str__(self) -> str:
        if self.operator == EXISTS:
            return self.key
        if self.operator == DOES_NOT_EXIST:
            return f"!{self.key}"
        if self.operator in (EQUALS, NOT_EQUALS):
            return f"{self.key}{self.operator}{self.values[0]}"
        return f"{self.key} {self.operator.lower()} ({','.join(self.values)})"


@dataclass(frozen=True)
class Selector:
    """A conjunction of requirements. The empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


EVERYTHING = Selector()


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


_SET_RE = re.compile(r"^\s*(\S+)\s+(in|notin)\s*\((.*)\)\s*$")
_EQ_RE = re.compile(r"^\s*([^!=\s]+)\s*(==|=|!=)\s*(\S*)\s*$")


def parse_label_selector(text: str | None, *, path: str = "labelSelector") -> Selector:
    """Parse a kubectl-style selector string; raise ValidationFailed naming the bad part."""
    if text is None or not text.strip():
        return EVERYTHING
    requirements = []
    for raw in _split_top_level(text):
        part = raw.strip()
        if not part:
            raise ValidationFailed(FieldError(path, f"unable to parse requirement: empty requirement in {text!r}"))
        if m := _SET_RE.match(part):
            key, op, inner = m.group(1), m.group(2), m.group(3)
            values = tuple(v.strip() for v in inner.split(",")) if inner.strip() else ()
            if not values:
                raise ValidationFailed(FieldError(path, f"unable to parse requirement {part!r}: "
                                                        "for 'in' and 'notin' operators, values set can't be empty"))
            requirement = Requirement(key, IN if op == "in" else NOT_IN, values)
        elif m := _EQ_RE.match(part):
            key, op, value = m.groups()
            requirement = Requirement(key, NOT_EQUALS if op == "!=" else EQUALS, (value,))
        elif part.startswith("!"):
            requirement = Requirement(part[1:].strip(), DOES_NOT_EXIST)
        elif re.match(r"^\S+$", part) and not any(c in part for c in "()=!"):
            requirement = Requirement(part, EXISTS)
        else:
            raise ValidationFailed(FieldError(path, f"unable to parse requirement {part!r}"))
        _check_requirement(requirement, path)
        requirements.append(requirement)
    return Selector(tuple(requirements))


def _check_requirement(r: Requirement, path: str) -> None:
    if msg := check_label_key(r.key):
        raise ValidationFailed(FieldError(path, msg))
    for value in r.values:
        if r.operator in (GT, LT):
            continue
        if msg := check_label_value(value):
            raise ValidationFailed(FieldError(path, msg))


def selector_from_spec(spec: Mapping[str, Any] | None, *, path: str = "selector") -> Selector:
    """Build a Selector from a LabelSelector document ({matchLabels, matchExpressions}).

    `None` means "matches nothing" in Kubernetes for workload selectors, but the
    callers here validate presence themselves; an empty document matches everything.
    """
    if not spec:
        return EVERYTHING
    requirements: list[Requirement] = []
    for key, value in sorted((spec.get("matchLabels") or {}).items()):
        requirements.append(Requirement(key, EQUALS, (str(value),)))
    for i, expr in enumerate(spec.get("matchExpressions") or []):
        requirements.append(requirement_from_expression(expr, path=f"{path}.matchExpressions[{i}]",
                                                        operators=OPERATORS))
    return Selector(tuple(requirements))


def requirement_from_expression(expr: Mapping[str, Any], *, path: str,
                                operators: Iterable[str] = OPERATORS) -> Requirement:
    """One {key, operator, values} expression (label selectors, node affinity terms)."""
    operators = tuple(operators)
    key, op, values = expr.get("key", ""), expr.get("operator", ""), tuple(expr.get("values") or ())
    if op not in operators:
        raise ValidationFailed(unsupported(f"{path}.operator", op, operators))
    if op in (IN, NOT_IN) and not values:
        raise ValidationFailed(FieldError(f"{path}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
    if op in (EXISTS, DOES_NOT_EXIST) and values:
        raise ValidationFailed(FieldError(f"{path}.values",
                                          "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
    if op in (GT, LT):
        if len(values) != 1:
            raise ValidationFailed(FieldError(f"{path}.values", "must be specified single value when `operator` is 'Lt' or 'Gt'"))
        try:
            int(values[0])
        except ValueError:
            raise ValidationFailed(FieldError(f"{path}.values[0]", f"must be an integer for 'Gt' and 'Lt', got {values[0]!r}"))
    requirement = Requirement(key, op, values)
    try:
        _check_requirement(requirement, f"{path}.key")
    except ValidationFailed as e:
        raise e
    return requirement


# ---- field selectors -------------------------------------------------------

@dataclass(frozen=True)
class FieldRequirement:
    path: str
    operator: str  # "=" or "!="
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        have = field_value(obj, self.path)
        return (have == self.value) if self.operator == EQUALS else (have != self.value)


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(r.matches(obj) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def value_for(self, path: str) -> str | None:
        """The value an equality requirement pins `path` to (lets storage narrow a list)."""
        for r in self.requirements:
            if r.path == path and r.operator == EQUALS:
                return r.value
        return None


_FIELD_RE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_.]*)\s*(==|=|!=)\s*(.*?)\s*$")


def parse_field_selector(text: str | None, *, path: str = "fieldSelector") -> FieldSelector:
    if text is None or not text.strip():
        return FieldSelector()
    requirements = []
    for part in text.split(","):
        m = _FIELD_RE.match(part)
        if not m:
            raise ValidationFailed(FieldError(path, f"invalid selector: {part.strip()!r}; "
                                                    "expected field=value, field==value or field!=value"))
        field, op, value = m.groups()
        requirements.append(FieldRequirement(field, NOT_EQUALS if op == "!=" else EQUALS, value))
    return FieldSelector(tuple(requirements))


def field_value(obj: Mapping[str, Any], dotted: str) -> str:
    """The value at a dotted path as a string ("" when absent), as field selectors compare it."""
    current: Any = obj
    for part in dotted.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return ""
        current = current[part]
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)
