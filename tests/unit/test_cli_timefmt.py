"""AGE and duration formatting: kubectl's HumanDuration, table-driven."""

from datetime import datetime, timedelta, timezone

import pytest

from api.printing.timefmt import human_duration, parse_duration, parse_time, rfc1123z, since


@pytest.mark.parametrize("seconds, text", [
    (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (5, "5s"), (119, "119s"),
    (120, "2m"), (125, "2m5s"), (9 * 60 + 59, "9m59s"), (10 * 60 + 30, "10m"), (179 * 60, "179m"),
    (3 * 3600, "3h"), (3 * 3600 + 20 * 60, "3h20m"), (8 * 3600 + 59 * 60, "8h"), (30 * 3600, "30h"),
    (48 * 3600, "2d"), (52 * 3600, "2d4h"), (8 * 86400, "8d"), (400 * 86400, "400d"),
    (2 * 365 * 86400, "2y"), (2 * 365 * 86400 + 30 * 86400, "2y30d"), (9 * 365 * 86400, "9y"),
])
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


def test_since_uses_the_given_instant():
    at = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert since("2024-05-01T11:57:00Z", at) == "3m"
    assert since((at - timedelta(days=2, hours=4)).strftime("%Y-%m-%dT%H:%M:%SZ"), at) == "2d4h"
    assert since(None, at) == "<unknown>"
    assert since("not a time", at) == "<unknown>"


def test_parse_time_accepts_fractions_and_offsets():
    assert parse_time("2024-05-01T10:00:00.123456Z").microsecond == 123456
    assert parse_time("2024-05-01T10:00:00+02:00").utcoffset() == timedelta(hours=2)


def test_rfc1123z_shape():
    text = rfc1123z("2024-05-01T10:00:00Z")
    assert text.startswith(("Wed, 01 May 2024", "Tue, 30 Apr 2024", "Thu, 02 May 2024"))
    assert text[-5] in "+-"


@pytest.mark.parametrize("text, seconds", [("0", 0), ("0s", 0), ("30s", 30), ("2m", 120), ("1h30m", 5400),
                                           ("1.5h", 5400), ("500ms", 0.5), ("45", 45)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "5x", "1m 2s", "m5"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)
