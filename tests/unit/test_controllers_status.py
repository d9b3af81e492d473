"""Status of ReplicaSets and Deployments, and the rollout status lines of `ctl rollout status`."""

from __future__ import annotations

import pytest

from cli.commands.rollout import pick_revision, status_message
from cli.errors import CliError
from controlplane.controllers import deploymentstatus as ds
from controlplane.controllers.garbagecollector import blocks, owner_uids
from controlplane.controllers.replicaset import replicaset_status, status_changed

NOW = 1_700_000_000.0


def ready_pod(since: float, labels=None):
    stamp = ds.rfc3339(since)
    return {"metadata": {"labels": labels or {"app": "web"}},
            "status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": stamp}]}}


def test_replicaset_status_counts_ready_available_and_fully_labeled():
    rs = {"metadata": {"generation": 4},
          "spec": {"minReadySeconds": 10, "template": {"metadata": {"labels": {"app": "web", "tier": "fe"}}}}}
    pods = [ready_pod(NOW - 60, {"app": "web", "tier": "fe"}), ready_pod(NOW - 2), {"metadata": {}, "status": {}}]
    status = replicaset_status(rs, pods, now=NOW)
    assert status == {"replicas": 3, "fullyLabeledReplicas": 1, "readyReplicas": 2, "availableReplicas": 1,
                      "observedGeneration": 4}
    failed = replicaset_status(rs, pods, now=NOW, create_error="quota")
    assert failed["conditions"][0]["type"] == "ReplicaFailure" and failed["conditions"][0]["message"] == "quota"
    assert not status_changed({**status, "conditions": None}, status)
    assert status_changed(status, failed)


def deployment(replicas=3, generation=2, status=None):
    return {"metadata": {"name": "web", "generation": generation}, "spec": {"replicas": replicas},
            "status": status or {}}


def test_deployment_status_and_available_condition():
    d = deployment()
    status = ds.calculate_status(d, new_rs=ds.RSCounts(2, 2, 2), all_rs=[ds.RSCounts(2, 2, 2), ds.RSCounts(1, 1, 1)],
                                 spec_total=3, max_unavailable=1, now=NOW)
    assert {k: v for k, v in status.items() if k != "conditions"} == {
        "observedGeneration": 2, "replicas": 3, "updatedReplicas": 2, "readyReplicas": 3, "availableReplicas": 3,
        "unavailableReplicas": 0}
    assert ds.get_condition(status, "Available")["reason"] == ds.MIN_AVAILABLE
    low = ds.calculate_status(d, new_rs=None, all_rs=[ds.RSCounts(3, 1, 1)], spec_total=3, max_unavailable=1, now=NOW)
    assert ds.get_condition(low, "Available")["status"] == "False"
    assert low["unavailableReplicas"] == 2


def test_progressing_condition_through_a_rollout():
    d = deployment(status={"replicas": 3, "updatedReplicas": 1, "availableReplicas": 2})
    moving = {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2}
    requeue = ds.rollout_progress(d, moving, new_rs_name="web-1", now=NOW)
    progressing = ds.get_condition(moving, "Progressing")
    assert progressing["reason"] == ds.RS_UPDATED and progressing["message"] == 'ReplicaSet "web-1" is progressing.'
    assert requeue == pytest.approx(600)
    done = {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3,
            "conditions": moving["conditions"]}
    assert ds.rollout_progress(d, done, new_rs_name="web-1", now=NOW + 5) is None
    assert ds.get_condition(done, "Progressing")["reason"] == ds.NEW_RS_AVAILABLE
    # Stuck for longer than progressDeadlineSeconds: ProgressDeadlineExceeded.
    stuck_d = deployment(status=moving)
    stuck = dict(moving, conditions=[dict(c) for c in moving["conditions"]])
    assert ds.rollout_progress(stuck_d, stuck, new_rs_name="web-1", now=NOW + 601) is None
    timed_out = ds.get_condition(stuck, "Progressing")
    assert (timed_out["status"], timed_out["reason"]) == ("False", ds.TIMED_OUT)


def test_set_condition_keeps_times_when_nothing_changes():
    status: dict = {}
    ds.set_condition(status, type_="Available", value="True", reason="A", message="m", now=NOW)
    ds.set_condition(status, type_="Available", value="True", reason="A", message="m", now=NOW + 100)
    assert status["conditions"][0]["lastUpdateTime"] == ds.rfc3339(NOW)
    ds.set_condition(status, type_="Available", value="True", reason="B", message="m", now=NOW + 100)
    c = status["conditions"][0]
    assert c["lastTransitionTime"] == ds.rfc3339(NOW) and c["lastUpdateTime"] == ds.rfc3339(NOW + 100)


@pytest.mark.parametrize("spec_replicas, generation, status, line, done", [
    (3, 2, {"observedGeneration": 1}, "Waiting for deployment spec update to be observed...", False),
    (3, 2, {"observedGeneration": 2, "updatedReplicas": 1, "replicas": 3},
     'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated...', False),
    (3, 2, {"observedGeneration": 2, "updatedReplicas": 3, "replicas": 4},
     'Waiting for deployment "web" rollout to finish: 1 old replicas are pending termination...', False),
    (3, 2, {"observedGeneration": 2, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 1},
     'Waiting for deployment "web" rollout to finish: 1 of 3 updated replicas are available...', False),
    (3, 2, {"observedGeneration": 2, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 3},
     'deployment "web" successfully rolled out', True),
])
def test_rollout_status_lines(spec_replicas, generation, status, line, done):
    obj = {"kind": "Deployment", "metadata": {"name": "web", "generation": generation},
           "spec": {"replicas": spec_replicas}, "status": status}
    assert status_message(obj) == (line, done)


def test_rollout_status_fails_on_progress_deadline():
    obj = {"kind": "Deployment", "metadata": {"name": "web", "generation": 1}, "spec": {"replicas": 1},
           "status": {"observedGeneration": 1, "conditions": [{"type": "Progressing", "status": "False",
                                                               "reason": "ProgressDeadlineExceeded"}]}}
    with pytest.raises(CliError, match='deployment "web" exceeded its progress deadline'):
        status_message(obj)


def test_undo_picks_the_previous_revision_or_the_asked_one():
    def rs(rev):
        return {"metadata": {"name": f"web-{rev}", "annotations": {"deployment.kubernetes.io/revision": str(rev)}}}
    history = [rs(1), rs(3), rs(2)]
    assert pick_revision(history, 0, "web")["metadata"]["name"] == "web-2"
    assert pick_revision(history, 1, "web")["metadata"]["name"] == "web-1"
    with pytest.raises(CliError, match="unable to find specified revision 7"):
        pick_revision(history, 7, "web")
    with pytest.raises(CliError, match='no rollout history found for deployment "web"'):
        pick_revision([rs(1)], 0, "web")


def test_blocking_owner_references():
    dep = {"metadata": {"ownerReferences": [{"uid": "a", "blockOwnerDeletion": True}, {"uid": "b"}]}}
    assert owner_uids(dep) == ["a", "b"]
    assert blocks(dep, "a") and not blocks(dep, "b") and not blocks(dep, "c")
