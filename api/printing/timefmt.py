"""Times as kubectl shows them: AGE (`5s`, `3m10s`, `2d4h`), RFC 1123 dates, --timeout values.

`human_duration` is a port of Kubernetes' `duration.HumanDuration`: the
precision falls as durations grow, so a column of ages stays short.
"""

from __future__ import annotations

from datetime import datetime, timezone


def now() -> datetime:
    return datetime.now(timezone.utc)


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 timestamp (`2024-05-01T10:00:00Z`) as an aware datetime; None if absent or bad."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def human_duration(seconds: float) -> str:
    """Kubernetes' HumanDuration: `59s`, `119s`, `2m5s`, `15m`, `3h20m`, `30h`, `2d4h`, `20d`, `2y30d`."""
    # One branch per unit, alike in shape by design (the `duplicates` tool pairs them): each
    # mirrors a line of apimachinery's HumanDuration, so the two can be read side by side.
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def since(value: object, at: datetime | None = None) -> str:
    """The age of a timestamp (`translateTimestampSince`); `<unknown>` when there is none."""
    when = parse_time(value)
    if when is None:
        return "<unknown>"
    return human_duration(((at or now()) - when).total_seconds())


def between(start: object, end: object) -> str:
    a, b = parse_time(start), parse_time(end)
    if a is None or b is None:
        return ""
    return human_duration((b - a).total_seconds())


def rfc1123z(value: object) -> str:
    """`Mon, 02 Jan 2006 15:04:05 -0700` in local time, as kubectl describe prints times."""
    when = parse_time(value)
    if when is None:
        return "<unknown>"
    return when.astimezone().strftime("%a, %d %b %Y %H:%M:%S %z")


from api.duration import parse_duration  # noqa: E402,F401 - one parser, shared with the control plane
