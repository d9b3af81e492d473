"""budget_status: Kubernetes' arithmetic of a PodDisruptionBudget (expected, desired, healthy, allowed)."""

from __future__ import annotations

import time

from api.nodelease import now_micro
from controlplane.controllers.disruption import DELETION_TIMEOUT, budget_status


def pod(name: str, ready: bool = True) -> dict:
    return {"metadata": {"name": name},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                       "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}


def pdb(**spec: object) -> dict:
    return {"metadata": {"name": "b", "generation": 3}, "spec": spec}


def test_min_available_integer_counts_the_pods():
    s = budget_status(pdb(minAvailable=2), [pod("a"), pod("b"), pod("c", ready=False)], 5, time.time())
    assert (s["expectedPods"], s["desiredHealthy"], s["currentHealthy"], s["disruptionsAllowed"]) == (3, 2, 2, 0)
    assert s["observedGeneration"] == 3 and s["conditions"][0]["reason"] == "InsufficientPods"


def test_percentages_and_max_unavailable_use_the_controllers_scale_rounding_up():
    pods = [pod(str(i)) for i in range(4)]
    s = budget_status(pdb(minAvailable="50%"), pods, 5, time.time())
    assert (s["expectedPods"], s["desiredHealthy"], s["disruptionsAllowed"]) == (5, 3, 1)
    s = budget_status(pdb(maxUnavailable="30%"), pods, 5, time.time())     # ceil(1.5) = 2 may go
    assert (s["desiredHealthy"], s["disruptionsAllowed"]) == (3, 1)
    s = budget_status(pdb(maxUnavailable=1), pods, 4, time.time())
    assert (s["desiredHealthy"], s["disruptionsAllowed"], s["conditions"][0]["status"]) == (3, 1, "True")


def test_disrupted_pods_count_as_gone_until_they_are_or_the_record_expires():
    now = time.time()
    old = pdb(minAvailable=1)
    old["status"] = {"disruptedPods": {"a": now_micro(now - 1), "gone": now_micro(now - 1),
                                       "stale": now_micro(now - DELETION_TIMEOUT - 1)}}
    s = budget_status(old, [pod("a"), pod("b"), pod("stale")], 3, now)
    assert s["disruptedPods"] == {"a": old["status"]["disruptedPods"]["a"]}
    assert (s["currentHealthy"], s["disruptionsAllowed"]) == (2, 1)
