"""Shared helpers for the bench/ scripts: the processes under test, load-generator
processes, and how results are summarised and written.

A bench script starts its own etcd and its own `skiff-controlplane` (the API
server) on free loopback ports, with etcd's data in an ordinary temp directory
on disk — never tmpfs, so the figures include the fsync etcd does for every
write, as in a real cluster. `cluster()` stops both by PID however the script
ends.

Load generators run in separate processes started with the "spawn" method (a
fresh interpreter: never fork a process that already runs gRPC threads), so on
a small machine the generator does not starve inside the interpreter it
measures. `CpuMeter` tells how much CPU each process used, `percentiles` turns
latencies into the p50/p90/p99 figures of docs/PERFORMANCE.md, and `Profile`
samples the API server with py-spy to say where its time goes.
"""

from __future__ import annotations

import collections
import contextlib
import json
import multiprocessing
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))   # tests/procs.py: the etcd and control-plane launchers
from procs import ControlPlane, Etcd, free_port  # noqa: E402, F401  (free_port: for the bench scripts)
from procs import stop_process as stop_popen  # noqa: E402

RESULTS_DIR = REPO / "bench" / "results"
# A fresh interpreter per worker process (see the module docstring).
SPAWN = multiprocessing.get_context("spawn")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- waiting and stopping ------------------------------------------------------------

# Alike in shape to tests' wait helpers (the `duplicates` tool pairs them) but fails fast
# on an error (see the docstring), as a bench should.
def wait_for(condition: Callable[[], object], *, timeout: float, what: str, interval: float = 0.05) -> object:
    """Poll until condition() is truthy and return it; TimeoutError naming `what` after the deadline.
    Unlike tests/procs.py's wait_for, an exception from condition() ends the wait at once (a bench
    stops on the first failure rather than retrying it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def stop_process(proc: subprocess.Popen | multiprocessing.process.BaseProcess, timeout: float = 10.0) -> None:
    """SIGTERM by PID, SIGKILL if it is still there after the timeout."""
    if isinstance(proc, subprocess.Popen):
        stop_popen(proc, timeout)
        return
    if proc.pid is None or not proc.is_alive():
        proc.join(0)
        return
    proc.terminate()
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        proc.join(5)


# -- the processes under test --------------------------------------------------------

class EtcdProcess(Etcd):
    """etcd on free loopback ports, its data in `data_dir` (on disk): tests/procs.py's launcher."""


class ControlPlaneProcess(ControlPlane):
    """`skiff-controlplane` (run as `python -m controlplane.main`, the same program, so that
    the repo's current code is what is measured) on a free port, on an existing etcd:
    tests/procs.py's launcher, with the bench's address form and a shared CA.

    Over TLS with the administrator's credential (its admin.conf), as users run it; with
    `--insecure` among the extra args, plain text (`address` is then http://host:port)."""

    def __init__(self, state_dir: Path, *, etcd_endpoint: str, extra_args: Iterable[str] = (),
                 share_ca_with: "ControlPlaneProcess | None" = None):
        """share_ca_with: another control plane on the same etcd, whose CA this one uses (as several
        control planes of one cluster must: its clients' certificates are then good here too)."""
        super().__init__(state_dir, etcd_endpoints=etcd_endpoint, extra_args=list(extra_args))
        self.share_ca_with = share_ca_with

    @property
    def address(self) -> str:
        return f"{'http://' if self.insecure else ''}127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> "ControlPlaneProcess":
        if self.share_ca_with is not None:
            (self.state_dir / "pki").mkdir(mode=0o700, parents=True, exist_ok=True)
            for name in ("ca.crt", "ca.key"):
                shutil.copy2(self.share_ca_with.state_dir / "pki" / name, self.state_dir / "pki" / name)
        super().start(timeout)
        return self

    def __enter__(self) -> "ControlPlaneProcess":   # a started process, stopped on exit
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Cluster:
    etcd: EtcdProcess
    api: ControlPlaneProcess
    work_dir: Path


def connect(address: str, **kwargs: Any) -> Any:   # controlplane.client.Client
    """A Client for the bench's API server: plain text for http://host:port (--insecure), else
    with the credential in $SKIFF_KUBECONFIG (the admin.conf `cluster()` points it at; worker
    processes inherit it)."""
    from controlplane.client import Client
    if address.startswith("http://") or "channel" in kwargs:
        return Client(address, **kwargs)
    return Client(address, credentials=credentials_for(address), **kwargs)


