"""The arithmetic of rolling updates (controlplane/controllers/rollingupdate.py), table-driven."""

from __future__ import annotations

import pytest

from controlplane.controllers.rollingupdate import (RSState, budgets, new_replicas, proportional_scale,
                                                    resolve_fenceposts, scale_down_old)


@pytest.mark.parametrize("surge, unavailable, desired, expected", [
    ("25%", "25%", 4, (1, 1)),
    ("25%", "25%", 10, (3, 2)),      # surge rounds up, unavailable rounds down
    (1, 0, 3, (1, 0)),
    (0, "1%", 3, (0, 1)),            # both would be 0: unavailable becomes 1
    ("0%", "0%", 5, (0, 1)),
    (2, 3, 4, (2, 3)),
])
def test_resolve_fenceposts(surge, unavailable, desired, expected):
    assert resolve_fenceposts(surge, unavailable, desired) == expected


@pytest.mark.parametrize("strategy, desired, expected", [
    ({"type": "Recreate"}, 3, (0, 0)),
    ({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}, 4, (1, 1)),
    ({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 5}}, 2, (0, 2)),  # capped
    ({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}, 0, (1, 0)),
    ({}, 4, (1, 1)),                 # defaults: 25% / 25%
])
def test_budgets(strategy, desired, expected):
    assert budgets(strategy, desired) == expected


@pytest.mark.parametrize("old, new, desired, surge, expected", [
    (4, 0, 4, 1, 1),      # one extra pod allowed
    (3, 1, 4, 1, 2),
    (4, 1, 4, 1, 1),      # at replicas + maxSurge: wait
    (0, 0, 4, 1, 4),      # nothing old: all at once
    (2, 3, 4, 0, 3),      # no surge: wait for the old ones to go
    (1, 3, 4, 2, 4),      # never above replicas
])
def test_new_replicas(old, new, desired, surge, expected):
    new_rs = RSState("new", new)
    assert new_replicas(desired=desired, max_surge=surge, all_rs=[RSState("old", old), new_rs], new_rs=new_rs) == expected


def test_scale_down_waits_while_the_new_pods_are_not_available():
    # 4 old available + 1 new not yet ready; min available 3: one old may go (4 + 0 - 3)...
    assert scale_down_old(desired=4, max_unavailable=1, new_rs=RSState("new", 1, 0),
                          old_rs=[RSState("old", 4, 4)]) == {"old": 3}
    # ...but after that, nothing until the new pod is available.
    assert scale_down_old(desired=4, max_unavailable=1, new_rs=RSState("new", 1, 0),
                          old_rs=[RSState("old", 3, 3)]) == {}
    assert scale_down_old(desired=4, max_unavailable=1, new_rs=RSState("new", 2, 1),
                          old_rs=[RSState("old", 3, 3)]) == {"old": 2}


def test_scale_down_removes_unavailable_old_pods_first_and_oldest_first():
    plan = scale_down_old(desired=4, max_unavailable=1, new_rs=RSState("new", 1, 1),
                          old_rs=[RSState("older", 2, 1, created=1), RSState("old", 2, 2, created=2)])
    # max scaled down: 5 - 3 - 0 = 2; "older"'s unavailable pod goes; then available 1 + 2 + 1 = 4 > 3: one more.
    assert plan == {"older": 0}
    assert scale_down_old(desired=2, max_unavailable=0, new_rs=RSState("new", 2, 2),
                          old_rs=[RSState("old", 0, 0)]) == {}


def test_scale_down_never_counts_more_available_than_replicas():
    # A ReplicaSet just scaled to 2 still reports 2 available (its 3rd pod is going away).
    assert scale_down_old(desired=4, max_unavailable=1, new_rs=RSState("new", 2, 1),
                          old_rs=[RSState("old", 2, 2)]) == {}


@pytest.mark.parametrize("desired, active, expected", [
    (6, [RSState("a", 3, created=1, max_replicas=5), RSState("b", 2, created=2, max_replicas=5)], {"a": 4, "b": 3}),
    (2, [RSState("a", 3, created=1, max_replicas=5), RSState("b", 2, created=2, max_replicas=5)], {"a": 2, "b": 1}),
    (0, [RSState("a", 3, created=1), RSState("b", 2, created=2)], {"a": 0, "b": 0}),
    (4, [RSState("a", 4, max_replicas=5)], {"a": 5}),
])
def test_proportional_scale_keeps_shares_and_sums_to_the_budget(desired, active, expected):
    sizes = proportional_scale(desired=desired, max_surge=1, status_replicas=5, active=active)
    assert sizes == expected
    assert sum(sizes.values()) == (desired + 1 if desired else 0)
