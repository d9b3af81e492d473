"""Timestamps as Kubernetes writes them: RFC 3339 in UTC, to the second or the microsecond.

One formatter for every component (the API server's creationTimestamp, the agent's pod
status, the scheduler's conditions) and one parser for reading them back. Pure: `api/`
imports no component.
"""

from __future__ import annotations

from datetime import datetime, timezone

SECONDS = "%Y-%m-%dT%H:%M:%SZ"            # 2026-11-22T10:00:00Z: metadata and status times
MICROSECONDS = "%Y-%m-%dT%H:%M:%S.%fZ"    # 2026-11-22T10:00:00.123456Z: Lease and Event times


def rfc3339(moment: datetime | float | None = None, *, micro: bool = False) -> str:
    """`moment` (a datetime, a time.time() value, or None for now) in UTC."""
    if moment is None:
        when = datetime.now(timezone.utc)
    elif isinstance(moment, datetime):
        when = moment.astimezone(timezone.utc)
    else:
        when = datetime.fromtimestamp(moment, timezone.utc)
    return when.strftime(MICROSECONDS if micro else SECONDS)


def parse_rfc3339(text: str | None) -> float | None:
    """Seconds since the epoch of an RFC 3339 UTC time (fractions dropped), or None for none."""
    if not text:
        return None
    return datetime.strptime(text.rstrip("Z")[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