def credentials_for(address: str) -> Any:   # controlplane.client.Credentials
    from controlplane.client import Credentials, kubeconfig
    if address.startswith("http://"):
        return Credentials.plaintext()
    return kubeconfig.load(Path(os.environ[KUBECONFIG_ENV])).credentials


KUBECONFIG_ENV = "SKIFF_KUBECONFIG"


@contextlib.contextmanager
def cluster(*, extra_args: Iterable[str] = ()) -> Iterator[Cluster]:
    """etcd and one API server in a temp dir on disk; both stopped, and the dir removed, on exit.
    $SKIFF_KUBECONFIG points at its admin credential meanwhile (see `connect`)."""
    work_dir = Path(tempfile.mkdtemp(prefix="skiff-bench-"))
    etcd = EtcdProcess(work_dir / "etcd")
    api: ControlPlaneProcess | None = None
    try:
        etcd.start()
        api = ControlPlaneProcess(work_dir / "controlplane", etcd_endpoint=etcd.endpoint,
                                  extra_args=extra_args)
        api.start()
        if not api.insecure:
            os.environ[KUBECONFIG_ENV] = str(api.admin_config)
        yield Cluster(etcd=etcd, api=api, work_dir=work_dir)
    finally:
        if api is not None:
            api.stop()
        etcd.stop()
        shutil.rmtree(work_dir, ignore_errors=True)


# -- load-generator processes ----------------------------------------------------------

@contextlib.contextmanager
def worker_processes(target: Callable[..., None], kwargs_list: list[dict[str, Any]]
                     ) -> Iterator[list[multiprocessing.process.BaseProcess]]:
    """Start one spawned process per kwargs dict running target(**kwargs); on exit every one
    of them is stopped by PID, whether the bench finished or failed."""
    procs = [SPAWN.Process(target=target, kwargs=kw, daemon=True, name=f"bench-{target.__name__}-{i}")
             for i, kw in enumerate(kwargs_list)]
    try:
        for p in procs:
            p.start()
        yield procs
    finally:
        for p in procs:
            stop_process(p, timeout=5)


class StartGate:
    """Lines worker processes up before a timed phase: each worker `arrive`s when it is
    connected and warmed up (and may `wait_for_go`); the parent `wait_ready`s — failing
    early if a worker died — then says `go`, so every worker starts at the same moment."""

    def __init__(self, parties: int):
        self.parties = parties
        self.ready = SPAWN.Value("i", 0)
        self.started = SPAWN.Event()

    # worker side (inside an event loop)
    def arrive(self) -> None:
        with self.ready.get_lock():
            self.ready.value += 1

    async def wait_for_go(self) -> None:
        import asyncio
        while not await asyncio.to_thread(self.started.wait, 1.0):
            pass

    # parent side
    def wait_ready(self, procs: list[multiprocessing.process.BaseProcess], *, timeout: float, what: str) -> None:
        def all_ready() -> bool:
            dead = [p for p in procs if p.exitcode is not None]
            if dead:
                raise RuntimeError(f"{what}: worker {dead[0].name} exited with {dead[0].exitcode}")
            return self.ready.value >= self.parties
        wait_for(all_ready, timeout=timeout, what=what)

    def go(self) -> None:
        self.started.set()


def collect(queue: Any, count: int, *, timeout: float, procs: list[multiprocessing.process.BaseProcess],
            what: str) -> list[dict[str, Any]]:
    """`count` result dicts from worker processes; fails early if a worker died without one."""
    import queue as queue_module
    results: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(results) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        try:
            item = queue.get(timeout=0.2)
        except queue_module.Empty:
            dead = [p for p in procs if p.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"{what}: worker {dead[0].name} exited with {dead[0].exitcode}")
            continue
        if "error" in item:
            raise RuntimeError(f"{what}: a worker failed: {item['error']}")
        results.append(item)
    return results


# -- measuring ---------------------------------------------------------------------------

