"""`Runtime`: the container runtime's API for the agent (asyncio).

The agent's pod workers call this class and nothing else of agent/runtime:

    runtime = Runtime(Path("/var/lib/skiff/runtime"), state_dir=Path("/run/skiff/runtime"),
                      cgroups=open_manager(parent="skiff"))
    await runtime.start()                                   # the fork server
    sandbox = await runtime.create_sandbox(SandboxSpec(pod_uid=..., hostname="web-0"))
    status = await runtime.run_container(ContainerSpec(...))
    status = await runtime.wait(spec.id, timeout=30)
    await runtime.remove_container(spec.id)
    await runtime.remove_sandbox(pod_uid)

Where things live, under `state_dir` (a tmpfs in production; default: `root`):

    forkserver.sock, forkserver.log
    sandboxes/<pod-uid>/{net,ipc,uts}        bind-mounted namespaces (sandbox.py)
    sandboxes/<pod-uid>/{hosts,hostname,resolv.conf,sandbox.json}
    containers/<id>/plan.json                what was asked (plan.py)
    containers/<id>/state.json               what happened (state.py)

and under `root` (disk):

    containers/<id>/{rootfs,upper,work}      overlay mount point and writable layer
    logs/<id>.log                            CRI log, unless ContainerSpec.log_path says otherwise

Nothing is kept in memory that the files do not say: `list()` and `status()` read
the files and check the recorded PIDs, so a restarted agent simply finds its
containers (their supervisors kept running). File work runs in threads
(asyncio.to_thread); process work happens in the fork server (forkserver.py).
"""

from __future__ import annotations

import asyncio
import builtins
import json
import os
import pty
import shutil
import signal as signals
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from agent.cgroups.resources import Resources
from agent.runtime import capabilities, linux, plan as plans, sandbox as sandboxes, seccomp, state
from agent.runtime.client import ForkServerClient, read_reply, wait_readable
from agent.runtime.execprocess import ExecProcess
from agent.runtime.specs import (ContainerNotFound, ContainerSpec, ContainerStatus, Sandbox, SandboxSpec,
                                 StartError, validate_container, validate_sandbox)
from agent.runtime.state import State, StateRecord

KILL_TIMEOUT = 10.0      # how long a SIGKILLed container may take to be reaped and recorded


