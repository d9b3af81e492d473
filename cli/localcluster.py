"""A local cluster in the background: what `ctl cluster up` starts and `ctl cluster down` removes.

Everything lives in one directory (default ~/.skiff/cluster):

    cluster.yaml          the server address, the LAN and the components started
    pids/<name>.pid       the PID of each component
    pids/<name>.history   every PID and start time it ever had (for `down`)
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

`up` on an existing cluster restarts whichever components are down (a
control plane killed with -9, an agent that crashed) with their recorded
command lines, and says which it restarted and which were running.

Processes are stopped by PID, never by name: before each signal the PID's
/proc/<pid>/cmdline must still contain the component's own state directory
(and its start time must be the recorded one), so a reused PID is never hit.
Every PID any `up` started is kept in pids/<name>.history, so `down` also
stops what a previous `up` started and a later one replaced — and the etcd a
control plane recorded in its state directory (etcd.pid), should it have
outlived its parent. SIGTERM first; after a timeout SIGKILL, also for any
process left in a component's session that carries its state directory.
Then each node's cleanup (`python -m agent.cleanup`, inside its namespace)
removes its containers, cgroups, mounts and pod network, and the LAN goes.
"""

from __future__ import annotations

import errno
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
REGISTRY_BINARY = "/usr/bin/docker-registry"     # Debian's docker-registry (distribution 2.x), for `up --registry`
REGISTRY_PORT = 5000


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


def start_time(pid: int) -> int:
    """The process's start time in clock ticks since boot (0 if it is gone)."""
    fields = _stat(pid)
    return int(fields[19]) if len(fields) > 19 else 0


