"""The lists the REST API keeps while a client pages through them (controlplane/rest/resources.py
ListSnapshots): gone after their TTL, and bounded in lists and in objects held."""

from __future__ import annotations

import pytest

from api.errors import ValidationFailed
from controlplane.rest.resources import ListSnapshots, _continue_token


def test_kept_lists_expire_and_stay_within_their_bounds() -> None:
    now = [0.0]
    kept = ListSnapshots(clock=lambda: now[0])
    kept.ITEMS = 10
    kept.put(("pods", "a"), [b"{}"] * 6)
    kept.put(("pods", "b"), [b"{}"] * 6)           # over the object bound: the oldest list goes
    assert kept.get(("pods", "a")) is None and kept.get(("pods", "b")) == [b"{}"] * 6 and kept.items == 6
    now[0] = kept.TTL + 1
    assert kept.get(("pods", "b")) is None and kept.items == 0
    kept.put(("pods", "c"), [b"{}"] * 11)          # bigger than the bound: not kept at all
    assert kept.get(("pods", "c")) is None
    kept.ITEMS = 1000
    for i in range(kept.SIZE + 3):
        kept.put(("pods", str(i)), [b"{}"])
    assert len(kept.lists) == kept.SIZE


def test_continue_tokens() -> None:
    assert _continue_token("") == (0, 0)
    with pytest.raises(ValidationFailed, match="continue"):
        _continue_token("not-a-token")
    with pytest.raises(ValidationFailed, match="continue"):
        _continue_token("eyJzdGFydCI6IC0xfQ==")   # {"start": -1}
