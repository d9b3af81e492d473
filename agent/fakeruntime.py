"""`FakeRuntime`: a `RuntimeService` (agent/runtime/service.py) whose containers are records in memory.

Two users, both running the agent's real pod logic (`PodSyncer`, agent/podsync.py) on it:

- hollow nodes (agent/hollow.py), as kubemark runs the real kubelet on a fake remote
  runtime: what the control plane sees of their pods is what PodSyncer writes;
- the pod lifecycle unit tests (tests/unit/test_podsync.py), which need no root.

What a fake container "does" once started is its `Program`, chosen per container by
the `program` callback (default: run until stopped): exit after some seconds with a
code, be OOM-killed, fail to start, or ignore SIGTERM. Tests can also end a running
container at any moment with `exit()`. Everything else follows the real runtime's
contract: a container that failed to start stays listed (exited, reason StartError),
`stop_container` sends SIGTERM and SIGKILLs after the grace period, a running
container cannot be removed, and `wait` returns once the exit is recorded.
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import itertools
import signal as signals
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from agent.images.errors import PullError
from agent.images.image import Image
from agent.images.manifest import ImageConfig
from agent.runtime.specs import (ContainerNotFound, ContainerSpec, ContainerStatus, Sandbox, SandboxSpec,
                                 StartError, validate_sandbox)

RUNTIME_NAME = "fake"


@dataclass(frozen=True)
class Program:
    """What a fake container does once started."""

    exit_after: float | None = None   # seconds after the start; None: runs until stopped
    exit_code: int = 0
    oom: bool = False                 # the exit is an OOM kill (code 137, reason OOMKilled)
    start_error: str | None = None    # it does not start: StartError with this message
    ignores_sigterm: bool = False     # only the SIGKILL after the grace period ends it


@dataclass
class _Container:
    spec: ContainerSpec
    program: Program
    status: ContainerStatus
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    timer: asyncio.TimerHandle | None = None


def _now() -> datetime:
    return datetime.now(timezone.utc)


class FakeRuntime:
    """Containers and sandboxes of one (hollow or test) node, in memory."""

    def __init__(self, *, program: Callable[[ContainerSpec], Program] | None = None,
                 root: Path = Path("/nonexistent/skiff-fake-runtime")) -> None:
        """`root` only names paths (sandbox directories, writable layers); nothing is written there."""
        self.program = program or (lambda spec: Program())
        self.root = root
        self.sandboxes: dict[str, Sandbox] = {}
        self.hosts: dict[str, builtins.list[tuple[str, str]]] = {}
        self.specs: dict[str, ContainerSpec] = {}        # every container ever run, by id (for tests)
        self._containers: dict[str, _Container] = {}
        self._pids = itertools.count(1000)

    # -- sandboxes -------------------------------------------------------------------------

    async def create_sandbox(self, spec: SandboxSpec) -> Sandbox:
        validate_sandbox(spec)
        existing = self.sandboxes.get(spec.pod_uid)
        if existing is not None:
            return existing
        directory = self.root / "sandboxes" / spec.pod_uid
        private = None if spec.host_network else directory / "net"
        sandbox = Sandbox(pod_uid=spec.pod_uid, hostname=spec.hostname, directory=directory, netns_path=private,
                          ipcns_path=None if spec.host_ipc else directory / "ipc", utsns_path=None if spec.host_network else directory / "uts", host_pid=spec.host_pid)
        self.sandboxes[spec.pod_uid] = sandbox
        self.hosts[spec.pod_uid] = list(spec.hosts_entries)
        return sandbox

    async def get_sandbox(self, pod_uid: str) -> Sandbox | None:
        return self.sandboxes.get(pod_uid)

    async def list_sandboxes(self) -> builtins.list[Sandbox]:
        return list(self.sandboxes.values())

    async def update_hosts(self, pod_uid: str, entries: builtins.list[tuple[str, str]]) -> None:
        if pod_uid not in self.sandboxes:
            raise FileNotFoundError(f"pod {pod_uid} has no sandbox")
        self.hosts[pod_uid] = list(entries)

    async def remove_sandbox(self, pod_uid: str) -> None:
        self.sandboxes.pop(pod_uid, None)
        self.hosts.pop(pod_uid, None)

    # -- containers ------------------------------------------------------------------------

    async def run_container(self, spec: ContainerSpec) -> ContainerStatus:
        if spec.pod_uid not in self.sandboxes:
            raise ValueError(f"container {spec.name}: pod {spec.pod_uid} has no sandbox (create_sandbox first)")
        if spec.id in self._containers:
            raise StartError(f"container {spec.id} already exists")
        program = self.program(spec)
        now = _now()
        status = ContainerStatus(id=spec.id, pod_uid=spec.pod_uid, name=spec.name, state="running",
                                 pid=next(self._pids), created_at=now, started_at=now, log_path=spec.log_path)
        container = self._containers[spec.id] = _Container(spec=spec, program=program, status=status)
        self.specs[spec.id] = spec
        if program.start_error is not None:
            container.status = dataclasses.replace(status, state="exited", pid=None, started_at=None,
                                                   finished_at=now, exit_code=128, reason="StartError",
                                                   message=program.start_error)
            container.exited.set()
            raise StartError(program.start_error)
        if program.exit_after is not None:
            container.timer = asyncio.get_running_loop().call_later(
                program.exit_after, lambda: self.exit(spec.id, program.exit_code, oom=program.oom))
        return status

    def exit(self, id: str, code: int = 0, *, oom: bool = False, signal: int | None = None) -> None:
        """The container's process ends now (a test's or a Program's doing)."""
        container = self._containers.get(id)
        if container is None or container.status.state != "running":
            return
        if container.timer is not None:
            container.timer.cancel()
        if oom:
            code, signal, reason = 137, signals.SIGKILL, "OOMKilled"
        else:
            reason = "Completed" if code == 0 else "Error"
        container.status = dataclasses.replace(container.status, state="exited", pid=None, finished_at=_now(),
                                               exit_code=code, signal=signal, oom_killed=oom, reason=reason)
        container.exited.set()

    def _get(self, id: str) -> _Container:
        container = self._containers.get(id)
        if container is None:
            raise ContainerNotFound(f"container {id} not found")
        return container

    async def status(self, id: str) -> ContainerStatus:
        return self._get(id).status

    async def list(self) -> builtins.list[ContainerStatus]:
        return [c.status for c in self._containers.values()]

    async def wait(self, id: str, timeout: float | None = None) -> ContainerStatus:
        container = self._get(id)
        try:
            await asyncio.wait_for(container.exited.wait(), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"container {id} still running after {timeout}s") from None
        return container.status

    async def stop_container(self, id: str, *, grace_seconds: float,
                             signal: int = signals.SIGTERM) -> ContainerStatus:
        container = self._get(id)
        if container.status.state != "running":
            return container.status
        if signal == signals.SIGKILL or not container.program.ignores_sigterm:
            self.exit(id, 128 + signal, signal=signal)
            return container.status
        try:
            await asyncio.wait_for(container.exited.wait(), grace_seconds)
        except asyncio.TimeoutError:
            self.exit(id, 128 + signals.SIGKILL, signal=signals.SIGKILL)
        return container.status

    async def remove_container(self, id: str, *, remove_log: bool = False) -> None:
        container = self._get(id)
        if container.status.state == "running":
            raise RuntimeError(f"container {id} is running; stop it before removing it")
        del self._containers[id]

    def writable_layer(self, id: str) -> Path:
        return self.root / "containers" / id / "upper"


class FakeImages:
    """An image store in which every image is present at once, with an empty config and no layers
    and the command /fake-entrypoint (a fake container runs no process, so it needs no files). References in `failing` fail to pull
    with that PullError reason (e.g. "ErrImagePull"), as a registry that refuses them would."""

    def __init__(self) -> None:
        self.failing: dict[str, str] = {}
        self.pulls: builtins.list[str] = []

    async def pull(self, ref: str, *, policy: str = "IfNotPresent", auth: object = None,
                   on_event: Callable[[str, str], None] | None = None) -> Image:
        self.pulls.append(ref)
        if ref in self.failing:
            raise PullError(f'failed to pull and unpack image "{ref}": refused', reason=self.failing[ref])
        return Image(digest=f"sha256:{'0' * 64}", names=[ref], config=ImageConfig(cmd=["/fake-entrypoint"]), layers=[],
                     size=0)
