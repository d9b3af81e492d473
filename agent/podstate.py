"""What the agent remembers about each pod between syncs, and how container ids are named.

Everything here can be rebuilt from facts after an agent restart: the runtime's
state files say which container instances exist, and a container instance's id
carries its restart count (`<pod-uid>.<container>.<n>`), so restartCount,
lastState and backoff timing come back without any agent-side database.
Only soft state lives here alone: probe results (re-probed after a restart) and
image-pull backoff.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from agent.runtime.specs import ContainerStatus


def container_id(pod_uid: str, name: str, instance: int) -> str:
    return f"{pod_uid}.{name}.{instance}"


def parse_container_id(cid: str) -> tuple[str, str, int] | None:
    """(pod uid, container name, instance) of an id made by container_id()."""
    parts = cid.rsplit(".", 2)
    if len(parts) != 3 or not parts[2].isdigit():
        return None
    return parts[0], parts[1], int(parts[2])


@dataclass
class PullBackoff:
    attempts: int = 0
    retry_at: float = 0.0
    reason: str = ""
    message: str = ""


@dataclass
class PodState:
    uid: str
    # Container instances the runtime knows, by container name, newest last.
    instances: dict[str, list[ContainerStatus]] = field(default_factory=dict)
    ready: dict[str, bool] = field(default_factory=dict)         # readiness probe verdicts
    started: dict[str, bool] = field(default_factory=dict)       # startup probe passed
    unhealthy: dict[str, str] = field(default_factory=dict)      # liveness failed: restart with this message
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (reason, message)
    pulls: dict[str, PullBackoff] = field(default_factory=dict)
    probers: dict[str, list[Any]] = field(default_factory=dict)  # container instance id -> prober tasks
    watchers: dict[str, asyncio.Task] = field(default_factory=dict)  # container id -> exit watcher
    start_time: str = ""
    last_status: dict[str, Any] | None = None
    sandbox_ready: bool = False
    volumes: dict[str, Any] = field(default_factory=dict)
    token_mount: Any = None   # host path of the ServiceAccount token files (agent/serviceaccount.py), or None
    pod_ip: str = ""
    terminal_reason: tuple[str, str] | None = None  # (reason, message) that ended the pod (e.g. DeadlineExceeded)
    admitted: bool = False            # counted against the node's pod capacity (kubelet admission)
    phase: str = ""                   # the phase last written (terminal pods free their capacity slot)
    eviction: str | None = None       # the ephemeral storage verdict to act on (agent/ephemeral.py)
    oom_reported: set[str] = field(default_factory=set)   # container ids whose OOM kill has its event

    def latest(self, name: str) -> ContainerStatus | None:
        items = self.instances.get(name)
        return items[-1] if items else None

    def previous(self, name: str) -> ContainerStatus | None:
        items = self.instances.get(name) or []
        return items[-2] if len(items) >= 2 else None

    def restart_count(self, name: str) -> int:
        latest = self.latest(name)
        if latest is None:
            return 0
        parsed = parse_container_id(latest.id)
        return parsed[2] if parsed else 0

    def add_instance(self, status: ContainerStatus) -> None:
        items = self.instances.setdefault(status.name, [])
        items[:] = [s for s in items if s.id != status.id] + [status]
        items.sort(key=lambda s: (parse_container_id(s.id) or ("", "", 0))[2])
