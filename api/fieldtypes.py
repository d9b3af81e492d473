"""Field types shared by several kinds: int-or-string, quantities, resource lists, names.

`IntOrString` holds a port (`8080` or `"http"`) or a rollout budget (`1` or
`"25%"`), as Kubernetes' intstr.IntOrString does; `resolve_int_or_percent`
turns a budget into a count. `Quantity` is a resource amount kept as text
(`"250m"`, `"64Mi"`) but checked with api/quantity.py when parsed, so an
object that validated always has readable quantities. The `check_*` functions
return FieldErrors for the kinds' `validate_semantics()`.
"""

from __future__ import annotations

import re
from fractions import Fraction
from functools import lru_cache
from typing import Annotated, Any, Union

from pydantic import BeforeValidator, PlainValidator, WithJsonSchema

from api.errors import FieldError, as_pydantic_error, invalid
from api.quantity import QuantityError, canonical, parse_quantity


def _int_or_string(value: Any) -> int | str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"must be an integer or a string, got {value!r}")
    return value


IntOrString = Annotated[
    Union[int, str],
    PlainValidator(_int_or_string),
    WithJsonSchema({"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True}),
]


@lru_cache(maxsize=4096)
def quantity_value(text: str) -> Fraction:
    """parse_quantity, cached: the same few quantities recur in every pod."""
    return parse_quantity(text)


def _quantity(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"must be a quantity such as '250m' or '64Mi', got {value!r}")
    try:
        if isinstance(value, str):
            value = value.strip()
            quantity_value(value)
            return str(value)
        return canonical(value)
    except QuantityError as e:
        raise ValueError(str(e)) from None


Quantity = Annotated[
    str,
    BeforeValidator(_quantity),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "number"}], "x-kubernetes-int-or-string": True}),
]


def _resource_list(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError(f"must be a map of resource names to quantities, got {value!r}")
    out, errors = {}, []
    for name, amount in value.items():
        try:
            out[str(name)] = _quantity(amount)
        except ValueError as e:
            errors.append(FieldError(f"[{name}]", str(e)))
    if errors:  # reported as resources.limits[cpu], the way Kubernetes names map entries
        raise as_pydantic_error(errors, title="ResourceList")
    return out


# Resource name -> quantity, e.g. {"cpu": "500m", "memory": "128Mi"}.
ResourceList = Annotated[
    dict[str, str],
    BeforeValidator(_resource_list),
    WithJsonSchema({"type": "object", "additionalProperties": {
        "anyOf": [{"type": "string"}, {"type": "number"}], "x-kubernetes-int-or-string": True}}),
]


# ---- int-or-percent (rollout budgets) ----

def _percent(value: str) -> int | None:
    """25 for "25%", None when value is not a percentage."""
    if value.endswith("%") and value[:-1].isdigit():
        return int(value[:-1])
    return None


def resolve_int_or_percent(value: int | str, total: int, round_up: bool) -> int:
    """A budget as a count: 3 -> 3; "25%" of 10 -> 3 (round_up) or 2 (round down).

    Kubernetes rounds maxSurge up and maxUnavailable down."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        percent = _percent(value)
        if percent is not None:
            scaled = percent * total
            return -(-scaled // 100) if round_up else scaled // 100
    raise ValueError(f"invalid value for IntOrString: {value!r}: must be an integer or a percentage like '25%'")


def int_or_percent_value(value: int | str) -> int:
    """The number in a budget, ignoring the unit ("0%" -> 0, 2 -> 2); for "both zero" checks."""
    if isinstance(value, int):
        return value
    return _percent(value) or 0


def check_int_or_percent(value: int | str | None, path: str) -> list[FieldError]:
    """A non-negative integer, or a percentage; at most 100%."""
    if value is None:
        return []
    if isinstance(value, int):
        return [invalid(path, value, "must be greater than or equal to 0")] if value < 0 else []
    percent = _percent(value)
    if percent is None:
        return [invalid(path, value, "a valid percent string must be a numeric string followed by an ending "
                                     "'%' (e.g. '1%', or '93%')")]
    if percent > 100:
        return [invalid(path, value, "must not be greater than 100%")]
    return []


# ---- ports and names ----

_SVC_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


def check_port_number(port: int, path: str) -> list[FieldError]:
    if not 1 <= port <= 65535:
        return [invalid(path, port, "must be between 1 and 65535, inclusive")]
    return []


def check_port_name(name: str, path: str) -> list[FieldError]:
    """An IANA service name: at most 15 characters, lowercase letters, digits and '-',
    at least one letter, no '--', no '-' at either end."""
    if (len(name) > 15 or not _SVC_NAME_RE.match(name) or "--" in name
            or not any(c.isalpha() for c in name)):
        return [invalid(path, name, "must be an IANA_SVC_NAME: at most 15 lowercase letters, digits or '-', "
                                    "containing a letter, not starting, ending or doubling '-' (e.g. 'http')")]
    return []


def check_port_ref(port: int | str, path: str) -> list[FieldError]:
    """A port given as a number or as the name of a container port."""
    return check_port_number(port, path) if isinstance(port, int) else check_port_name(port, path)
