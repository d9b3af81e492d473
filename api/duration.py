"""Go-style durations (`30s`, `1m30s`, `24h`), as kubectl and kubeadm flags take them."""

from __future__ import annotations

import re

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(text: str) -> float:
    """A Go-style duration (`0`, `30s`, `1m30s`, `1.5h`, `500ms`) in seconds; ValueError if malformed."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)  # a bare number means seconds
    pos, total = 0, 0.0
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * scale[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {text!r}; use e.g. 30s, 2m or 1h30m")
    return total
