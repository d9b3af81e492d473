"""A local cluster in the background: what `ctl cluster up` starts and `ctl cluster down` removes.

Everything lives in one directory (default ~/.skiff/cluster):

    cluster.yaml          the server address, the LAN and the components started
    pids/<name>.pid       the PID of each component
    logs/<name>.log       its stdout and stderr
    controlplane/         the control plane's state: the embedded etcd's data, the cluster
                          CA (pki/) and the admin credential (admin.conf)
    nodes/<node>/         each node agent's state (images, pods, network, its certificates)

Each `Component` is one process, started detached (its own session, so it
outlives `ctl`): the control plane (API server with an embedded etcd, the
scheduler and controllers), then as root one agent per node, which joins with a
bootstrap token made by `skiff-controlplane token create` (passed in its environment,
never in argv) and the CA's pin, as on real machines. Each agent runs
inside its node's network namespace on a virtual LAN (cli/locallan.py) with
its own state directory and cgroup parent, so N nodes on one machine stay apart
the way N machines would. Without root there are no nodes: a control plane only.

Processes are stopped by PID, never by name: before each signal the PID's
/proc/<pid>/cmdline must still contain the component's own state directory, so
a reused PID is never hit. SIGTERM first; after a timeout SIGKILL, also for any
process left in the component's session (e.g. an etcd whose parent was killed).
Then each node's cleanup (`python -m agent.cleanup`, inside its namespace)
removes its containers, cgroups, mounts and pod network, and the LAN goes.
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
from cli.locallan import POD_RANGE, Lan, service_range_for
from controlplane.client import Client, Credentials, kubeconfig

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

    def components(self, *, host: str, port: int, nodes: list[str], lan: Lan | None) -> list[Component]:
        """What `up` starts, in order: the control plane, then one agent per node, each
        inside its node's network namespace, with cgroups and state named after the
        cluster directory and the node."""
        state = self.root / "controlplane"
        listen = f"{host}:{port}" + (f",{lan.host_ip}:{port}" if lan else "")
        # Services get a /24 of 198.18.0.0/16 beside the LAN (the API's advertised address is the
        # LAN one: the first non-loopback --listen).
        octet = int(hashlib.sha256(str(self.root).encode()).hexdigest()[:2], 16)
        services = ["--service-cluster-ip-range", lan.service_range if lan else service_range_for(octet)]
        out = [Component("controlplane",
                         [sys.executable, "-m", "controlplane.main", "--listen", listen,
                          "--state-dir", str(state), "--cluster-cidr", POD_RANGE, *services],
                         marker=str(state))]
        if lan is None:
            return out
        for index, node in enumerate(nodes, start=1):
            agent_state = self.root / "nodes" / node
            node_ip = lan.node_ip(index)
            out.append(Component(
                f"agent-{node}",
                ["nsenter", f"--net={lan.netns_path(node)}", "--",
                 sys.executable, "-m", "agent.main", "--server", f"{lan.host_ip}:{port}",
                 "--ca-cert-hash", "<ca-cert-hash>",
                 "--node-name", node, "--node-ip", node_ip, "--state-dir", str(agent_state),
                 "--cgroup-parent", f"{self.cgroup_parent}-{node}", "--listen", f"{node_ip}:10250",
                 "--cluster-cidr", POD_RANGE],
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

    @property
    def admin_config(self) -> Path:
        """The control plane's admin credential (it writes it on first start)."""
        return self.root / "controlplane" / "admin.conf"

    def credentials(self) -> Credentials | None:
        try:
            return kubeconfig.load(self.admin_config).credentials
        except kubeconfig.ConfigError:
            return None

    def _join_token(self) -> tuple[str, str]:
        """(token, ca-cert-hash) from `skiff-controlplane token create`, valid long enough to join."""
        result = subprocess.run([sys.executable, "-m", "controlplane.main", "token", "--state-dir",
                                 str(self.root / "controlplane"), "create", "--ttl", "1h",
                                 "--description", "ctl cluster up"],
                                capture_output=True, text=True, env=_env(), timeout=60)
        if result.returncode != 0:
            raise CliError(f"cannot create a join token: {result.stderr.strip()}")
        words = result.stdout.split()
        return words[words.index("--token") + 1], words[words.index("--ca-cert-hash") + 1]

    def _state(self) -> dict:
        try:
            data = yaml.safe_load(self.state_file.read_text())
        except (OSError, yaml.YAMLError):
            return {}
        return data if isinstance(data, dict) else {}

    # -- up --

    def lan(self) -> Lan | None:
        record = self._state().get("lan")
        return Lan.from_record(record) if record else None

    def node_names(self) -> list[str]:
        return list(self._state().get("nodes") or [])

    def start(self, *, host: str, port: int, nodes: int, timeout: float) -> tuple[str, list[Started]]:
        """Start every component detached and wait until the API server answers
        (and, with nodes, until every node is Ready)."""
        if port_in_use(host, port):
            raise CliError(f"{host}:{port} is already in use; choose another port with --port")
        server = f"{host}:{port}"
        names = [f"node-{i}" for i in range(1, nodes + 1)] if os.geteuid() == 0 else []
        lan = Lan.for_directory(self.root) if names else None
        components = self.components(host=host, port=port, nodes=names, lan=lan)
        for d in (self.pids, self.logs):
            d.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(yaml.safe_dump({
            "server": server,
            **({"lan": lan.record(), "nodes": names} if lan else {}),
            "components": [{"name": c.name, "argv": c.argv, "marker": c.marker} for c in components]},
            sort_keys=False))
        env = _env()
        started: list[Started] = []
        procs: list[subprocess.Popen] = []

        def launch(component: Component, extra_env: dict[str, str] | None = None) -> None:
            with open(self.logs / f"{component.name}.log", "ab") as log:
                proc = subprocess.Popen(component.argv, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, cwd=self.root, env={**env, **(extra_env or {})},
                                        start_new_session=True)
            procs.append(proc)
            (self.pids / f"{component.name}.pid").write_text(f"{proc.pid}\n")
            started.append(Started(component, proc.pid))
        try:
            if lan is not None:
                lan.create()
                for index, name in enumerate(names, start=1):
                    lan.add_node(index, name)
            deadline = time.monotonic() + timeout
            launch(components[0])
            self._wait_ready(server, procs, components[:1], timeout, nodes=[])
            if len(components) > 1:
                token, ca_hash = self._join_token()
                for component in components[1:]:
                    argv = [ca_hash if a == "<ca-cert-hash>" else a for a in component.argv]
                    launch(Component(component.name, argv, component.marker), {"SKIFF_JOIN_TOKEN": token})
                self._wait_ready(server, procs, components, max(deadline - time.monotonic(), 5.0), nodes=names)
        except (CliError, KeyboardInterrupt):
            self.stop_processes(started)  # the logs stay in the directory for a look
            self.cleanup_nodes()
            raise
        return server, started

    def _wait_ready(self, server: str, procs: list[subprocess.Popen], components: list[Component],
                    timeout: float, *, nodes: list[str]) -> None:
        deadline = time.monotonic() + timeout
        waiting_for = "the API server"
        while True:
            for proc, component in zip(procs, components):
                if proc.poll() is not None:
                    raise CliError(f"{component.name} exited with status {proc.returncode} while starting; "
                                   f"last lines of {self.logs / (component.name + '.log')}:",
                                   detail=self.log_tail(component.name))
            credentials = self.credentials()
            if credentials is not None and api_ready(server, credentials):
                waiting_for = f"nodes {', '.join(nodes)} to become Ready"
                if not nodes or nodes_ready(server, nodes, credentials):
                    return
            if time.monotonic() >= deadline:
                last = "controlplane" if waiting_for == "the API server" else components[-1].name
                raise CliError(f"gave up waiting for {waiting_for} after {timeout:.0f}s; "
                               f"last lines of {self.logs / (last + '.log')}:",
                               detail=self.log_tail(last))
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

    def cleanup_nodes(self) -> list[str]:
        """After the agents stopped: each node's containers, cgroups, mounts and pod network
        (run inside the node's namespace while it exists), then the node namespaces and the LAN."""
        problems = []
        lan = self.lan()
        recorded = {c["name"]: c for c in self._state().get("components", [])}
        names = self.node_names()
        for index, node in enumerate(names, start=1):
            argv = recorded.get(f"agent-{node}", {}).get("argv")
            if not argv:
                continue
            state = argv[argv.index("--state-dir") + 1]
            parent = argv[argv.index("--cgroup-parent") + 1]
            command = [sys.executable, "-m", "agent.cleanup", "--state-dir", state, "--cgroup-parent", parent]
            if lan is not None and lan.netns_path(node).exists():
                command = ["nsenter", f"--net={lan.netns_path(node)}", "--", *command]
            result = subprocess.run(command, capture_output=True, text=True,
                                    env={**os.environ, "PYTHONPATH": str(SOURCE_ROOT)})
            if result.returncode != 0:
                problems.append(f"cleaning up {node}: {result.stderr.strip()}")
            if lan is not None:
                lan.remove_node(index, node)
        if lan is not None:
            lan.remove()
            problems += [f"still there: {left}" for left in lan.leftovers(names)]
        return problems

    def stop(self, *, timeout: float = 15.0) -> list[Started]:
        recorded = self.recorded()
        stopped = self.stop_processes(recorded, timeout=timeout)
        # Containers outlive their agent by design; the agent's own cleanup command
        # kills them and removes their cgroups, mounts and network.
        if problems := self.cleanup_nodes():
            raise CliError("the cluster's processes stopped, but: " + "; ".join(problems))
        shutil.rmtree(self.root, ignore_errors=True)
        return stopped


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SOURCE_ROOT),
                                                                   os.environ.get("PYTHONPATH")]))}


def nodes_ready(server: str, names: list[str], credentials: Credentials) -> bool:
    """Every named node is registered and Ready (its agent is up and renewing its Lease)."""
    async def check() -> bool:
        async with Client(server, credentials=credentials, timeout=2) as c:
            for name in names:
                node = await c.get("nodes", name)
                conditions = (node.get("status") or {}).get("conditions") or []
                if not any(x.get("type") == "Ready" and x.get("status") == "True" for x in conditions):
                    return False
                if not (node.get("spec") or {}).get("podCIDR"):
                    return False    # the IPAM controller has not given it its pod subnet yet
            return True
    try:
        return asyncio.run(check())
    except Exception:
        return False


def api_ready(server: str, credentials: Credentials) -> bool:
    """The API server answers and has created the default namespace."""
    async def check() -> bool:
        async with Client(server, credentials=credentials, timeout=2) as c:
            await c.get("namespaces", "default")
            return True
    try:
        return asyncio.run(check())
    except Exception:
        return False
