"""Computing a pod's status from what the agent observes — pure functions.

Input: the pod (spec, old status) and the agent's PodState (container
instances from the runtime, probe verdicts, waiting reasons). Output: the
status dict the agent writes back: phase, conditions (PodScheduled,
Initialized, ContainersReady, Ready), hostIP, podIP, startTime, and one
containerStatus per container with state, lastState, ready, restartCount.
The phase follows Kubernetes' rules (kubelet's getPhase).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from api import timestamps
from agent.podstate import PodState
from agent.runtime.specs import ContainerStatus


def rfc3339(t: datetime | None) -> str | None:
    """A container's time as the pod status shows it, or None when it has none."""
    return None if t is None else timestamps.rfc3339(t)


def terminated_state(s: ContainerStatus) -> dict[str, Any]:
    out: dict[str, Any] = {"exitCode": s.exit_code if s.exit_code is not None else 0,
                           "reason": s.reason or ("Completed" if s.exit_code == 0 else "Error"),
                           "startedAt": rfc3339(s.started_at), "finishedAt": rfc3339(s.finished_at),
                           "containerID": f"skiff://{s.id}"}
    if s.signal:
        out["signal"] = s.signal
    if s.message:
        out["message"] = s.message
    return {"terminated": {k: v for k, v in out.items() if v is not None}}


def container_status(pod: dict[str, Any], container: dict[str, Any], state: PodState, *,
                     init: bool = False) -> dict[str, Any]:
    name = container["name"]
    latest = state.latest(name)
    waiting = state.waiting.get(name)
    out: dict[str, Any] = {"name": name, "image": container.get("image", ""), "imageID": "",
                           "restartCount": state.restart_count(name), "ready": False, "started": False}
    last = state.previous(name)
    if latest is not None:
        out["containerID"] = f"skiff://{latest.id}"
    if waiting is not None:
        # Waiting: not yet started, or between restarts (CrashLoopBackOff): the last run is lastState.
        reason, message = waiting
        out["state"] = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
        if latest is not None and latest.state == "exited":
            last = latest
    elif latest is None:
        out["state"] = {"waiting": {"reason": "PodInitializing" if not init and _init_pending(pod, state)
                                    else "ContainerCreating"}}
    elif latest.state == "running":
        out["state"] = {"running": {"startedAt": rfc3339(latest.started_at)}}
        out["started"] = state.started.get(name, True)
        out["ready"] = state.ready.get(name, _no_readiness_probe(container)) and not init
    elif latest.state == "exited":
        out["state"] = terminated_state(latest)
    else:
        out["state"] = {"waiting": {"reason": "ContainerCreating"}}
    out["lastState"] = terminated_state(last) if last is not None and last.state == "exited" else {}
    return out


def _no_readiness_probe(container: dict[str, Any]) -> bool:
    return not container.get("readinessProbe")


def _init_pending(pod: dict[str, Any], state: PodState) -> bool:
    for c in (pod.get("spec") or {}).get("initContainers") or []:
        latest = state.latest(c["name"])
        if latest is None or latest.state != "exited" or latest.exit_code != 0:
            return True
    return False


def phase_of(pod: dict[str, Any], statuses: list[dict[str, Any]], init_done: bool, init_failed: bool) -> str:
    """kubelet's getPhase."""
    policy = (pod.get("spec") or {}).get("restartPolicy", "Always")
    if init_failed and policy == "Never":
        return "Failed"
    if not init_done:
        return "Pending"
    waiting = running = stopped = succeeded = 0
    for s in statuses:
        st = s.get("state") or {}
        if "running" in st:
            running += 1
        elif "terminated" in st:
            stopped += 1
            if st["terminated"].get("exitCode") == 0:
                succeeded += 1
        elif "waiting" in st:
            if s.get("lastState", {}).get("terminated"):
                stopped += 1  # between restarts
                if s["lastState"]["terminated"].get("exitCode") == 0:
                    succeeded += 1
            else:
                waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped == len(statuses) and statuses:
        if policy == "Always":
            return "Running"
        if succeeded == stopped:
            return "Succeeded"
        return "Failed" if policy == "Never" else "Running"
    return "Pending"


