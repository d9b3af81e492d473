"""A virtual LAN of network namespaces, for the pod network's node tests
(tests/node/test_network.py) and bench/network.py.

    netns <p>lan  bridge lan0
      ├── veth ── netns <p>a  eth0 198.18.0.11/24  NodeNetwork(pod CIDR 198.19.1.0/24): skiff0, nftables
      │             └── pods: netns <p>a-web ...   eth0 198.19.1.x from NodeNetwork.attach
      └── veth ── netns <p>b  eth0 198.18.0.12/24  NodeNetwork(pod CIDR 198.19.2.0/24)

<p> is "skt" + the test process's PID (+ a tag). Only addresses of 198.18.0.0/15.

Each node's NodeNetwork runs on a `NodeThread`: a thread that setns()'s into the
node's namespace and runs an event loop there, as an agent process living in its
node's namespace would (the library works in the namespace of the loop that calls
it). Servers in pods are real processes started with nsenter (tests/nettool.py);
clients can be sockets the test thread opens inside a namespace (`open_socket`).
`Lab.close()` stops every process by PID and every thread, and deletes every
namespace; `Lab.leftovers()` lists whatever is still there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import selectors
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Coroutine, Iterator, TypeVar

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from agent.network import NodeNetwork  # noqa: E402
from agent.network.netns import in_netns, setns  # noqa: E402

NETTOOL = Path(__file__).resolve().parent / "nettool.py"
LAN_PREFIX = "198.18.0"
CLUSTER_CIDR = "198.19.0.0/16"
T = TypeVar("T")


def sh(*argv: str, check: bool = True) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def skip_reason() -> str | None:
    """Why the pod network's node tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root: creates network namespaces, bridges, veths and nftables tables"
    for tool in ("ip", "nft", "nsenter"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            return f"needs the {tool} program"
    return None


def eventually(condition: Callable[[], T], *, timeout: float = 10.0, what: str = "condition") -> T:
    """Poll `condition` until it returns something truthy (exceptions count as not yet)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                                 + (f" (last error: {last!r})" if last else ""))
        time.sleep(0.02)


@dataclass
class Netns:
    name: str

    @property
    def path(self) -> Path:
        return Path("/run/netns") / self.name

    def ip(self, *args: str) -> str:
        return sh("ip", "-n", self.name, *args)

    def inode(self) -> int:
        return os.stat(self.path).st_ino


class NodeThread:
    """A thread in a network namespace running an event loop; `call` runs a coroutine there."""

    def __init__(self, netns: Netns) -> None:
        self.netns = netns
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, name=f"node-{netns.name}", daemon=True)
        self.thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error

    def _main(self) -> None:
        try:
            fd = os.open(self.netns.path, os.O_RDONLY)
            try:
                setns(fd)               # this thread only, for its whole life
            finally:
                os.close(fd)
            self.loop = asyncio.new_event_loop()
        except BaseException as exc:  # noqa: BLE001 - reported to the constructor
            self._error = exc
            self._ready.set()
            return
        asyncio.set_event_loop(self.loop)
        self._ready.set()
        self.loop.run_forever()
        self.loop.close()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self.loop is not None and self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@dataclass
class Node:
    name: str
    netns: Netns
    ip: str
    pod_cidr: str
    state_dir: Path
    thread: NodeThread
    net: NodeNetwork
    mtu: int | None = None

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return self.thread.call(coro, timeout)

    def new_network(self, **kwargs: Any) -> NodeNetwork:
        """A fresh NodeNetwork on the same state dir (an agent restart); the old one's thread stopped."""
        self.call(self.net.close())
        self.net = NodeNetwork(state_dir=self.state_dir, pod_cidr=self.pod_cidr, cluster_cidr=CLUSTER_CIDR,
                               node_ip=self.ip, mtu=self.mtu, **kwargs)
        return self.net


@dataclass
class Pod:
    name: str
    uid: str
    netns: Netns
    node: Node
    manifest: dict[str, Any]
    ip: str | None = None


def pod_manifest(name: str, uid: str, ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default", "uid": uid},
            "spec": {"containers": [{"name": "c", "image": "busybox", "ports": ports or []}]}}


@dataclass
class Lab:
    tmp: Path
    tag: str = ""
    prefix: str = ""
    namespaces: list[Netns] = field(default_factory=list)
    inodes: set[int] = field(default_factory=set)
    procs: list[subprocess.Popen] = field(default_factory=list)
    nodes: dict[str, Node] = field(default_factory=dict)
    host_before: tuple[str, str] = ("", "")

    def __post_init__(self) -> None:
        self.prefix = self.prefix or f"skt{os.getpid()}{self.tag}"
        self.host_before = host_snapshot()
        self.lan = self.netns("lan")
        self.lan.ip("link", "add", "lan0", "type", "bridge")
        self.lan.ip("link", "set", "lan0", "up")

    # -- building --------------------------------------------------------------------------

    def netns(self, suffix: str) -> Netns:
        ns = Netns(f"{self.prefix}{suffix}")
        sh("ip", "netns", "add", ns.name)
        self.namespaces.append(ns)
        self.inodes.add(ns.inode())
        ns.ip("link", "set", "lo", "up")
        return ns

    def add_node(self, name: str, *, number: int, lan_mtu: int = 1500, mtu: int | None = None,
                 pod_cidr: str = "", **net_kwargs: Any) -> Node:
        """Node `name` at 198.18.0.<10+number> with pod CIDR 198.19.<number>.0/24 unless given
        (NodeNetwork made, not set up)."""
        ns = self.netns(name)
        ip, pod_cidr = f"{LAN_PREFIX}.{10 + number}", pod_cidr or f"198.19.{number}.0/24"
        lan_end = f"l{self.prefix[-6:]}{name}"[:15]
        self.lan.ip("link", "add", lan_end, "mtu", str(lan_mtu), "type", "veth", "peer", "name", "eth0",
                    "mtu", str(lan_mtu), "netns", ns.name)
        self.lan.ip("link", "set", lan_end, "master", "lan0", "up")
        ns.ip("addr", "add", f"{ip}/24", "dev", "eth0")
        ns.ip("link", "set", "eth0", "up")
        thread = NodeThread(ns)
        state_dir = self.tmp / f"node-{name}"
        net = NodeNetwork(state_dir=state_dir, pod_cidr=pod_cidr, cluster_cidr=CLUSTER_CIDR, node_ip=ip,
                          mtu=mtu, **net_kwargs)
        node = Node(name, ns, ip, pod_cidr, state_dir, thread, net, mtu)
        self.nodes[name] = node
        return node

    def add_pod(self, node: Node, name: str, *, ports: list[dict[str, Any]] | None = None,
                attach: bool = True) -> Pod:
        ns = self.netns(f"{node.name}-{name}")
        pod = Pod(name, f"uid-{self.prefix}-{node.name}-{name}", ns, node,
                  pod_manifest(name, f"uid-{self.prefix}-{node.name}-{name}", ports))
        if attach:
            pod.ip = node.call(node.net.attach(pod.manifest, ns.path))
        return pod

    def delete_netns(self, ns: Netns) -> None:
        sh("ip", "netns", "del", ns.name, check=False)
        if ns in self.namespaces:
            self.namespaces.remove(ns)

    # -- processes and sockets ----------------------------------------------------------------

    def spawn(self, netns: Netns, *args: str, ready_timeout: float = 10.0) -> subprocess.Popen:
        """tests/nettool.py ARGS inside `netns`; returns once it printed "ready"."""
        proc = subprocess.Popen(["nsenter", f"--net={netns.path}", sys.executable, str(NETTOOL), *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.procs.append(proc)
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            if not sel.select(ready_timeout) or proc.stdout.readline().strip() != b"ready":
                proc.kill()
                raise RuntimeError(f"nettool {args} in {netns.name} did not start: {proc.stderr.read1(4000)!r}")
        return proc

    def run_tool(self, netns: Netns, *args: str, timeout: float = 60.0) -> dict[str, Any]:
        """tests/nettool.py client ARGS inside `netns`; its JSON result."""
        import json
        proc = subprocess.run(["nsenter", f"--net={netns.path}", sys.executable, str(NETTOOL), *args],
                              capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"nettool {args} in {netns.name} failed: {proc.stderr.strip()[-2000:]}")
        return json.loads(proc.stdout)

    # -- tearing down --------------------------------------------------------------------------

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            for stream in (proc.stdout, proc.stderr):
                if stream:
                    stream.close()
        for node in self.nodes.values():
            try:
                node.call(node.net.close(), timeout=20)
            finally:
                node.thread.stop()
        for ns in list(reversed(self.namespaces)):
            self.delete_netns(ns)

    def leftovers(self) -> list[str]:
        """Namespaces, threads or processes in them, and host links/tables this lab left."""
        found = [f"netns {n}" for n in sh("ip", "netns", "list").split() if n.startswith(self.prefix)]
        wanted = {f"net:[{inode}]" for inode in self.inodes}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                tasks = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in tasks:
                try:
                    if os.readlink(f"/proc/{pid}/task/{tid}/ns/net") in wanted:
                        found.append(f"task {pid}/{tid} still in a lab namespace")
                except OSError:
                    pass
        links, tables = host_snapshot()
        if links != self.host_before[0]:
            found.append(f"host links changed: {links!r} (before {self.host_before[0]!r})")
        if tables != self.host_before[1]:
            found.append(f"host nftables tables changed: {tables!r} (before {self.host_before[1]!r})")
        return found


@contextlib.contextmanager
def lab_for_test(tmp: Path, *, tag: str = "", skip: str | None = None) -> Iterator[Lab]:
    """A Lab for one test, skipped when it cannot run (`skip`: a reason of the caller's own), closed
    afterwards with a check that nothing was left behind - also when the test failed."""
    import pytest
    reason = skip or skip_reason()
    if reason:
        pytest.skip(reason)
    the_lab = Lab(tmp, tag=tag)
    try:
        yield the_lab
    finally:
        the_lab.close()
        assert the_lab.leftovers() == []


def host_snapshot() -> tuple[str, str]:
    """The host namespace's links and nftables tables of the kinds NodeNetwork makes (a
    NodeNetwork wrongly run in the host namespace would show here). Other people's
    links and tables are not looked at: they may come and go meanwhile."""
    names = (line.split(":")[1].strip().split("@")[0] for line in sh("ip", "-o", "link").splitlines())
    links = " ".join(sorted(n for n in names if re.fullmatch(r"skv[0-9a-f]{12}|skiff0", n)))
    tables = " ".join(sorted(t for t in sh("nft", "list", "tables").splitlines() if "skiff" in t))
    return links, tables


def open_socket(netns: Netns, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A socket in `netns`, opened by the calling thread stepping in and out of it."""
    with in_netns(netns.path):
        return socket.socket(socket.AF_INET, kind)


def call(netns: Netns, host: str, port: int, data: str = "hello", *, udp: bool = False,
         timeout: float = 3.0) -> str:
    """Send `data` from inside `netns` to host:port and return the reply."""
    if udp:
        with open_socket(netns, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(data.encode(), (host, port))
            return s.recv(65536).decode()
    with open_socket(netns) as s:
        s.settimeout(timeout)
        s.connect((host, port))
        s.sendall(data.encode())
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while part := s.recv(65536):
            reply += part
        return reply.decode()
