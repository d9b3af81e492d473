"""Resource quantities: `250m`, `2`, `64Mi`, `1G`, `1.5Gi`, `1e3`.

Kubernetes writes amounts of cpu and memory as decimal numbers with an optional
suffix: decimal SI (`k`, `M`, `G`, `T`, `P`, `E`, and `m` for milli), binary
(`Ki`, `Mi`, `Gi`, `Ti`, `Pi`, `Ei`) or a decimal exponent (`e3`). This module
parses them exactly (Fraction, no float rounding) and converts to the units
components compute with: millicores for cpu and bytes for memory.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

_SUFFIXES: dict[str, Fraction] = {
    "": Fraction(1),
    "m": Fraction(1, 1000),
    "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9),
    "T": Fraction(10**12), "P": Fraction(10**15), "E": Fraction(10**18),
    "Ki": Fraction(2**10), "Mi": Fraction(2**20), "Gi": Fraction(2**30),
    "Ti": Fraction(2**40), "Pi": Fraction(2**50), "Ei": Fraction(2**60),
}
_RE = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)|[eE]([+-]?\d+))?$")


class QuantityError(ValueError):
    pass


def parse_quantity(value: str | int | float) -> Fraction:
    """The exact value of a quantity: parse_quantity("250m") == Fraction(1, 4)."""
    if isinstance(value, bool):
        raise QuantityError(f"quantities must match the regular expression "
                            f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$', got {value!r}")
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise QuantityError(f"invalid quantity {value!r}")
        return Fraction(value)
    text = str(value).strip()
    match = _RE.match(text)
    if not match:
        raise QuantityError(f"quantities must match the regular expression "
                            f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$', got {value!r}")
    number, suffix, exponent = match.groups()
    amount = Fraction(number)
    if exponent is not None:
        return amount * Fraction(10) ** int(exponent)
    return amount * _SUFFIXES[suffix or ""]


def cpu_millis(value: str | int | float) -> int:
    """CPU in millicores, rounded up as Kubernetes does ("0.1" -> 100, "1" -> 1000)."""
    return math.ceil(parse_quantity(value) * 1000)


def memory_bytes(value: str | int | float) -> int:
    """A quantity in whole units (bytes for memory, a count for pods), rounded up."""
    return math.ceil(parse_quantity(value))


def format_cpu(millis: int) -> str:
    return f"{millis // 1000}" if millis % 1000 == 0 else f"{millis}m"


def format_bytes(n: int) -> str:
    """Binary-suffixed form used by `ctl describe` and `ctl top` ("64Mi")."""
    for suffix, size in (("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if n and n % size == 0:
            return f"{n // size}{suffix}"
    return str(n)


def canonical(value: str | int | float) -> str:
    """Validate a quantity and return it as text (how it is stored)."""
    parse_quantity(value)
    return str(value).strip() if isinstance(value, str) else str(value)