class Runtime:
    def __init__(self, root: Path, *, cgroups, forkserver_python: str = sys.executable,
                 state_dir: Path | None = None) -> None:
        """`root` holds the containers' writable layers and logs (on disk); `state_dir`
        (default: `root`) the small state files, sockets and namespace mounts - put it
        on a tmpfs such as /run/skiff, as runc keeps /run/runc: it lives exactly as
        long as the containers it describes, and fsync there costs nothing."""
        self.root = Path(root).absolute()
        self.state_dir = Path(state_dir).absolute() if state_dir else self.root
        for path in (self.root, self.state_dir):
            if any(c in str(path) for c in ",:"):
                raise ValueError(f"runtime directory {path}: must not contain ',' or ':' (overlayfs options)")
        self.cgroups = cgroups
        self.containers_dir = self.state_dir / "containers"     # <id>/plan.json, state.json
        self.layers_dir = self.root / "containers"               # <id>/rootfs, upper, work
        self.sandboxes_dir = self.state_dir / "sandboxes"
        self.logs_dir = self.root / "logs"
        self._last_cap = linux.last_cap()
        self._capabilities = linux.own_capabilities()
        self._forkserver = ForkServerClient(self.state_dir, python=forkserver_python, cgroup_parent=cgroups.parent,
                                            cgroup_root=str(cgroups.root))

    # -- the fork server ----------------------------------------------------------------

    async def start(self) -> None:
        """Start the fork server. Containers from an earlier agent keep running and are listed."""
        for d in (self.containers_dir, self.layers_dir, self.sandboxes_dir, self.logs_dir):
            d.mkdir(parents=True, exist_ok=True)
        await self._forkserver.start()
        # The default seccomp profile for the default capabilities, compiled now (tens of ms,
        # once per process) rather than during the first pod's start.
        default_caps = capabilities.resolve(add=[], drop=[], privileged=False, available=self._capabilities)
        await asyncio.to_thread(seccomp.compile_profile,
                                seccomp.cache_key(seccomp.RUNTIME_DEFAULT, capabilities.names(default_caps)))

    async def close(self) -> None:
        """Stop the fork server; containers and their supervisors keep running."""
        await self._forkserver.close()

    @property
    def forkserver_pid(self) -> int | None:
        return self._forkserver.pid

    # -- sandboxes ------------------------------------------------------------------------

    async def create_sandbox(self, spec: SandboxSpec) -> Sandbox:
        """Create the pod's namespaces and files; an existing sandbox is returned as it is."""
        validate_sandbox(spec)
        directory = self.sandboxes_dir / spec.pod_uid
        existing = await asyncio.to_thread(sandboxes.load, directory)
        if existing is not None:
            return existing
        hostname = os.uname().nodename if spec.host_network else spec.hostname
        made = sandboxes.describe(directory, pod_uid=spec.pod_uid, hostname=hostname,
                                  host_network=spec.host_network, host_ipc=spec.host_ipc, host_pid=spec.host_pid)
        await asyncio.to_thread(sandboxes.write_files, spec, directory)
        # The pod's cgroup level, with the pod's own limits (pids for the whole pod), before any container.
        await asyncio.to_thread(self.cgroups.create, plans.pod_cgroup_path(spec.pod_uid),
                                spec.resources or Resources())
        kinds = sandboxes.kinds_for(spec)
        if kinds:
            answer = await self._forkserver.call({"op": "sandbox", "directory": str(directory),
                                                  "kinds": kinds, "hostname": hostname})
            if not answer.get("ok"):
                await asyncio.to_thread(sandboxes.remove, directory)
                raise RuntimeError(f"creating the sandbox of pod {spec.pod_uid}: {answer.get('error')}")
        await asyncio.to_thread(sandboxes.save, made, spec)     # last: its presence means "complete"
        return made

    async def get_sandbox(self, pod_uid: str) -> Sandbox | None:
        return await asyncio.to_thread(sandboxes.load, self.sandboxes_dir / pod_uid)

    async def list_sandboxes(self) -> list[Sandbox]:
        def scan() -> list[Sandbox]:
            if not self.sandboxes_dir.is_dir():
                return []
            found = (sandboxes.load(d) for d in sorted(self.sandboxes_dir.iterdir()))
            return [s for s in found if s is not None]
        return await asyncio.to_thread(scan)

    async def update_hosts(self, pod_uid: str, entries: list[tuple[str, str]]) -> None:
        """Set the pod's /etc/hosts entries (e.g. its IP once the network is up)."""
        await asyncio.to_thread(sandboxes.rewrite_hosts, self.sandboxes_dir / pod_uid, entries)

    async def remove_sandbox(self, pod_uid: str) -> None:
        """Release the pod's namespaces, files and pod cgroup. Stop its containers first."""
        def remove() -> None:
            sandboxes.remove(self.sandboxes_dir / pod_uid)
            self.cgroups.remove(plans.pod_cgroup_path(pod_uid))
        await asyncio.to_thread(remove)

    # -- containers -------------------------------------------------------------------------

    async def run_container(self, spec: ContainerSpec) -> ContainerStatus:
        """Create and start a container; raises StartError with the reason it did not start.

        A container that failed to start stays listed (exited, reason StartError) until
        `remove_container`, so its message can be shown. The container's directory,
        files and cgroup are made by its supervisor (supervisor.py), in parallel with
        the container's own setup.
        """
        validate_container(spec)
        sandbox = await self.get_sandbox(spec.pod_uid)
        if sandbox is None:
            raise ValueError(f"container {spec.name}: pod {spec.pod_uid} has no sandbox (create_sandbox first)")
        log_path = Path(spec.log_path) if spec.log_path else self.logs_dir / f"{spec.id}.log"
        launch = plans.build(spec=spec, sandbox=sandbox, container_dir=self.layers_dir / spec.id,
                             state_dir=self.containers_dir / spec.id,
                             log_path=log_path, last_cap=self._last_cap,
                             available_caps=self._capabilities)
        if spec.seccomp is not None and not spec.privileged:
            try:
                key = seccomp.cache_key(spec.seccomp, capabilities.names(launch["caps"]))
                launch["seccomp"] = seccomp.cached(key) or await asyncio.to_thread(seccomp.compile_profile, key)
            except seccomp.ProfileError as exc:
                raise ValueError(f"container {spec.name}: {exc}") from None
        answer = await self._forkserver.call({"op": "start", "plan": launch})
        if not answer.get("ok"):
            raise StartError(answer.get("error") or "unknown error")
        return ContainerStatus(
            id=spec.id, pod_uid=spec.pod_uid, name=spec.name, state=State.RUNNING.value, pid=answer["pid"],
            created_at=_time(launch["created_at"]), started_at=_time(answer["started_at"]), log_path=log_path)

    def writable_layer(self, id: str) -> Path:
        """The container's writable layer on disk (the overlay's upper directory)."""
        return self.layers_dir / id / "upper"

    async def status(self, id: str) -> ContainerStatus:
        return await asyncio.to_thread(self._status, id)

    def _status(self, id: str) -> ContainerStatus:
        directory = self.containers_dir / id
        record = state.observe(directory / "state.json")
        launch = _read_plan(directory)
        if record is None or launch is None:
            raise ContainerNotFound(f"container {id} not found")
        return _to_status(record, launch)

    async def list(self) -> list[ContainerStatus]:
        """Every container on disk, with its observed state (re-adoption after an agent restart)."""
        def scan() -> list[ContainerStatus]:
            if not self.containers_dir.is_dir():
                return []
            found = []
            for directory in sorted(self.containers_dir.iterdir()):
                try:
                    found.append(self._status(directory.name))
                except ContainerNotFound:
                    continue    # being created or removed right now
            return found
        return await asyncio.to_thread(scan)

    async def wait(self, id: str, timeout: float | None = None) -> ContainerStatus:
        """Wait until the container has exited (and its exit is recorded); TimeoutError after `timeout`."""
        pidfd = await asyncio.to_thread(self._exit_watch, id)
        if pidfd is not None and not await wait_readable(pidfd, timeout):
            raise TimeoutError(f"container {id} still running after {timeout}s")
        status = await self.status(id)
        if status.state == State.RUNNING.value:       # cannot happen unless a pid was recycled
            raise TimeoutError(f"container {id} still running after {timeout}s")
        return status

    def _exit_watch(self, id: str) -> int | None:
        """A pidfd that turns readable once the container's exit is recorded, or None if it is not running."""
        record = state.observe(self.containers_dir / id / "state.json")
        if record is None:
            raise ContainerNotFound(f"container {id} not found")
        return _watch_fd(record) if record.state is State.RUNNING else None

    async def stop_container(self, id: str, *, grace_seconds: float,
                             signal: int = signals.SIGTERM) -> ContainerStatus:
        """Send `signal`, wait up to `grace_seconds`, then SIGKILL everything in the container's cgroup.

        As in Docker, a PID 1 that installed no handler for SIGTERM ignores it; the
        grace period then runs out and SIGKILL ends it.
        """
        status = await self.status(id)
        if status.state != State.RUNNING.value:
            return status
        record = await asyncio.to_thread(state.load, self.containers_dir / id / "state.json")
        _signal(record, signal)
        try:
            return await self.wait(id, timeout=grace_seconds)
        except TimeoutError:
            pass
        _signal(record, signals.SIGKILL)
        await asyncio.to_thread(self.cgroups.kill_all, plans.cgroup_path(status.pod_uid, status.name))
        return await self.wait(id, timeout=KILL_TIMEOUT)

    async def remove_container(self, id: str, *, remove_log: bool = False) -> None:
        """Delete a stopped container: its writable layer, cgroup and state (the log only if asked)."""
        await asyncio.to_thread(self._remove, id, remove_log)

    def _remove(self, id: str, remove_log: bool) -> None:
        directory = self.containers_dir / id
        record = state.observe(directory / "state.json")
        launch = _read_plan(directory)
        if record is None or launch is None:
            if not directory.exists():
                raise ContainerNotFound(f"container {id} not found")
            if launch is not None:            # a half-created container (its supervisor died)
                self.cgroups.remove(launch["cgroup"])
            shutil.rmtree(directory)
            shutil.rmtree(self.layers_dir / id, ignore_errors=True)
            return
        if record.state is State.RUNNING:
            raise RuntimeError(f"container {id} is running; stop it before removing it")
        if record.state is not State.REMOVED:   # not fsync'd: the directory goes next anyway
            state.save(directory / "state.json", state.advance(record, State.REMOVED), durable=False)
        self.cgroups.remove(launch["cgroup"])
        shutil.rmtree(launch["container_dir"], ignore_errors=True)
        shutil.rmtree(directory, ignore_errors=True)
        if remove_log:
            log = Path(launch["log_path"])
            for n in range(launch["log_max_files"] + 1):
                (log if n == 0 else log.with_name(f"{log.name}.{n}")).unlink(missing_ok=True)

    async def exec(self, id: str, argv: builtins.list[str], *, tty: bool = False,
                   env: dict[str, str] | None = None) -> ExecProcess:
        """Run `argv` inside a running container (its namespaces, cgroup, user and capabilities)."""
        if not argv or not all(isinstance(a, str) and a for a in argv):
            raise ValueError(f"exec in container {id}: argv must be a non-empty list of non-empty strings")
        directory = self.containers_dir / id
        record = await asyncio.to_thread(state.observe, directory / "state.json")
        launch = await asyncio.to_thread(_read_plan, directory)
        if record is None or launch is None:
            raise ContainerNotFound(f"container {id} not found")
        if record.state is not State.RUNNING:
            raise RuntimeError(f"container {id} is not running")
        if tty:
            master, slave = pty.openpty()
            local, remote = [master], [slave]
        else:
            stdin_r, stdin_w = os.pipe()
            stdout_r, stdout_w = os.pipe()
            stderr_r, stderr_w = os.pipe()
            local, remote = [stdin_w, stdout_r, stderr_r], [stdin_r, stdout_w, stderr_w]
        request: dict[str, Any] = {"op": "exec", "plan": launch, "pid": record.pid, "pid_start": record.pid_start,
                   "args": list(argv), "env": {**launch["env"], **(env or {})}, "tty": tty}
        try:
            reader, writer = await self._forkserver.connect(request, remote)
        except BaseException:
            for fd in local:
                os.close(fd)
            raise
        finally:
            for fd in remote:
                os.close(fd)
        answer = await read_reply(reader)
        if not answer.get("ok"):
            writer.close()
            for fd in local:
                os.close(fd)
            raise StartError(answer.get("error") or "exec failed")
        return await ExecProcess.attach(pid=answer["pid"], local_fds=local, tty=tty, control=reader,
                                        control_writer=writer)


