"""What hollow nodes report: valid Node objects, pod statuses, exits per restartPolicy, CLI parsing."""

from __future__ import annotations

import pytest

from agent.hollow_cli import parse_labels, parse_taints
from agent.hollow_status import (EXIT_AFTER, EXIT_CODE, READY, ExitPlan, exit_plan, finished_status, node_ip,
                                 node_object, outcome, pod_ip, reported_running, running_status)
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


@pytest.mark.parametrize("policy, code, result", [
    ("Never", 0, "Succeeded"), ("Never", 1, "Failed"), ("OnFailure", 0, "Succeeded"),
    ("OnFailure", 2, "restart"), ("Always", 0, "restart"), (None, 1, "restart"),
])
def test_outcome(policy, code, result):
    assert outcome(policy, code) == result


def test_running_and_finished_statuses_validate():
    p = pod()
    status = running_status(p, host_ip="198.18.0.1", ip="198.19.0.1", started="T1", now="T1", restarts=1,
                            last_exit=2)
    running = {**p, "status": status}
    parse_object(running)
    assert reported_running(running, host_ip="198.18.0.1", restarts=1)
    assert not reported_running(running, host_ip="198.18.0.1", restarts=2)
    assert [c["lastTransitionTime"] for c in status["conditions"] if c["type"] == "PodScheduled"] == ["T0"]
    done = {**p, "status": finished_status(p, host_ip="198.18.0.1", ip="198.19.0.1", started="T1", now="T2",
                                           code=1)}
    parse_object(done)
    assert done["status"]["phase"] == "Failed"
    assert done["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] == "Error"


def test_unready_annotation():
    p = pod({READY: "false"})
    status = running_status(p, host_ip="h", ip="i", started="T", now="T")
    assert [c["status"] for c in status["conditions"] if c["type"] == "Ready"] == ["False"]
    assert reported_running({**p, "status": status}, host_ip="h", restarts=0)


def test_cli_parsing():
    assert parse_labels("a=1, b=") == {"a": "1", "b": ""}
    assert parse_taints("gpu=yes:NoSchedule,spot:NoExecute") == [
        {"key": "gpu", "value": "yes", "effect": "NoSchedule"}, {"key": "spot", "effect": "NoExecute"}]
    with pytest.raises(ValueError, match="--labels"):
        parse_labels("novalue")
    with pytest.raises(ValueError, match="--taints"):
        parse_taints("gpu:Sometimes")
