"""Helpers for tests that run real processes: free ports, waiting with deadlines,
stopping by PID, etcd and the control plane on loopback. Shared by fixtures in
tests/conftest.py, by e2e tests and by the benchmarks (bench/common.py builds its
etcd and control plane on these: one launcher for both)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition: Callable[[], object], *, timeout: float = 10.0, interval: float = 0.05,
             what: str = "condition") -> object:
    """Poll until condition() is truthy; return its value or fail after the deadline."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # keep polling; report the last failure
            last_exc = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}"
                       + (f" (last error: {last_exc!r})" if last_exc else ""))


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM by PID, then SIGKILL after the timeout."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def run_bench(script: str, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Run bench/<script> with args to the end; stdout and stderr together in .stdout.

    A bench starts its own etcd, API server and load processes; it runs in its own
    process group so that, should it hang, all of them can be stopped by that group's
    id (SIGTERM first: the bench stops what it started). A hang fails the test."""
    import pytest
    proc = subprocess.Popen([sys.executable, str(REPO / "bench" / script), *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        pytest.fail(f"bench/{script} {' '.join(args)} did not finish in {timeout:.0f}s:\n{out[-3000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


class Etcd:
    """A real etcd on free loopback ports with its data in a temp dir."""

    def __init__(self, data_dir: Path):
        binary = shutil.which("etcd")
        if not binary:
            raise RuntimeError("etcd not found: apt-get install etcd-server")
        self.data_dir = data_dir
        self.client_port, self.peer_port = free_port(), free_port()
        client, peer = f"http://127.0.0.1:{self.client_port}", f"http://127.0.0.1:{self.peer_port}"
        self.args = [binary, "--name", "test", "--data-dir", str(data_dir), "--listen-client-urls", client,
                     "--advertise-client-urls", client, "--listen-peer-urls", peer,
                     "--initial-advertise-peer-urls", peer, "--initial-cluster", f"test={peer}",
                     "--log-level", "error", "--logger", "zap"]
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    def start(self) -> "Etcd":
        self.log_path = self.data_dir.parent / f"etcd-{self.client_port}.log"
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        wait_for(lambda: self.proc.poll() is not None or port_open(self.client_port), timeout=20,
                 what="etcd to listen")
        if self.proc.poll() is not None:
            raise RuntimeError(f"etcd exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
        return self

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc)
            self.log.close()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


class EtcdCluster:
    """Real etcd members (3 by default) forming one cluster on loopback ports."""

    def __init__(self, base: Path, size: int = 3):
        binary = shutil.which("etcd")
        if not binary:
            raise RuntimeError("etcd not found: apt-get install etcd-server")
        self.base = base
        self.names = [f"m{i}" for i in range(size)]
        self.client_ports = {n: free_port() for n in self.names}
        self.peer_ports = {n: free_port() for n in self.names}
        cluster = ",".join(f"{n}=http://127.0.0.1:{self.peer_ports[n]}" for n in self.names)
        self.args = {}
        for n in self.names:
            client, peer = f"http://127.0.0.1:{self.client_ports[n]}", f"http://127.0.0.1:{self.peer_ports[n]}"
            self.args[n] = [binary, "--name", n, "--data-dir", str(base / n), "--listen-client-urls", client,
                            "--advertise-client-urls", client, "--listen-peer-urls", peer,
                            "--initial-advertise-peer-urls", peer, "--initial-cluster", cluster,
                            "--initial-cluster-state", "new", "--initial-cluster-token", base.name,
                            "--log-level", "error", "--logger", "zap"]
        self.procs: dict[str, subprocess.Popen] = {}

    @property
    def endpoints(self) -> str:
        return ",".join(f"127.0.0.1:{self.client_ports[n]}" for n in self.names)

    def endpoint(self, name: str) -> str:
        return f"127.0.0.1:{self.client_ports[name]}"

    def start(self, name: str | None = None) -> "EtcdCluster":
        self.base.mkdir(parents=True, exist_ok=True)
        for n in [name] if name else self.names:
            with open(self.base / f"{n}.log", "ab") as log:
                self.procs[n] = subprocess.Popen(self.args[n], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        for n in [name] if name else self.names:
            wait_for(lambda: port_open(self.client_ports[n]), timeout=60, what=f"etcd member {n} to listen")
        return self

    def kill(self, name: str) -> None:
        proc = self.procs.get(name)
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait(5)

    def stop(self) -> None:
        for proc in self.procs.values():
            stop_process(proc)


class ControlPlane:
    """A real `skiff-controlplane` process (the API server) on a free port, over TLS.

    `credentials` is the administrator's (its admin.conf), for `Client(cp.address, credentials=cp.credentials,
    credentials=cp.credentials)`; with "--insecure" among the extra args it is plain text."""

    def __init__(self, state_dir: Path, *, etcd_endpoints: str = "", extra_args: list[str] | None = None,
                 port: int | None = None):
        self.state_dir = state_dir
        self.port = port or free_port()
        # The Kubernetes REST API (kubectl's) on a free port of its own, not the default port + 1.
        self.rest_port = free_port()
        self.args = [sys.executable, "-m", "controlplane.main", "--listen", f"127.0.0.1:{self.port}",
                     "--rest-listen", f"127.0.0.1:{self.rest_port}", "--state-dir", str(state_dir),
                     *(extra_args or [])]
        if etcd_endpoints:
            self.args += ["--etcd-endpoints", etcd_endpoints]
        self.proc: subprocess.Popen | None = None
        self.insecure = "--insecure" in self.args
        self._credentials = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def credentials(self):  # -> controlplane.client.Credentials
        """The administrator's credential (admin.conf, written at the first start)."""
        from controlplane.client import Credentials, kubeconfig
        if self.insecure:
            return Credentials.plaintext()
        if self._credentials is None:
            self._credentials = kubeconfig.load(self.state_dir / "admin.conf").credentials
        return self._credentials

    @property
    def admin_config(self) -> Path:
        return self.state_dir / "admin.conf"

    @property
    def kubeconfig(self) -> Path:
        """The administrator's kubeconfig for the real kubectl (the REST API)."""
        return self.state_dir / "kubeconfig"

    def join_args(self, ttl: str = "1h", server: str = "") -> list[str]:
        """`--server ... --token ... --ca-cert-hash ...` for an agent, from a new bootstrap token
        made with `skiff-controlplane token create`, as an operator would. `server`: the address
        the agent dials, when not this machine's loopback (an agent in a VM)."""
        out = subprocess.run([sys.executable, "-m", "controlplane.main", "token", "--state-dir", str(self.state_dir),
                              "create", "--ttl", ttl, "--server", server or self.address],
                             capture_output=True, text=True, cwd=REPO, timeout=30,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
        if out.returncode != 0:
            raise RuntimeError(f"token create failed: {out.stderr}")
        return out.stdout.split()[1:]

    def start(self, timeout: float = 30.0) -> "ControlPlane":
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.state_dir / "controlplane.log"
        self.log = open(self.log_path, "ab")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL,
                                     cwd=REPO, env=env)

        def healthy() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"controlplane exited with {self.proc.returncode}: "
                                   f"{self.log_path.read_text()[-2000:]}")
            return port_open(self.port) and self.ready()
        try:
            wait_for(healthy, timeout=timeout, what="the API server to be ready")
        except BaseException:
            self.stop()
            raise
        return self

    def ready(self) -> bool:
        """The default namespace exists: bootstrap has finished. (A blocking gRPC call, so
        it works from inside async tests too.)"""
        import grpc
        from protos import skiff_pb2 as pb, skiff_pb2_grpc as pb_grpc
        if not self.insecure and not self.admin_config.exists():
            return False
        with self.credentials.sync_channel(self.address) as channel:
            try:
                pb_grpc.ApiStub(channel).Get(pb.GetRequest(kind="namespaces", name="default"), timeout=2)
                return True
            except grpc.RpcError:
                return False

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc)
            self.log.close()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


class AgentProcess:
    """A real `skiff-agent` (root) with its state, cgroups and service port kept apart per test.
    It joins `controlplane` with a fresh bootstrap token (TLS, node certificate), as a real
    node does."""

    def __init__(self, state_dir: Path, *, controlplane: ControlPlane, node_name: str, cgroup_parent: str,
                 extra_args: list[str] | None = None):
        self.state_dir = state_dir
        self.node_name = node_name
        self.cgroup_parent = cgroup_parent
        self.port = free_port()
        join = ["--server", controlplane.address, "--insecure"] if controlplane.insecure else controlplane.join_args()
        self.args = [sys.executable, "-m", "agent.main", *join, "--node-name", node_name,
                     "--state-dir", str(state_dir), "--cgroup-parent", cgroup_parent,
                     "--listen", f"127.0.0.1:{self.port}", "--node-ip", "127.0.0.1",
                     # In the host's network namespace: no pod network (it would add a bridge and
                     # routes to this machine); pods get loopback only. Multi-node tests with a pod
                     # network run agents inside their own namespaces (ctl cluster up --nodes N).
                     "--no-network", *(extra_args or [])]
        self.proc: subprocess.Popen | None = None

    def start(self) -> "AgentProcess":
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.state_dir.parent / f"agent-{self.node_name}.log"
        self.log = open(self.log_path, "ab")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL,
                                     cwd=REPO, env=env, start_new_session=True)
        return self

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc)
            self.log.close()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
            self.log.close()


def force_cleanup(state_dir: Path, cgroup_parent: str) -> None:
    """Last-resort cleanup after a node test: kill every process in the test's cgroups,
    unmount everything under its state dir (deepest first), remove the cgroups."""
    from agent.cgroups import open_manager
    try:
        open_manager(parent=cgroup_parent).remove("")
    except Exception:
        pass
    unmount_under(state_dir)


def unmount_under(state_dir: Path) -> list[str]:
    """Detach every mount at or below state_dir, deepest first (a few passes: unmounting one can
    reveal another); return the mount points it unmounted. Shared by the node tests and
    bench/pod_startup.py."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    root = str(state_dir.resolve())
    done = []
    for _ in range(3):
        mounts = [line.split()[1] for line in open("/proc/mounts")]
        targets = sorted((m for m in mounts if m == root or m.startswith(root + "/")), key=len, reverse=True)
        if not targets:
            break
        for target in targets:
            libc.umount2(target.encode(), 2)  # MNT_DETACH
            done.append(target)
    return done


def processes_mentioning(text: str) -> list[int]:
    """PIDs (not zombies) whose command line contains `text`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if text in cmdline and status[status.rindex(")") + 2] not in "ZX":
            found.append(int(entry))
    return found


async def delete_all_pods(cp: "ControlPlane", *, timeout: float = 30.0) -> None:
    """Delete every pod gracefully and wait until they are gone. A graceful delete ends with the
    agent's own final delete, after it stopped and cleaned the pod up, so when this returns the
    node has nothing of them left (and their pod-capacity slots are free)."""
    import asyncio

    from controlplane.client import Client, NotFound
    async with Client(cp.address, credentials=cp.credentials) as c:
        for pod in (await c.list("pods")).items:
            try:
                await c.delete("pods", pod["metadata"]["name"], pod["metadata"]["namespace"], grace_seconds=1)
            except NotFound:
                pass
        deadline = time.monotonic() + timeout
        while left := (await c.list("pods")).items:
            if time.monotonic() > deadline:
                raise AssertionError(f"pods not gone after {timeout}s: {[p['metadata']['name'] for p in left]}")
            await asyncio.sleep(0.1)


async def join_node(cp: ControlPlane, state_dir: Path, node: str, port: int):  # -> (NodeCertificates, NodeIdentity)
    """A node's certificates for an agent service on 127.0.0.1:`port`, got as `skiff-agent` gets
    them at its first start (a bootstrap token, the CA pinned), for tests that serve the agent's
    gRPC service in their own process (`agent_server_tls`)."""
    import asyncio
    from agent.certificates import NodeCertificates
    args = await asyncio.to_thread(cp.join_args)
    certificates = NodeCertificates(state_dir / node, server=cp.address, node_name=node,
                                    agent_address=f"127.0.0.1:{port}")
    identity = await certificates.ensure(token=args[args.index("--token") + 1],
                                         ca_cert_hash=args[args.index("--ca-cert-hash") + 1])
    return certificates, identity


def agent_server_tls(servicer, certificates, identity):  # -> agent.service.AgentServer
    """The agent's gRPC server for `servicer` (an AgentService, or a fake) at the address the
    node's identity recorded (`join_node`), over TLS with the node's serving certificate, to the
    API server only: as a real agent serves. Not started: `.run()`, or `.server.start()`."""
    from agent.service import AgentServer
    return AgentServer(servicer, certificates.agent_address, credentials=certificates.serving_credentials(identity),
                       ca=identity.ca)


class Ctl:
    """`ctl` as a process, with a client config (the cluster's admin credential)."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.env = {**os.environ, "PYTHONPATH": str(REPO), "SKIFF_CONFIG": str(config)}

    def __call__(self, *args: str, stdin: str | None = None, check: bool = True,
                 timeout: float = 120) -> subprocess.CompletedProcess:
        r = subprocess.run([sys.executable, "-m", "cli.main", *args], capture_output=True, text=True, cwd=REPO,
                           env=self.env, input=stdin, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"ctl {' '.join(args)} failed ({r.returncode}): {r.stderr}{r.stdout}")
        return r

    def items(self, *args: str) -> list[dict]:
        """`ctl get ARGS -o json`'s items."""
        return json.loads(self("get", *args, "-o", "json").stdout)["items"]

    def pods(self, selector: str = "") -> list[dict]:
        return self.items("pods", *(["-l", selector] if selector else []))


def http_get(ctl: Ctl, from_pod: str, ip: str, port: int = 8080, *, seconds: int = 5) -> str:
    """A page fetched from inside a pod, or why not."""
    # busybox 1.35 wget crashes with -T (Debian 1.35.0-4), so the timeout comes from `timeout`.
    r = ctl("exec", from_pod, "--", "timeout", str(seconds), "wget", "-q", "-O", "-", f"http://{ip}:{port}/",
            check=False)
    return r.stdout if r.returncode == 0 else f"(wget failed: {r.returncode} {r.stderr.strip()})"
