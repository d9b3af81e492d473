"""Kubernetes' ToleratesTaint, the one implementation (api/taints.py) the scheduler and api.affinity share."""

from __future__ import annotations

import pytest

from api.affinity import Toleration
from api.taints import tolerates

TAINT = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


@pytest.mark.parametrize("toleration, expected", [
    ({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}, True),
    ({"key": "dedicated", "value": "gpu"}, True),                           # any effect
    ({"key": "dedicated", "operator": "Exists"}, True),                    # any value
    ({"operator": "Exists"}, True),                                        # every taint
    ({"key": "dedicated", "value": "cpu"}, False),
    ({"key": "dedicated", "value": "gpu", "effect": "NoExecute"}, False),
    ({"key": "other", "operator": "Exists"}, False),
    ({"key": "dedicated", "operator": "Gt", "value": "gpu"}, False),       # unknown operator: nothing
])
def test_tolerates(toleration: dict, expected: bool) -> None:
    assert tolerates(toleration, TAINT) is expected


def test_the_model_agrees() -> None:
    from api.node import Taint
    taint = Taint(key="dedicated", value="gpu", effect="NoSchedule")
    assert Toleration(key="dedicated", operator="Exists").tolerates(taint)
    assert not Toleration(key="dedicated", value="cpu").tolerates(taint)