def is_ours(pid: int, marker: str, started: int = 0) -> bool:
    """The process is alive and still the one we started (not a reused PID): its command
    line holds the marker and, when known, it started when we recorded."""
    return alive(pid) and marker in _cmdline(pid) and (not started or start_time(pid) == started)


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
    """Something listens on HOST:PORT (an address not made yet, as the LAN's before `up`, is free)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.errno != errno.EADDRNOTAVAIL
    return False


# ---- the cluster ----

class LocalCluster:
    def __init__(self, root: Path | str | None = None):
        self.root = Path(root or DEFAULT_DIR).expanduser().resolve()
        self.pids = self.root / "pids"
        self.logs = self.root / "logs"
        self.state_file = self.root / "cluster.yaml"

    def components(self, *, host: str, port: int, nodes: list[str], lan: Lan | None,
                   dns_upstreams: list[str] | None = None, registries: Path | None = None) -> list[Component]:
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
                 "--cluster-cidr", POD_RANGE,
                 *(["--dns-upstream", ",".join(dns_upstreams)] if dns_upstreams else []),
                 *(["--registries-config", str(registries)] if registries else [])],
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

    def _record_pid(self, component: Component, pid: int) -> None:
        (self.pids / f"{component.name}.pid").write_text(f"{pid}\n")
        with open(self.pids / f"{component.name}.history", "a") as history:
            history.write(f"{pid} {start_time(pid)}\n")

    def ever_started(self, component: Component) -> list[tuple[int, int]]:
        """(pid, start time) of every process started for the component, by any `up`,
        plus the etcd a control plane recorded in its state directory."""
        out = []
        try:
            for line in (self.pids / f"{component.name}.history").read_text().splitlines():
                pid, started = line.split()
                out.append((int(pid), int(started)))
        except (OSError, ValueError):
            pass
        if component.name == "controlplane":
            try:
                out.append((int((Path(component.marker) / "etcd.pid").read_text().strip()), 0))
            except (OSError, ValueError):
                pass
        return out

    def _spawn(self, component: Component, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        with open(self.logs / f"{component.name}.log", "ab") as log:
            proc = subprocess.Popen(component.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=self.root, env={**_env(), **(extra_env or {})}, start_new_session=True)
        self._record_pid(component, proc.pid)
        return proc

    def registry_address(self) -> str | None:
        """HOST:PORT of the cluster's own registry (`up --registry`), if it has one."""
        return self._state().get("registry")

    def registry_component(self, listen_host: str) -> tuple[Component, str]:
        """Debian's docker-registry (distribution 2.x) on LISTEN_HOST:5000, storage in the cluster
        directory: images pushed there (`skopeo copy ... docker://HOST:5000/app:latest`) are
        pulled by the agents, `:latest` included (imagePullPolicy Always)."""
        if not Path(REGISTRY_BINARY).exists():
            raise CliError(f"--registry needs {REGISTRY_BINARY}: apt-get install docker-registry")
        address = f"{listen_host}:{REGISTRY_PORT}"
        if port_in_use(listen_host, REGISTRY_PORT):
            raise CliError(f"--registry: {address} is already in use")
        directory = self.root / "registry"
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "config.yml"
        config.write_text("version: 0.1\nlog: {level: warn, accesslog: {disabled: true}}\n"
                          f"storage: {{filesystem: {{rootdirectory: {directory / 'storage'}}}, "
                          f"delete: {{enabled: true}}}}\n"
                          f"http: {{addr: '{address}', secret: {os.urandom(16).hex()}}}\n")
        return Component("registry", [REGISTRY_BINARY, "serve", str(config)], marker=str(config)), address

    def _join(self, agents: list[Component]) -> list[tuple[Component, dict[str, str]]]:
        """The agents' command lines with the cluster's CA hash, and a join token in their
        environment (an agent that joined before keeps its certificate and ignores it)."""
        if not agents:
            return []
        token, ca_hash = self._join_token()
        return [(Component(c.name, [ca_hash if a == "<ca-cert-hash>" else a for a in c.argv], c.marker),
                 {"SKIFF_JOIN_TOKEN": token}) for c in agents]

    def restart(self, *, timeout: float) -> tuple[list[Started], list[Started]]:
        """Start again whichever recorded components are not running (in start order, with
        their recorded command lines; the LAN and node namespaces are made again if gone)
        and wait until healthy. Returns (restarted, already running)."""
        recorded = self.recorded()
        info = self._state()
        components = [Component(c["name"], list(c["argv"]), c["marker"]) for c in info.get("components", [])]
        pids = {s.component.name: s.pid for s in recorded}
        running = [Started(c, pids[c.name]) for c in components
                   if c.name in pids and is_ours(pids[c.name], c.marker)]
        down = [c for c in components if c.name not in {s.component.name for s in running}]
        if not down:
            return [], running
        names = self.node_names()
        lan = self.lan()
        if lan is not None:
            lan.create()
            for index, name in enumerate(names, start=1):
                lan.add_node(index, name)
        for d in (self.pids, self.logs):
            d.mkdir(parents=True, exist_ok=True)
        # A dead control plane's orphaned etcd goes first (the control plane would stop it
        # too, by its etcd.pid). A dead agent's containers stay: the new agent adopts them.
        self.stop_processes([Started(c, pids[c.name]) for c in down if c.name == "controlplane" and c.name in pids])
        deadline = time.monotonic() + timeout
        restarted = [Started(c, self._spawn(c).pid) for c in down if c.name == "controlplane"]
        # Agents join with a token the control plane makes: it must answer first.
        self._wait_ready(self.server(), [], [], timeout, nodes=[], watch={s.component.name: s.pid for s in restarted})
        restarted += [Started(c, self._spawn(c, env).pid) for c, env in
                      self._join([c for c in down if c.name != "controlplane"])]
        self._wait_ready(self.server(), [], [], max(deadline - time.monotonic(), 5.0), nodes=names,
                         watch={s.component.name: s.pid for s in restarted})
        return restarted, running

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

    def start(self, *, host: str, port: int, nodes: int, timeout: float, dns_upstreams: list[str] | None = None,
              registries: dict | None = None, registry: bool = False) -> tuple[str, list[Started]]:
        """Start every component detached and wait until the API server answers
        (and, with nodes, until every node is Ready)."""
        if port_in_use(host, port):
            raise CliError(f"{host}:{port} is already in use; choose another port with --port")
        if port_in_use(host, port + 1):   # the Kubernetes REST API (kubectl's) listens on the next port
            raise CliError(f"{host}:{port + 1} (the REST API for kubectl, --port + 1) is already in use; "
                           f"choose another port with --port")
        server = f"{host}:{port}"
        names = [f"node-{i}" for i in range(1, nodes + 1)] if os.geteuid() == 0 else []
        lan = Lan.for_directory(self.root) if names else None
        registries_file = None
        registry_component, registry_address = None, ""
        if registry:
            registry_component, registry_address = self.registry_component(lan.host_ip if lan else host)
            address = registry_address
            # plain http to the cluster's own registry (agent/images/mirrors.py: `insecure`)
            registries = dict(registries or {})
            registries.setdefault("configs", {}).setdefault(address, {})["insecure"] = True
        if registries:      # every agent reads the same mirrors file (agent/images/mirrors.py)
            self.root.mkdir(parents=True, exist_ok=True)
            registries_file = self.root / "registries.yaml"
            registries_file.write_text(yaml.safe_dump(registries, sort_keys=False))
        components = self.components(host=host, port=port, nodes=names, lan=lan, dns_upstreams=dns_upstreams,
                                     registries=registries_file)
        if registry_component is not None:   # started with the agents, stopped and restarted like them
            components.append(registry_component)
        for d in (self.pids, self.logs):
            d.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(yaml.safe_dump({
            "server": server,
            **({"lan": lan.record(), "nodes": names} if lan else {}),
            **({"registry": registry_address} if registry_address else {}),
            "components": [{"name": c.name, "argv": c.argv, "marker": c.marker} for c in components]},
            sort_keys=False))
        started: list[Started] = []
        procs: list[subprocess.Popen] = []

        def launch(component: Component, extra_env: dict[str, str] | None = None) -> None:
            proc = self._spawn(component, extra_env)
            procs.append(proc)
            started.append(Started(component, proc.pid))
        try:
            if lan is not None:
                lan.create()
                for index, name in enumerate(names, start=1):
                    lan.add_node(index, name)
            deadline = time.monotonic() + timeout
            launch(components[0])
            self._wait_ready(server, procs, components[:1], timeout, nodes=[])
            for component, extra_env in self._join(components[1:]):
                launch(component, extra_env)
            if len(components) > 1:
                self._wait_ready(server, procs, components, max(deadline - time.monotonic(), 5.0), nodes=names)
        except (CliError, KeyboardInterrupt):
            self.stop_processes(started)  # the logs stay in the directory for a look
            self.cleanup_nodes()
            raise
        return server, started

    def _wait_ready(self, server: str, procs: list[subprocess.Popen], components: list[Component],
                    timeout: float, *, nodes: list[str], watch: dict[str, int] | None = None) -> None:
        """Wait for the API server and the nodes; fail at once if a process we started
        (procs, or by PID: watch) exits meanwhile."""
        deadline = time.monotonic() + timeout
        waiting_for = "the API server"
        while True:
            for proc, component in zip(procs, components):
                if proc.poll() is not None:
                    raise CliError(f"{component.name} exited with status {proc.returncode} while starting; "
                                   f"last lines of {self.logs / (component.name + '.log')}:",
                                   detail=self.log_tail(component.name))
            for name, pid in (watch or {}).items():
                if not alive(pid):
                    raise CliError(f"{name} exited while starting; last lines of {self.logs / (name + '.log')}:",
                                   detail=self.log_tail(name))
            credentials = self.credentials()
            if credentials is not None and api_ready(server, credentials):
                waiting_for = f"nodes {', '.join(nodes)} to become Ready"
                if not nodes or nodes_ready(server, nodes, credentials):
                    return
            if time.monotonic() >= deadline:
                last = "controlplane" if waiting_for == "the API server" or not components else components[-1].name
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
        """SIGTERM each component (last started first), then SIGKILL what is left: its
        session, and every earlier process of it any `up` started (orphans included)."""
        stopped = []
        for s in reversed(started):
            if is_ours(s.pid, s.component.marker):
                _signal(s.pid, signal.SIGTERM)
                stopped.append(s)
        # A session is known to be ours if its leader was ours just now; the session of a
        # leader that died earlier may by now be another program's (a reused PID).
        live = {s.pid for s in stopped}
        wait_gone([s.pid for s in stopped], timeout)
        for s in started:
            marker = s.component.marker
            earlier = [(s.pid, 0), *self.ever_started(s.component)]
            leftovers = [pid for pid, started_at in earlier if is_ours(pid, marker, started_at)]
            for pid, _ in earlier:   # whole sessions we know, else only what carries our state dir
                leftovers += [p for p in session_members(pid) if pid in live or marker in _cmdline(p)]
            if is_ours(s.pid, marker):
                leftovers.append(s.pid)
            leftovers = list(dict.fromkeys(leftovers))
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


def _run_check(check) -> bool:
    """Run one readiness check on the process's one event loop (`up` polls many times)."""
    from cli.session import run_async
    return run_async(check())


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
        return _run_check(check)
    except Exception:
        return False


def api_ready(server: str, credentials: Credentials) -> bool:
    """The API server answers and has created the default namespace."""
    async def check() -> bool:
        async with Client(server, credentials=credentials, timeout=2) as c:
            await c.get("namespaces", "default")
            return True
    try:
        return _run_check(check)
    except Exception:
        return False
