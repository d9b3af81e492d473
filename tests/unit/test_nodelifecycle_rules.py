"""Pure rules of node lifecycle: Lease intervals, condition taints, NoExecute eviction times."""

from __future__ import annotations

import pytest

from api.nodelease import lease_duration_seconds, lease_renew_interval, now_micro, parse_time
from api.taints import (NO_EXECUTE, NO_SCHEDULE, NOT_READY, UNREACHABLE, UNSCHEDULABLE,
                                             condition_taints, daemon_tolerations, eviction_delay, eviction_time,
                                             scheduling_taints, tolerates, untolerated)


@pytest.mark.parametrize("nodes, interval", [(1, 2.0), (100, 2.0), (101, 2.02), (1000, 20.0), (5000, 100.0)])
def test_lease_interval_grows_with_cluster(nodes, interval):
    assert lease_renew_interval(nodes) == pytest.approx(interval)


def test_lease_duration_is_four_intervals():
    assert lease_duration_seconds(2.0) == 8
    assert lease_duration_seconds(100.0) == 400
    with pytest.raises(ValueError):
        lease_renew_interval(10, base=0)


def test_times_round_trip():
    stamp = now_micro(1_700_000_000.25)
    assert stamp == "2023-11-14T22:13:20.250000Z"
    assert parse_time(stamp) == pytest.approx(1_700_000_000.25)
    assert parse_time("2023-11-14T22:13:20Z") == 1_700_000_000
    assert parse_time("") is None and parse_time("yesterday") is None


TAINT = {"key": "k", "value": "v", "effect": NO_EXECUTE}


@pytest.mark.parametrize("toleration, expected", [
    ({"key": "k", "value": "v"}, True),
    ({"key": "k", "value": "other"}, False),
    ({"key": "k", "operator": "Exists"}, True),
    ({"operator": "Exists"}, True),
    ({"key": "k", "operator": "Exists", "effect": NO_SCHEDULE}, False),
    ({"key": "other", "operator": "Exists"}, False),
])
def test_tolerates(toleration, expected):
    assert tolerates(toleration, TAINT) is expected


@pytest.mark.parametrize("ready, keys", [
    ("True", []), (None, []),
    ("False", [(NOT_READY, NO_SCHEDULE), (NOT_READY, NO_EXECUTE)]),
    ("Unknown", [(UNREACHABLE, NO_SCHEDULE), (UNREACHABLE, NO_EXECUTE)]),
])
def test_condition_taints_follow_ready(ready, keys):
    other = {"key": "dedicated", "value": "db", "effect": NO_SCHEDULE}
    out = condition_taints([other], ready, now="T")
    assert out[0] == other
    assert [(t["key"], t["effect"]) for t in out[1:]] == keys
    assert all(t.get("timeAdded") == "T" for t in out[1:] if t["effect"] == NO_EXECUTE)


def test_condition_taints_keep_time_added_and_swap_pairs():
    existing = [{"key": UNREACHABLE, "effect": NO_EXECUTE, "timeAdded": "old"},
                {"key": UNREACHABLE, "effect": NO_SCHEDULE}]
    assert condition_taints(existing, "Unknown", now="new") == existing
    swapped = condition_taints(existing, "False", now="new")
    assert {(t["key"], t.get("timeAdded")) for t in swapped} == {(NOT_READY, "new"), (NOT_READY, None)}
    assert condition_taints(existing, "True", now="new") == []


UNREACHABLE_NOEXEC = {"key": UNREACHABLE, "effect": NO_EXECUTE}


@pytest.mark.parametrize("taint, tolerations, delay", [
    (UNREACHABLE_NOEXEC, [], 5.0),                               # implicit default toleration
    ({"key": "gpu", "effect": NO_EXECUTE}, [], 0.0),              # user taint, no toleration: at once
    (UNREACHABLE_NOEXEC, [{"key": UNREACHABLE, "operator": "Exists", "effect": NO_EXECUTE,
                           "tolerationSeconds": 30}], 30.0),
    (UNREACHABLE_NOEXEC, [{"key": UNREACHABLE, "operator": "Exists"}], None),   # forever
    (UNREACHABLE_NOEXEC, [{"operator": "Exists"}, {"key": UNREACHABLE, "operator": "Exists",
                                                    "tolerationSeconds": 7}], 7.0),
    (UNREACHABLE_NOEXEC, [{"key": UNREACHABLE, "operator": "Exists", "tolerationSeconds": -3}], 0.0),
])
def test_eviction_delay(taint, tolerations, delay):
    assert eviction_delay(taint, tolerations, default_seconds=5) == delay


def test_eviction_time_takes_the_earliest_taint():
    taints = [UNREACHABLE_NOEXEC, {"key": "maint", "effect": NO_EXECUTE}, {"key": "x", "effect": NO_SCHEDULE}]
    added = {(UNREACHABLE, NO_EXECUTE): 100.0, ("maint", NO_EXECUTE): 200.0}
    pod = {"spec": {"tolerations": [{"key": "maint", "operator": "Exists", "tolerationSeconds": 10}]}}
    assert eviction_time(pod, taints, default_seconds=5, added_at=added) == 105.0
    daemon = {"spec": {"tolerations": daemon_tolerations({}) + [{"key": "maint", "operator": "Exists"}]}}
    assert eviction_time(daemon, taints, default_seconds=5, added_at=added) is None


def test_scheduling_taints_and_daemon_tolerations():
    node = {"spec": {"unschedulable": True, "taints": [{"key": NOT_READY, "effect": NO_EXECUTE}]}}
    taints = scheduling_taints(node)
    assert (UNSCHEDULABLE, NO_SCHEDULE) in [(t["key"], t["effect"]) for t in taints]
    assert untolerated(taints, []) == taints
    assert untolerated(taints, daemon_tolerations({})) == []
    assert len(daemon_tolerations({"hostNetwork": True})) == 7
    assert len(daemon_tolerations({"tolerations": daemon_tolerations({})})) == 6  # idempotent
