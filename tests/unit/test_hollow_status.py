"""What hollow nodes are: valid Node objects, the annotations their pods obey, CLI parsing.

Their pod statuses are PodSyncer's (tests/unit/test_podsync.py; tests/integration/test_hollow_nodes.py)."""

from __future__ import annotations

import pytest

from agent.hollow_cli import parse_labels, parse_taints
from agent.hollow_status import (EXIT_AFTER, EXIT_CODE, READY, ExitPlan, exit_plan, node_ip, node_object, pod_ip,
                                 wants_ready)
from api.registry import parse_object


def pod(annotations=None, restart="Always") -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "uid": "u1", "annotations": annotations or {}},
            "spec": {"restartPolicy": restart, "nodeName": "h-0", "containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True",
                                                          "lastTransitionTime": "T0"}]}}


def test_node_object_is_a_valid_node_and_says_it_is_simulated():
    obj = node_object("h-0", ip=node_ip(0), cpu="4", memory="16Gi", pods=110, labels={"zone": "a"},
                      taints=[{"key": "k", "effect": "NoSchedule"}], now="2024-01-01T00:00:00Z")
    node = parse_object(obj)
    assert node.status.node_info.container_runtime_version == "hollow://0.1"
    assert obj["metadata"]["labels"]["skiff.io/hollow"] == "true"
    assert node.status.condition("Ready").status == "True"
    assert node.spec.taints[0].key == "k"


def test_addresses_come_from_the_benchmark_range():
    assert node_ip(0) == "198.18.0.1" and node_ip(300) == "198.18.1.45"
    assert pod_ip(0) == "198.19.0.1"


@pytest.mark.parametrize("annotations, plan", [
    ({}, None),
    ({EXIT_AFTER: "2"}, ExitPlan(2.0, 0)),
    ({EXIT_AFTER: "0.5", EXIT_CODE: "3"}, ExitPlan(0.5, 3)),
    ({EXIT_AFTER: "soon"}, None),
])
def test_exit_plan(annotations, plan):
    assert exit_plan(pod(annotations)) == plan


def test_unready_annotation():
    assert not wants_ready(pod({READY: "false"}))
    assert wants_ready(pod())


def test_cli_parsing():
    assert parse_labels("a=1, b=") == {"a": "1", "b": ""}
    assert parse_taints("gpu=yes:NoSchedule,spot:NoExecute") == [
        {"key": "gpu", "value": "yes", "effect": "NoSchedule"}, {"key": "spot", "effect": "NoExecute"}]
    with pytest.raises(ValueError, match="--labels"):
        parse_labels("novalue")
    with pytest.raises(ValueError, match="--taints"):
        parse_taints("gpu:Sometimes")
