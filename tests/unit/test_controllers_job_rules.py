"""job_rules: counting pods, backoff and deadline failures, how many to run, Indexed bookkeeping."""

from __future__ import annotations

import pytest

from controlplane.controllers import job_rules as rules


def job(*, completions=1, parallelism=1, backoff=6, restart="Never", deadline=None, mode="NonIndexed",
        suspend=None, status=None) -> dict:
    spec = {"completions": completions, "parallelism": parallelism, "backoffLimit": backoff,
            "completionMode": mode, "template": {"spec": {"restartPolicy": restart}}}
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    if suspend is not None:
        spec["suspend"] = suspend
    return {"spec": spec, "status": status or {}}


def pod(phase: str, *, restarts=0, index=None, finished="2024-01-01T00:00:10Z", deleting=False) -> dict:
    meta: dict = {"name": "p", "annotations": {}}
    if index is not None:
        meta["annotations"][rules.INDEX_ANNOTATION] = str(index)
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    state = {"terminated": {"exitCode": 1, "finishedAt": finished}} if phase in ("Failed", "Succeeded") else \
        {"running": {}}
    return {"metadata": meta, "status": {"phase": phase, "containerStatuses": [
        {"name": "c", "restartCount": restarts, "state": state}]}}


def test_count_tallies_and_never_goes_backwards():
    j = job(status={"succeeded": 5, "failed": 0})
    counts = rules.count(j, [pod("Running"), pod("Pending"), pod("Succeeded"), pod("Failed"),
                             pod("Running", deleting=True)])
    assert len(counts.active) == 2 and counts.succeeded == 5 and counts.failed == 1
    assert counts.last_failure == pytest.approx(1704067210.0)


@pytest.mark.parametrize("j, pods, expected", [
    (job(backoff=1), [pod("Failed")], None),
    (job(backoff=1), [pod("Failed"), pod("Failed")], rules.BACKOFF_LIMIT_EXCEEDED),
    (job(backoff=0), [pod("Failed")], rules.BACKOFF_LIMIT_EXCEEDED),
    (job(backoff=2, restart="OnFailure"), [pod("Running", restarts=1)], None),
    (job(backoff=2, restart="OnFailure"), [pod("Running", restarts=2)], rules.BACKOFF_LIMIT_EXCEEDED),
    (job(backoff=0, restart="OnFailure"), [pod("Running")], None),
    (job(backoff=0, restart="OnFailure"), [pod("Running", restarts=1)], rules.BACKOFF_LIMIT_EXCEEDED),
    (job(deadline=10), [pod("Running")], None),
    (job(deadline=5), [pod("Running")], rules.DEADLINE_EXCEEDED),
])
def test_failure(j, pods, expected):
    assert rules.failure(j, rules.count(j, pods), now=108.0, start=100.0) == expected


@pytest.mark.parametrize("j, pods, complete, want", [
    (job(completions=3, parallelism=2), [], False, 2),
    (job(completions=3, parallelism=2), [pod("Succeeded"), pod("Succeeded")], False, 1),
    (job(completions=3, parallelism=2), [pod("Succeeded")] * 3, True, 0),
    (job(completions=None, parallelism=3), [], False, 3),
    (job(completions=None, parallelism=3), [pod("Succeeded"), pod("Running")], False, 0),
    (job(completions=None, parallelism=3), [pod("Succeeded")], True, 0),
    (job(completions=5, parallelism=2, suspend=True), [], False, 0),
])
def test_completion_and_wanted_active(j, pods, complete, want):
    counts = rules.count(j, pods)
    assert rules.is_complete(j, counts) is complete
    assert rules.wanted_active(j, counts) == want


@pytest.mark.parametrize("failed, delay", [(0, 0.0), (1, 1.0), (2, 2.0), (3, 4.0), (10, 60.0)])
def test_backoff_delay(failed, delay):
    assert rules.backoff_delay(failed, base=1.0, maximum=60.0) == delay


def test_indexed_bookkeeping():
    j = job(completions=5, parallelism=5, mode="Indexed", status={"completedIndexes": "0"})
    counts = rules.count(j, [pod("Succeeded", index=1), pod("Running", index=2)])
    assert counts.succeeded_indexes == {0, 1} and counts.succeeded == 2
    assert rules.next_indexes(j, counts, 5) == [3, 4]
    assert rules.format_indexes({1, 3, 4, 5, 9}) == "1,3-5,9"
    assert rules.parse_indexes("1,3-5,9") == {1, 3, 4, 5, 9}
    assert rules.format_indexes(set()) == ""
