"""A local cluster in the background: what `ctl cluster up` starts and `ctl cluster down` removes.

Everything lives in one directory (default ~/.skiff/cluster):

    cluster.yaml          the server address and the components started
    pids/<name>.pid       the PID of each component
    logs/<name>.log       its stdout and stderr
    controlplane/         the control plane's state: the embedded etcd's data

Each `Component` is one process, started detached (its own session, so it
outlives `ctl`). Today there is one, the control plane (API server with an
embedded etcd); node agents will be added to `components()` beside it and are
stopped first on the way down.

Processes are stopped by PID, never by name: before each signal the PID's
/proc/<pid>/cmdline must still contain the component's own state directory, so
a reused PID is never hit. SIGTERM first; after a timeout SIGKILL, also for any
process left in the component's session (e.g. an etcd whose parent was killed).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from cli.errors import CliError
from controlplane.client import Client

DEFAULT_DIR = Path("~/.skiff/cluster")
SOURCE_ROOT = Path(__file__).resolve().parent.parent  # the directory holding cli/, controlplane/, api/


@dataclass(frozen=True)
class Component:
    """One process of the local cluster."""

    name: str            # file name stem for pids/ and logs/: "controlplane", later "agent-<node>"
    argv: list[str]
    marker: str          # text its /proc/<pid>/cmdline must contain (its own state directory)


@dataclass
class Started:
    component: Component
    pid: int


# ---- processes by PID ----

def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _stat(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name: [state, ppid, pgrp, session, ...]."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return text[text.rindex(")") + 2:].split()


def alive(pid: int) -> bool:
    fields = _stat(pid)
    return bool(fields) and fields[0] not in ("Z", "X")


def is_ours(pid: int, marker: str) -> bool:
    """The process is alive and still the one we started (not a reused PID)."""
    return alive(pid) and marker in _cmdline(pid)


def session_members(session_id: int) -> list[int]:
    """Live processes in a session (the components were started as session leaders)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if len(fields) > 3 and fields[3] == str(session_id) and fields[0] not in ("Z", "X"):
                members.append(int(entry.name))
    return members


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in pids if alive(p)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


# ---- the cluster ----