# -- helpers -------------------------------------------------------------------------------

def _read_plan(directory: Path) -> dict | None:
    try:
        return json.loads((directory / "plan.json").read_bytes())
    except FileNotFoundError:
        return None


def _time(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, timezone.utc)


def _to_status(record: StateRecord, launch: dict) -> ContainerStatus:
    return ContainerStatus(
        id=record.id, pod_uid=launch["pod_uid"], name=launch["name"], state=record.state.value,
        pid=record.pid if record.state is State.RUNNING else None,
        created_at=_time(record.created_at), started_at=_time(record.started_at),
        finished_at=_time(record.finished_at), exit_code=record.exit_code, signal=record.signal,
        oom_killed=record.oom_killed, reason=record.reason, message=record.message,
        log_path=Path(launch["log_path"]))


def _watch_fd(record: StateRecord | None) -> int | None:
    """A pidfd that becomes readable when the container's exit is recorded: the supervisor's,
    or the container's own if its supervisor is gone."""
    if record is None:
        return None
    for pid, started in ((record.supervisor_pid, record.supervisor_start), (record.pid, record.pid_start)):
        if pid and started is not None:
            fd = linux.open_pidfd(pid, started)
            if fd is not None:
                return fd
    return None


def _signal(record: StateRecord | None, sig: int) -> None:
    """Signal the container's process 1 through a pidfd, so a recycled PID is never hit."""
    if record is None or record.pid is None or record.pid_start is None:
        return
    fd = linux.open_pidfd(record.pid, record.pid_start)
    if fd is None:
        return
    try:
        signals.pidfd_send_signal(fd, sig)
    except ProcessLookupError:
        pass
    finally:
        os.close(fd)
