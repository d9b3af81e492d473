"""The HPA's arithmetic: Kubernetes' replica calculator, tolerance, missing and unready pods,
stabilisation windows and the default rate limits."""

from __future__ import annotations

import pytest

from controlplane.controllers.podautoscaler_rules import PodSample, rate_limit, replicas_for_metric, stabilize

CPU50 = {"type": "Utilization", "averageUtilization": 50}


def pods(*usages: int | None, request: int = 200, ready: bool = True) -> list[PodSample]:
    return [PodSample(f"p{i}", request, u, ready) for i, u in enumerate(usages)]


def test_desired_is_ceil_of_current_times_ratio():
    # 1 pod at 200m of a 200m request against 50 %: ratio 2 -> 2 pods; at 350m: 3.5 -> 4.
    assert replicas_for_metric(1, pods(200), CPU50).replicas == 2
    r = replicas_for_metric(2, pods(350, 350), CPU50)
    assert (r.replicas, r.utilization, r.average) == (7, 175, 350)


def test_within_ten_percent_nothing_changes():
    assert replicas_for_metric(3, pods(105, 105, 105), CPU50).replicas == 3     # 52.5 %: ratio 1.05
    assert replicas_for_metric(3, pods(89, 89, 89), CPU50).replicas == 3       # 44.5 %: ceil(0.89 x 3) = 3
    assert replicas_for_metric(3, pods(60, 60, 60), CPU50).replicas == 2       # 30 %: ceil(0.6 x 3) = 2


def test_missing_samples_count_against_the_change():
    # Scale down with a pod without a sample: it is assumed at 100 %, which flips the direction -> stay.
    assert replicas_for_metric(3, pods(40, 40, None), CPU50).replicas == 3
    # Scale up: the missing pod counts as 0 %; 2 at 300m + 1 at 0 of 600m -> 100 % of 50 % -> 6.
    assert replicas_for_metric(3, pods(300, 300, None), CPU50).replicas == 6


def test_unready_pods_count_as_idle_on_a_scale_up():
    both = pods(300) + pods(0, ready=False)
    both[1].name = "p1"
    assert replicas_for_metric(2, both, CPU50).replicas == 3      # 300 of 400m = 75 %: ratio 1.5 over 2 pods


def test_no_samples_at_all_is_an_error():
    with pytest.raises(ValueError):
        replicas_for_metric(2, pods(None, None), CPU50)


def test_average_value_targets():
    r = replicas_for_metric(2, pods(300, 300), {"type": "AverageValue", "averageValue": 100})
    assert r.replicas == 6


def test_scale_down_waits_for_the_window_scale_up_does_not():
    behavior = {"scaleDown": {"stabilizationWindowSeconds": 60}}
    history = [(100.0, 5), (130.0, 4)]
    assert stabilize(5, 2, history, 150.0, behavior) == 5      # 5 was recommended 50 s ago
    assert stabilize(5, 2, history, 161.0, behavior) == 4      # 5 left the window; 4 has not
    assert stabilize(5, 2, history, 191.0, behavior) == 2
    assert stabilize(2, 6, history, 150.0, behavior) == 6      # up: no window by default
    assert stabilize(5, 2, [(0.0, 5)], 200.0, None) == 5        # default down window: 300 s


def test_default_rate_limits_and_policies():
    assert rate_limit(1, 10, None) == 5                          # max(2 x 1, 1 + 4)
    assert rate_limit(10, 100, None) == 20
    assert rate_limit(10, 1, None) == 1
    assert rate_limit(10, 1, {"scaleDown": {"policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}]}}) == 8
    assert rate_limit(10, 1, {"scaleDown": {"selectPolicy": "Disabled"}}) == 10