def percentiles(seconds: list[float], points: Iterable[int] = (50, 90, 99)) -> dict[str, float | int]:
    """Latencies in seconds → {"count", "p50", ..., "max", "mean"} in milliseconds (nearest rank)."""
    if not seconds:
        return {"count": 0}
    ordered = sorted(seconds)
    out: dict[str, float | int] = {"count": len(ordered)}
    for p in points:
        rank = max(1, -(-p * len(ordered) // 100))  # ceil(p/100 * n)
        out[f"p{p}"] = round(ordered[rank - 1] * 1000, 2)
    out["max"] = round(ordered[-1] * 1000, 2)
    out["mean"] = round(sum(ordered) / len(ordered) * 1000, 2)
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS   # utime, stime


@dataclass
class CpuMeter:
    """CPU used by named processes between start() and stop(), as % of one core."""

    pids: dict[str, int]
    _start: dict[str, float] = field(default_factory=dict)
    _t0: float = 0.0

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, float]:
        wall = max(time.monotonic() - self._t0, 1e-6)
        out = {}
        for name, pid in self.pids.items():
            try:
                out[name] = round((cpu_seconds(pid) - self._start[name]) / wall * 100, 1)
            except (OSError, KeyError):
                out[name] = float("nan")
        return out


def wait_until_idle(pids: Iterable[int], *, below_percent: float, timeout: float, window: float = 0.5) -> float:
    """Wait until each process uses less than `below_percent` of a core over `window`
    seconds (they have finished absorbing some burst of work); the seconds it took."""
    pids = list(pids)
    t0 = time.monotonic()
    deadline = t0 + timeout
    while True:
        before = [cpu_seconds(pid) for pid in pids]
        time.sleep(window)
        busiest = max((cpu_seconds(pid) - b) / window * 100 for pid, b in zip(pids, before))
        if busiest < below_percent:
            return time.monotonic() - t0
        if time.monotonic() > deadline:
            raise TimeoutError(f"processes {pids} still busy ({busiest:.0f}% of a core) after {timeout:.0f}s")


class EtcdMeter:
    """etcd's own counters (its /metrics page on the client port) between start() and stop():
    how many raft proposals it committed and how many WAL fsyncs they cost, and how long those took."""

    NAMES = ("etcd_server_proposals_committed_total", "etcd_disk_wal_fsync_duration_seconds_count",
             "etcd_disk_wal_fsync_duration_seconds_sum", "etcd_disk_backend_commit_duration_seconds_count",
             "etcd_disk_backend_commit_duration_seconds_sum")

    def __init__(self, endpoint: str):
        self.url = f"http://{endpoint}/metrics"
        self._start: dict[str, float] = {}
        self._t0 = 0.0

    def read(self) -> dict[str, float]:
        import urllib.request
        with urllib.request.urlopen(self.url, timeout=5) as reply:
            text = reply.read().decode()
        values = {}
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name in self.NAMES:
                values[name] = float(value)
        return values

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._start = self.read()

    def stop(self) -> dict[str, float]:
        wall = max(time.monotonic() - self._t0, 1e-6)
        end = self.read()
        d = {name: end.get(name, 0.0) - self._start.get(name, 0.0) for name in self.NAMES}
        fsyncs, commits = d[self.NAMES[1]], d[self.NAMES[3]]
        return {"proposals_per_second": round(d[self.NAMES[0]] / wall, 1),
                "wal_fsyncs_per_second": round(fsyncs / wall, 1),
                "wal_fsync_mean_ms": round(d[self.NAMES[2]] / fsyncs * 1000, 2) if fsyncs else 0.0,
                "backend_commits_per_second": round(commits / wall, 1),
                "backend_commit_mean_ms": round(d[self.NAMES[4]] / commits * 1000, 2) if commits else 0.0}


def machine_info() -> dict[str, Any]:
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    os_name = platform.platform()
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    etcd_version = ""
    with contextlib.suppress(Exception):
        etcd_version = subprocess.run(["etcd", "--version"], capture_output=True, text=True,
                                      timeout=10).stdout.splitlines()[0]
    return {"os": os_name, "cores": os.cpu_count(), "memory_gib": round(mem_kib / 1024 / 1024, 1),
            "python": platform.python_version(), "etcd": etcd_version,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def write_results(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    return path


# -- profiling ---------------------------------------------------------------------------

class Profile:
    """py-spy sampling a running process for a while, written as folded stacks
    ("frame;frame;frame count" per line), then summarised by area and by function.

    Python mode reads the target's memory from outside without pausing it
    (--nonblocking), so it costs the API server almost nothing; C code (gRPC's
    cython core, pydantic-core, the json accelerator) shows as the Python frame
    that called it. Native mode (--native) also unwinds C stacks, which shows the
    system calls, but pauses the process for each sample."""

    # What a sample is spent on, from its innermost frame (first match wins); the
    # poller thread is recognised by its whole stack.
    AREAS = (("waiting in epoll (idle)", ("EpollSelector.select", "epoll_wait", "epoll_pwait")),
             ("system calls: send/recv/write", ("sendmsg (", "recvmsg (", "recv (", "write (", "read (",
                                               "syscall (", "writev (")),
             ("JSON encode/decode", ("json/", "_json.c")),
             ("validation (pydantic models in api/)", ("pydantic", "(api/")),
             ("etcd client (aetcd, Python)", ("aetcd/",)),
             ("gRPC core in C (cygrpc, called from the event loop)", ("Handle._run (asyncio/events.py", "cygrpc",
                                                                      "libgrpc", "libstdc++")),
             ("gRPC Python layer (grpc.aio)", ("grpc/",)),
             ("protobuf", ("protobuf", "_pb2", "upb")),
             ("asyncio event loop", ("asyncio/", "_asynciomodule")),
             ("API server handlers and storage (Python)", ("controlplane/",)),
             ("CPython runtime (gc, refcounts, dicts, strings)", ("libpython", "object.h", "Py_", "gc_", "unicode")))
    POLLER = "gRPC poller thread (separate from the event loop)"

    def __init__(self, pid: int, out: Path, *, seconds: float, native: bool = False):
        self.out = out
        binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(binary).exists():
            raise RuntimeError("py-spy not found: .venv/bin/pip install py-spy")
        out.parent.mkdir(parents=True, exist_ok=True)
        mode = ["--native", "--rate", "100"] if native else ["--nonblocking", "--rate", "250"]
        self.args = [binary, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))), *mode,
                     "--function", "--format", "raw", "--output", str(out)]
        self.native = native
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL)

    def finish(self, timeout: float = 30.0) -> dict[str, Any]:
        """Wait for py-spy to write its file and summarise it."""
        assert self.proc is not None
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_process(self.proc)
            raise RuntimeError("py-spy did not finish in time") from None
        if not self.out.exists():
            raise RuntimeError(f"py-spy wrote no profile: {err.decode(errors='replace')[-500:]}")
        return {"mode": "native" if self.native else "python", **self.summarise(self.out)}

    @classmethod
    def summarise(cls, folded: Path, top: int = 15) -> dict[str, Any]:
        own: collections.Counter[str] = collections.Counter()
        total: collections.Counter[str] = collections.Counter()
        areas: collections.Counter[str] = collections.Counter()
        in_servicer = samples = 0
        for line in folded.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
            if not frames:
                continue
            samples += count
            own[frames[-1]] += count
            for frame in set(frames):
                total[frame] += count
            if any("threading.py" in f for f in frames):
                areas[cls.POLLER] += count
            else:
                areas[cls.area_of(frames[-1])] += count
            if any("ApiService." in f for f in frames):
                in_servicer += count
        if not samples:
            return {"samples": 0}

        def pct(counter: collections.Counter[str], n: int | None = None) -> list[dict[str, Any]]:
            return [{"function": name, "percent": round(c / samples * 100, 1)} for name, c in counter.most_common(n)]
        ours = collections.Counter({f: c for f, c in total.items()
                                    if any(k in f for k in ("controlplane/", "(api/", "json/", "pydantic"))
                                    and "controlplane/main.py" not in f})
        return {"samples": samples, "file": str(folded), "by_area": pct(areas),
                "inside_servicer_methods_percent": round(in_servicer / samples * 100, 1),
                "top_self": pct(own, top), "top_total_project": pct(ours, top)}

    @classmethod
    def area_of(cls, frame: str) -> str:
        for area, needles in cls.AREAS:
            if any(n in frame for n in needles):
                return area
        return "other"
