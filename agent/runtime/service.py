"""`RuntimeService`: the seam between the agent's pod logic and a container runtime.

This is CRI's RuntimeService in Skiff's names: the agent's `PodSyncer`
(agent/podsync.py) drives containers only through these verbs, so the same pod
logic runs on

- `agent.runtime.Runtime` (runtime.py): real namespaces, cgroups and overlayfs;
- `agent.fakeruntime.FakeRuntime`: containers that are records in memory, for the
  unit tests of the pod lifecycle (no root) and for hollow nodes (agent/hollow.py),
  as kubemark runs the real kubelet on a fake remote runtime.

CRI verb                      here
----------------------------  -----------------------------------------------
RunPodSandbox                 create_sandbox (idempotent: an existing one is returned)
PodSandboxStatus              get_sandbox
ListPodSandbox                list_sandboxes
StopPodSandbox+RemovePodSandbox  remove_sandbox
UpdateRuntimeConfig (hosts)   update_hosts
CreateContainer+StartContainer  run_container
ContainerStatus               status
ListContainers                list
StopContainer                 stop_container
RemoveContainer               remove_container
GetContainerEvents            wait (the one event the agent needs: a container exited)
ContainerStats (disk)         writable_layer (what agent/ephemeral.py measures)

Exec and attach are not here: they are the agent's streaming service (agent/service.py,
agent/probing.py), which only the real runtime can serve.
"""

from __future__ import annotations

import builtins
import signal as signals
from pathlib import Path
from typing import Protocol, runtime_checkable

from agent.runtime.specs import ContainerSpec, ContainerStatus, Sandbox, SandboxSpec


@runtime_checkable
class RuntimeService(Protocol):
    """What `PodSyncer` needs of a runtime. Errors: `ContainerNotFound` for an unknown id,
    `StartError` (message fit for a waiting reason) when a container did not start,
    `RuntimeError` when removing a running container."""

    async def create_sandbox(self, spec: SandboxSpec) -> Sandbox:
        """Make the pod's shared namespaces and files; an existing sandbox is returned as it is."""
        ...

    async def get_sandbox(self, pod_uid: str) -> Sandbox | None: ...

    async def list_sandboxes(self) -> list[Sandbox]: ...

    async def update_hosts(self, pod_uid: str, entries: list[tuple[str, str]]) -> None: ...

    async def remove_sandbox(self, pod_uid: str) -> None: ...

    async def run_container(self, spec: ContainerSpec) -> ContainerStatus:
        """Create and start; a container that failed to start stays listed (exited, StartError)."""
        ...

    async def status(self, id: str) -> ContainerStatus: ...

    async def list(self) -> builtins.list[ContainerStatus]: ...

    async def wait(self, id: str, timeout: float | None = None) -> ContainerStatus:
        """Until the container has exited and its exit is recorded; TimeoutError after `timeout`."""
        ...

    async def stop_container(self, id: str, *, grace_seconds: float,
                             signal: int = signals.SIGTERM) -> ContainerStatus:
        """`signal`, up to `grace_seconds` for it to exit, then SIGKILL; the final status."""
        ...

    async def remove_container(self, id: str, *, remove_log: bool = False) -> None: ...

    def writable_layer(self, id: str) -> Path: ...
