"""A pod's STATUS, READY and RESTARTS cells, computed as kubectl's printPod does."""

from datetime import datetime, timezone

import pytest

from api.printing.podstatus import pod_ready, pod_restarts, pod_status

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def pod(*, phase="Running", containers=None, init=None, init_specs=0, conditions=None, deleting=False,
        reason=None, n_specs=None):
    status = {"phase": phase}
    if containers is not None:
        status["containerStatuses"] = containers
    if init is not None:
        status["initContainerStatuses"] = init
    if conditions is not None:
        status["conditions"] = [{"type": t, "status": s} for t, s in conditions.items()]
    if reason:
        status["reason"] = reason
    n = n_specs if n_specs is not None else len(containers or []) or 1
    spec = {"containers": [{"name": f"c{i}", "image": "x"} for i in range(n)]}
    if init_specs:
        spec["initContainers"] = [{"name": f"i{i}", "image": "x"} for i in range(init_specs)]
    meta = {"name": "p"}
    if deleting:
        meta["deletionTimestamp"] = "2024-05-01T11:59:00Z"
    return {"metadata": meta, "spec": spec, "status": status}


def running(ready=True, restarts=0, last_finished=None):
    c = {"name": "c", "ready": ready, "restartCount": restarts, "state": {"running": {"startedAt": "x"}}}
    if last_finished:
        c["lastState"] = {"terminated": {"exitCode": 1, "finishedAt": last_finished}}
    return c


def waiting(reason):
    return {"name": "c", "ready": False, "restartCount": 0, "state": {"waiting": {"reason": reason}}}


def terminated(code=0, reason=None, signal=None):
    term = {"exitCode": code}
    if reason:
        term["reason"] = reason
    if signal:
        term["signal"] = signal
    return {"name": "c", "ready": False, "restartCount": 0, "state": {"terminated": term}}


@pytest.mark.parametrize("p, status", [
    (pod(phase="Pending"), "Pending"),
    ({"metadata": {"name": "p"}, "spec": {"containers": [{}]}}, "Pending"),
    (pod(containers=[running()]), "Running"),
    (pod(phase="Pending", containers=[waiting("ContainerCreating")]), "ContainerCreating"),
    (pod(containers=[waiting("CrashLoopBackOff")]), "CrashLoopBackOff"),
    (pod(phase="Succeeded", containers=[terminated(0, "Completed")]), "Completed"),
    (pod(phase="Failed", containers=[terminated(1, "Error")]), "Error"),
    (pod(phase="Failed", containers=[terminated(137, "OOMKilled")]), "OOMKilled"),
    (pod(phase="Failed", containers=[terminated(2)]), "ExitCode:2"),
    (pod(phase="Failed", containers=[terminated(0, signal=9)]), "Signal:9"),
    # The last container's state decides; Completed turns back into Running while another runs.
    (pod(containers=[running(), terminated(0, "Completed")], conditions={"Ready": "True"}), "Running"),
    (pod(containers=[running(), terminated(0, "Completed")], conditions={"Ready": "False"}), "NotReady"),
    (pod(phase="Failed", reason="Evicted"), "Evicted"),
    # init containers
    (pod(phase="Pending", init=[{"name": "i0", "state": {"running": {}}}], init_specs=2), "Init:0/2"),
    (pod(phase="Pending", init=[{"name": "i0", "state": {"terminated": {"exitCode": 0}}},
                                {"name": "i1", "state": {"running": {}}}], init_specs=2), "Init:1/2"),
    (pod(phase="Pending", init=[{"name": "i0", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}],
         init_specs=1), "Init:CrashLoopBackOff"),
    (pod(phase="Pending", init=[{"name": "i0", "state": {"waiting": {"reason": "PodInitializing"}}}],
         init_specs=1), "Init:0/1"),
    (pod(phase="Failed", init=[{"name": "i0", "state": {"terminated": {"exitCode": 3, "reason": "Error"}}}],
         init_specs=1), "Init:Error"),
    (pod(phase="Failed", init=[{"name": "i0", "state": {"terminated": {"exitCode": 3}}}], init_specs=1),
     "Init:ExitCode:3"),
    (pod(phase="Pending", init=[{"name": "i0", "state": {"terminated": {"exitCode": 0}}}], init_specs=1,
         containers=[waiting("PodInitializing")]), "PodInitializing"),
    # deletion
    (pod(containers=[running()], deleting=True), "Terminating"),
    (pod(phase="Succeeded", containers=[terminated(0, "Completed")], deleting=True), "Completed"),
    (pod(containers=[running()], deleting=True, reason="NodeLost"), "Unknown"),
])
def test_pod_status(p, status):
    assert pod_status(p) == status


def test_ready_counts_ready_running_containers_over_spec():
    assert pod_ready(pod(containers=[running(), running(ready=False)])) == "1/2"
    assert pod_ready(pod(phase="Pending", n_specs=3)) == "0/3"
    assert pod_ready(pod(containers=[running(), terminated(0, "Completed")])) == "1/2"


def test_restarts_sum_and_last_restart_age():
    p = pod(containers=[running(restarts=2, last_finished="2024-05-01T11:55:00Z"), running(restarts=3)])
    assert pod_restarts(p, NOW) == "5 (5m ago)"
    assert pod_restarts(pod(containers=[running(restarts=1)]), NOW) == "1"
    assert pod_restarts(pod(phase="Pending"), NOW) == "0"