class LocalCluster:
    def __init__(self, root: Path | str | None = None):
        self.root = Path(root or DEFAULT_DIR).expanduser().resolve()
        self.pids = self.root / "pids"
        self.logs = self.root / "logs"
        self.state_file = self.root / "cluster.yaml"

    def components(self, *, host: str, port: int) -> list[Component]:
        """What `up` starts, in order: the control plane, then (as root) an agent that makes
        this machine a node. Its cgroups and state are named after the cluster directory."""
        state = self.root / "controlplane"
        out = [Component("controlplane",
                         [sys.executable, "-m", "controlplane.main", "--listen", f"{host}:{port}",
                          "--state-dir", str(state)],
                         marker=str(state))]
        if os.geteuid() == 0:
            agent_state = self.root / "agent"
            out.append(Component(
                "agent",
                [sys.executable, "-m", "agent.main", "--server", f"{host}:{port}",
                 "--node-name", socket.gethostname().lower(), "--state-dir", str(agent_state),
                 "--cgroup-parent", self.cgroup_parent, "--listen", f"127.0.0.1:{free_port()}"],
                marker=str(agent_state)))
        return out

    @property
    def cgroup_parent(self) -> str:
        return "skiff-" + hashlib.sha256(str(self.root).encode()).hexdigest()[:8]

    # -- records --

    def recorded(self) -> list[Started]:
        """Components with a PID file, in start order."""
        info = self._state()
        components = [Component(c["name"], list(c["argv"]), c["marker"]) for c in info.get("components", [])]
        out = []
        for component in components:
            try:
                pid = int((self.pids / f"{component.name}.pid").read_text().strip())
            except (OSError, ValueError):
                continue
            out.append(Started(component, pid))
        return out

    def running(self) -> list[Started]:
        return [s for s in self.recorded() if is_ours(s.pid, s.component.marker)]

    def server(self) -> str:
        return str(self._state().get("server", ""))

    def _state(self) -> dict:
        try:
            data = yaml.safe_load(self.state_file.read_text())
        except (OSError, yaml.YAMLError):
            return {}
        return data if isinstance(data, dict) else {}

    # -- up --

    def start(self, *, host: str, port: int, timeout: float) -> tuple[str, list[Started]]:
        """Start every component detached and wait until the API server answers."""
        if port_in_use(host, port):
            raise CliError(f"{host}:{port} is already in use; choose another port with --port")
        server = f"{host}:{port}"
        components = self.components(host=host, port=port)
        for d in (self.pids, self.logs):
            d.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(yaml.safe_dump({
            "server": server,
            "components": [{"name": c.name, "argv": c.argv, "marker": c.marker} for c in components]},
            sort_keys=False))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SOURCE_ROOT),
                                                                          os.environ.get("PYTHONPATH")]))}
        started: list[Started] = []
        procs: list[subprocess.Popen] = []
        for component in components:
            with open(self.logs / f"{component.name}.log", "ab") as log:
                proc = subprocess.Popen(component.argv, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, cwd=self.root, env=env, start_new_session=True)
            procs.append(proc)
            (self.pids / f"{component.name}.pid").write_text(f"{proc.pid}\n")
            started.append(Started(component, proc.pid))
        try:
            self._wait_ready(server, procs, components, timeout)
        except (CliError, KeyboardInterrupt):
            self.stop_processes(started)  # the logs stay in the directory for a look
            raise
        return server, started

    def _wait_ready(self, server: str, procs: list[subprocess.Popen], components: list[Component],
                    timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for proc, component in zip(procs, components):
                if proc.poll() is not None:
                    raise CliError(f"{component.name} exited with status {proc.returncode} while starting; "
                                   f"last lines of {self.logs / (component.name + '.log')}:",
                                   detail=self.log_tail(component.name))
            if api_ready(server):
                return
            if time.monotonic() >= deadline:
                raise CliError(f"the API server at {server} did not become ready within {timeout:.0f}s; "
                               f"last lines of {self.logs / 'controlplane.log'}:",
                               detail=self.log_tail("controlplane"))
            time.sleep(0.2)

    def log_tail(self, name: str, lines: int = 15) -> str:
        try:
            text = (self.logs / f"{name}.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join("    " + line for line in text.splitlines()[-lines:])

    # -- down --

    def stop_processes(self, started: list[Started], *, timeout: float = 15.0) -> list[Started]:
        """SIGTERM each component (last started first), then SIGKILL what is left of its session."""
        stopped = []
        for s in reversed(started):
            if is_ours(s.pid, s.component.marker):
                _signal(s.pid, signal.SIGTERM)
                stopped.append(s)
        wait_gone([s.pid for s in stopped], timeout)
        for s in started:
            leftovers = [p for p in session_members(s.pid)]
            if is_ours(s.pid, s.component.marker) and s.pid not in leftovers:
                leftovers.append(s.pid)
            for pid in leftovers:
                _signal(pid, signal.SIGTERM)
            for pid in wait_gone(leftovers, 5.0):
                _signal(pid, signal.SIGKILL)
            if left := wait_gone(leftovers, 5.0):
                raise CliError(f"processes {left} of {s.component.name} did not stop")
        return stopped

    def stop(self, *, timeout: float = 15.0) -> list[Started]:
        recorded = self.recorded()
        stopped = self.stop_processes(recorded, timeout=timeout)
        agents = [s.component for s in recorded if s.component.name.startswith("agent")]
        for component in agents:
            # Containers outlive their agent by design; the agent's own cleanup command
            # kills them and removes their cgroups, mounts and network.
            argv = component.argv
            state = argv[argv.index("--state-dir") + 1]
            parent = argv[argv.index("--cgroup-parent") + 1]
            result = subprocess.run([sys.executable, "-m", "agent.cleanup", "--state-dir", state,
                                     "--cgroup-parent", parent], capture_output=True, text=True,
                                    env={**os.environ, "PYTHONPATH": str(SOURCE_ROOT)})
            if result.returncode != 0:
                raise CliError(f"cleaning up {component.name} failed: {result.stderr.strip()}")
        shutil.rmtree(self.root, ignore_errors=True)
        return stopped


def api_ready(server: str) -> bool:
    """The API server answers and has created the default namespace."""
    async def check() -> bool:
        async with Client(server, timeout=2) as c:
            await c.get("namespaces", "default")
            return True
    try:
        return asyncio.run(check())
    except Exception:
        return False
