"""A pod's READY, STATUS and RESTARTS cells, computed the way kubectl's printPod does.

STATUS is not simply `status.phase`: kubectl shows the most telling reason it
can find, in this order of precedence (later wins):
  1. the phase, or `status.reason` when set (`Evicted`);
  2. the first init container that has not succeeded: `Init:1/3` while it runs,
     `Init:CrashLoopBackOff` while it waits, `Init:Error` / `Init:ExitCode:2` when it failed;
  3. once initialised, the containers, last to first: a waiting reason
     (`ContainerCreating`, `CrashLoopBackOff`, `ErrImagePull`), a terminated
     reason (`Completed`, `Error`, `OOMKilled`) or `ExitCode:N` / `Signal:N`;
     `Completed` turns back into `Running` (or `NotReady`) while another container still runs;
  4. `Terminating` when the pod is being deleted and has not finished.
Works on the pod's JSON form (a dict), as the client returns it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from api.printing.timefmt import human_duration, now, parse_time


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _condition_true(status: dict[str, Any], type_: str) -> bool:
    return any(c.get("type") == type_ and c.get("status") == "True" for c in status.get("conditions") or [])


def _has_condition(status: dict[str, Any], type_: str) -> bool:
    return any(c.get("type") == type_ for c in status.get("conditions") or [])


def _terminated_reason(term: dict[str, Any], prefix: str = "") -> str:
    if term.get("reason"):
        return prefix + str(term["reason"])
    if term.get("signal"):
        return f"{prefix}Signal:{term['signal']}"
    return f"{prefix}ExitCode:{term.get('exitCode', 0)}"


def pod_status(pod: dict[str, Any]) -> str:
    """The STATUS column of `get pods`."""
    spec, status, meta = _dict(pod.get("spec")), _dict(pod.get("status")), _dict(pod.get("metadata"))
    phase = status.get("phase") or "Pending"
    reason = status.get("reason") or phase

    initializing = False
    init_specs = spec.get("initContainers") or []
    for i, container in enumerate(status.get("initContainerStatuses") or []):
        state = _dict(container.get("state"))
        term, waiting = _dict(state.get("terminated")), _dict(state.get("waiting"))
        if state.get("terminated") is not None and term.get("exitCode", 0) == 0:
            continue  # this init container succeeded; look at the next
        if state.get("terminated") is not None:
            reason = _terminated_reason(term, "Init:")
        elif waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _condition_true(status, "Initialized"):
        has_running = False
        for container in reversed(status.get("containerStatuses") or []):
            state = _dict(container.get("state"))
            waiting, ended = _dict(state.get("waiting")), state.get("terminated")
            if waiting.get("reason"):
                reason = waiting["reason"]
            elif ended is not None:
                reason = _terminated_reason(_dict(ended))
            elif container.get("ready") and state.get("running") is not None:
                has_running = True
        if reason == "Completed" and has_running:
            reason = "Running" if _has_condition(status, "Ready") and _condition_true(status, "Ready") else "NotReady"

    if meta.get("deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"
    return reason


def pod_ready(pod: dict[str, Any]) -> str:
    """READY: containers ready and running / containers in the spec (`1/2`)."""
    total = len(_dict(pod.get("spec")).get("containers") or [])
    ready = sum(1 for c in _dict(pod.get("status")).get("containerStatuses") or []
                if c.get("ready") and _dict(c.get("state")).get("running") is not None)
    return f"{ready}/{total}"


def pod_restarts(pod: dict[str, Any], at: datetime | None = None) -> str:
    """RESTARTS: the sum of restart counts, with how long ago the last one ended (`3 (2m ago)`)."""
    status = _dict(pod.get("status"))
    init = status.get("initContainerStatuses") or []
    containers = status.get("containerStatuses") or []
    initialised = _condition_true(status, "Initialized") or all(
        _dict(_dict(c.get("state")).get("terminated")).get("exitCode", 1) == 0 for c in init)
    counted = containers if initialised else init
    restarts = sum(int(c.get("restartCount") or 0) for c in counted)
    last = None
    for c in counted:
        finished = parse_time(_dict(_dict(c.get("lastState")).get("terminated")).get("finishedAt"))
        if finished and (last is None or finished > last):
            last = finished
    if restarts and last is not None:
        return f"{restarts} ({human_duration(((at or now()) - last).total_seconds())} ago)"
    return str(restarts)