def condition(type_: str, ok: bool, old: list[dict[str, Any]], *, reason: str = "", message: str = "",
              now: str) -> dict[str, Any]:
    status = "True" if ok else "False"
    previous = next((c for c in old if c.get("type") == type_), None)
    since = previous["lastTransitionTime"] if previous and previous.get("status") == status \
        and previous.get("lastTransitionTime") else now
    out = {"type": type_, "status": status, "lastTransitionTime": since}
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    return out


def pod_status(pod: dict[str, Any], state: PodState, *, host_ip: str, now: str) -> dict[str, Any]:
    spec = pod.get("spec") or {}
    old = pod.get("status") or {}
    old_conditions = old.get("conditions") or []
    init_statuses = [container_status(pod, c, state, init=True) for c in spec.get("initContainers") or []]
    statuses = [container_status(pod, c, state) for c in spec.get("containers") or []]
    init_done = all("terminated" in (s.get("state") or {}) and s["state"]["terminated"].get("exitCode") == 0
                    for s in init_statuses)
    init_failed = any(("terminated" in (s.get("state") or {}) and s["state"]["terminated"].get("exitCode") != 0)
                      or (s.get("lastState", {}).get("terminated", {}).get("exitCode") not in (None, 0)
                          and "waiting" in (s.get("state") or {}))
                      for s in init_statuses)
    phase = phase_of(pod, statuses, init_done, init_failed)
    reason = message = ""
    if state.terminal_reason is not None:
        phase = "Failed"
        reason, message = state.terminal_reason
    containers_ready = bool(statuses) and all(s["ready"] for s in statuses)
    not_ready = sorted(s["name"] for s in statuses if not s["ready"])
    unready_msg = f"containers with unready status: [{' '.join(not_ready)}]" if not_ready else ""
    init_msg = "" if init_done else \
        f"containers with incomplete status: [{' '.join(s['name'] for s in init_statuses if 'terminated' not in (s.get('state') or {}) or s['state']['terminated'].get('exitCode') != 0)}]"
    terminal = phase in ("Succeeded", "Failed")
    conditions = [
        condition("PodScheduled", True, old_conditions, now=now),
        condition("Initialized", init_done, old_conditions, now=now,
                  reason="" if init_done else "ContainersNotInitialized", message=init_msg),
        condition("ContainersReady", containers_ready and not terminal, old_conditions, now=now,
                  reason="" if containers_ready and not terminal else
                  ("PodCompleted" if terminal else "ContainersNotReady"),
                  message="" if containers_ready or terminal else unready_msg),
        condition("Ready", containers_ready and not terminal, old_conditions, now=now,
                  reason="" if containers_ready and not terminal else
                  ("PodCompleted" if terminal else "ContainersNotReady"),
                  message="" if containers_ready or terminal else unready_msg),
    ]
    out: dict[str, Any] = {"phase": phase, "conditions": conditions, "hostIP": host_ip,
                           "startTime": state.start_time or old.get("startTime") or now,
                           "containerStatuses": statuses}
    if init_statuses:
        out["initContainerStatuses"] = init_statuses
    if state.pod_ip:
        out["podIP"] = state.pod_ip
        out["podIPs"] = [{"ip": state.pod_ip}]
    if old.get("qosClass"):
        out["qosClass"] = old["qosClass"]
    if reason:
        out["reason"], out["message"] = reason, message
    return out


def comparable(status: dict[str, Any] | None) -> Any:
    """A status without timestamps that change on every heartbeat (so we write only on change)."""
    if not status:
        return None
    return {**status, "conditions": [{k: v for k, v in c.items() if k not in ("lastProbeTime",)}
                                     for c in status.get("conditions") or []]}
