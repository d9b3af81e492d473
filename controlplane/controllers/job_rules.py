"""The Job controller's rules on a snapshot of a Job and its pods: pure functions, no I/O.

job.py reads the caches and acts; the decisions are here, where a table of
cases can test them:

- `count`: active, ready, succeeded and failed pods, restarts of OnFailure pods;
- `failure`: whether the Job has failed — backoffLimit exceeded (Never:
  failed pods > backoffLimit; OnFailure: container restarts >= backoffLimit, as
  Kubernetes counts them) or activeDeadlineSeconds passed;
- `wanted_active`: how many pods should run now (parallelism, completions
  left; with completions unset — a work queue — none after the first success);
- `backoff_delay`: how long to wait before replacing failed pods;
- Indexed completion: which indexes are done and which to start next, and the
  `1,3-5` form of status.completedIndexes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from api.nodelease import parse_time
from controlplane.controllers.owned import is_active, is_ready, phase

Obj = Mapping[str, Any]
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
BACKOFF_LIMIT_EXCEEDED = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
DEADLINE_EXCEEDED = ("DeadlineExceeded", "Job was active longer than specified deadline")


@dataclass
class Counts:
    active: list[Obj] = field(default_factory=list)
    ready: int = 0
    succeeded: int = 0
    failed: int = 0
    restarts: int = 0                      # container restarts of OnFailure pods (count toward backoff)
    last_failure: float | None = None      # when the latest failed pod ended
    succeeded_indexes: set[int] = field(default_factory=set)
    active_indexes: set[int] = field(default_factory=set)


def pod_index(pod: Obj) -> int | None:
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(INDEX_ANNOTATION)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _finished_at(pod: Obj) -> float | None:
    times = [parse_time(((s.get("state") or {}).get("terminated") or {}).get("finishedAt"))
             for s in (pod.get("status") or {}).get("containerStatuses") or []]
    times = [t for t in times if t is not None]
    return max(times) if times else None


def count(job: Obj, pods: list[Obj]) -> Counts:
    """Tally the Job's pods; counts never fall below what status already recorded (finished
    pods may have been deleted since)."""
    out = Counts()
    on_failure = (job["spec"]["template"].get("spec") or {}).get("restartPolicy") == "OnFailure"
    for pod in pods:
        index = pod_index(pod)
        if is_active(pod):
            out.active.append(pod)
            out.ready += is_ready(pod)
            if index is not None:
                out.active_indexes.add(index)
            if on_failure:
                out.restarts += sum(int(s.get("restartCount") or 0)
                                    for s in (pod.get("status") or {}).get("containerStatuses") or [])
        elif phase(pod) == "Succeeded":
            out.succeeded += 1
            if index is not None:
                out.succeeded_indexes.add(index)
        elif phase(pod) == "Failed":
            out.failed += 1
            ended = _finished_at(pod)
            if ended is not None and (out.last_failure is None or ended > out.last_failure):
                out.last_failure = ended
    if job["spec"].get("completionMode") == "Indexed":
        out.succeeded_indexes |= parse_indexes((job.get("status") or {}).get("completedIndexes") or "")
        out.succeeded = len(out.succeeded_indexes)
    status = job.get("status") or {}
    out.succeeded = max(out.succeeded, int(status.get("succeeded") or 0))
    out.failed = max(out.failed, int(status.get("failed") or 0))
    return out


def failure(job: Obj, counts: Counts, *, now: float, start: float) -> tuple[str, str] | None:
    """(reason, message) when the Job has failed, else None."""
    spec = job["spec"]
    limit = int(spec.get("backoffLimit", 6))
    if (spec["template"].get("spec") or {}).get("restartPolicy") == "OnFailure":
        restarts = counts.restarts + counts.failed
        exceeded = restarts > 0 if limit == 0 else restarts >= limit
    else:
        exceeded = counts.failed > limit
    if exceeded:
        return BACKOFF_LIMIT_EXCEEDED
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and now - start >= deadline:
        return DEADLINE_EXCEEDED
    return None


def is_complete(job: Obj, counts: Counts) -> bool:
    completions = job["spec"].get("completions")
    if completions is None:                 # work queue: one success, and everyone has stopped
        return counts.succeeded > 0 and not counts.active
    return counts.succeeded >= completions


def wanted_active(job: Obj, counts: Counts) -> int:
    spec = job["spec"]
    if spec.get("suspend"):
        return 0
    parallelism = int(spec.get("parallelism") or 0)
    completions = spec.get("completions")
    if completions is None:
        return 0 if counts.succeeded > 0 else parallelism
    return max(0, min(parallelism, completions - counts.succeeded))


def backoff_delay(failed: int, *, base: float, maximum: float) -> float:
    """Delay before a new pod after `failed` failures: base doubling per failure, capped."""
    if failed <= 0:
        return 0.0
    return min(maximum, base * 2 ** (failed - 1))


def next_indexes(job: Obj, counts: Counts, how_many: int) -> list[int]:
    """The lowest indexes neither succeeded nor running."""
    out: list[int] = []
    for index in range(int(job["spec"].get("completions") or 0)):
        if len(out) >= how_many:
            break
        if index not in counts.succeeded_indexes and index not in counts.active_indexes:
            out.append(index)
    return out


def format_indexes(indexes: set[int]) -> str:
    """{1, 3, 4, 5} -> "1,3-5"."""
    parts, run = [], []
    for i in sorted(indexes):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [i]
    if run:
        parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(parts)


def parse_indexes(text: str) -> set[int]:
    out: set[int] = set()
    for part in filter(None, text.split(",")):
        first, _, last = part.partition("-")
        try:
            out.update(range(int(first), int(last or first) + 1))
        except ValueError:
            continue
    return out
