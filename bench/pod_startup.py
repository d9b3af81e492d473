"""Pod startup latency and the agent's memory, on one real node.

    sudo .venv/bin/python bench/pod_startup.py                  # 100 pods at 5 pods/s
    sudo .venv/bin/python bench/pod_startup.py --profile        # ... and py-spy on the agent meanwhile
    sudo .venv/bin/python bench/pod_startup.py --pods 20        # quicker
    sudo .venv/bin/python bench/pod_startup.py --rounds 3       # create and delete the 100 pods 3 times

It starts its own etcd and `skiff-controlplane` (scheduler and controllers on, every
default) and one real `skiff-agent` on this machine (root), with its state in a temp
directory on disk, its cgroups under a private parent ("skiff-bench-<random>"), no pod
network (`--no-network`: pods get loopback only, so the bench adds no bridge or routes to
the host), and the busybox test image (deploy/build-test-image.py) loaded into its store
beforehand, so no registry is involved. Then:

1. idle: once the node is Ready and the agent has settled, the agent's RSS with no pods;
2. startup: `--pods` pods (busybox `sleep 3600`, no resource requests) created one by one
   at `--rate` pods/s through the API; for each, create -> bound (nodeName seen) and
   create -> Running (status.phase seen), from a watch started before the first create.
   The create timestamp is taken just before the Create call;
3. running: the agent's RSS with every pod running, once it is idle again;
4. after: every pod deleted (grace 1 s) and gone, the agent's cgroups and mounts
   cleaned up, the agent idle again: its RSS.

With `--rounds N`, steps 2-4 run N times in the same agent (is the growth after the
first round a high-water mark or a leak?). The summary figures are the first round's
startup and the last round's idle RSS. A fresh interpreter also measures what importing
the agent's modules costs before it does anything (`agent_imports`).

RSS is VmRSS of /proc/PID/status of the agent process (the goal, <= 60 MB, is for that
process); the helpers are reported beside it: the runtime's fork server, and its workers
(one supervisor per container plus the one spare forked ahead): their count, summed RSS,
and summed PSS, which splits shared pages fairly — workers are forked from the fork
server and share most of their memory with it.

Goals (issue 4): create -> Running p99 <= 1 s; agent idle RSS <= 60 MB.
Results go to bench/results/pod_startup.json and are summarised on stdout. Everything
the bench starts is stopped by PID, and its cgroups, mounts and files are removed.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import secrets  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from bench.common import (connect, REPO, RESULTS_DIR, CpuMeter, Profile, cluster, free_port, machine_info,  # noqa: E402
                          percentiles, stop_process, wait_for, wait_until_idle, write_results)
from procs import processes_mentioning, unmount_under  # noqa: E402  (tests/procs.py: bench.common puts tests/ on the path)

IMAGE = "skiff.local/busybox:1.35"
NODE = "bench-node"
NAMESPACE = "default"


# -- the agent process ---------------------------------------------------------------------

class AgentUnderTest:
    def __init__(self, state_dir: Path, *, join: list[str], cgroup_parent: str):
        """join: `--server ... --token ... --ca-cert-hash ...` (ControlPlaneProcess.join_args)."""
        self.state_dir = state_dir
        self.cgroup_parent = cgroup_parent
        self.port = free_port()
        self.args = [sys.executable, "-m", "agent.main", *join, "--node-name", NODE,
                     "--state-dir", str(state_dir), "--cgroup-parent", cgroup_parent,
                     "--listen", f"127.0.0.1:{self.port}", "--node-ip", "127.0.0.1", "--no-network",
                     "--log-level", "WARNING"]
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.state_dir.parent / "agent.log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=REPO,
                                         env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True)

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"the agent exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory_report(agent: AgentUnderTest) -> dict[str, Any]:
    """RSS of the agent, its fork server and the fork server's workers (supervisors and the spare), in MiB."""
    helpers = [p for p in processes_mentioning(str(agent.state_dir)) if p != agent.pid and p != os.getpid()]
    forkserver = [p for p in helpers if _ppid(p) == agent.pid]
    workers = [p for p in helpers if p not in forkserver]

    def mib(kib: int) -> float:
        return round(kib / 1024, 1)
    return {
        "agent_rss_mib": mib(status_kib(agent.pid, "VmRSS")),
        "agent_rss_mb": round(status_kib(agent.pid, "VmRSS") * 1024 / 1e6, 1),
        "agent_rss_anon_mib": mib(status_kib(agent.pid, "RssAnon")),      # heap: Python objects, malloc
        "agent_rss_file_mib": mib(status_kib(agent.pid, "RssFile")),      # mapped code: libpython, gRPC's .so, ...
        "agent_peak_rss_mib": mib(status_kib(agent.pid, "VmHWM")),
        "agent_threads": status_kib(agent.pid, "Threads"),
        "forkserver_rss_mib": mib(sum(status_kib(p, "VmRSS") for p in forkserver)),
        "workers": len(workers),
        "workers_rss_sum_mib": mib(sum(status_kib(p, "VmRSS") for p in workers)),
        "workers_pss_sum_mib": mib(sum(pss_kib(p) for p in workers)),
    }


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def cleanup(state_dir: Path, cgroup_parent: str) -> list[str]:
    """Last resort after the agent stopped: kill what is left of its containers and helpers (by
    PID), unmount everything under its state dir, remove its cgroups. Returns what it had to do."""
    from agent.cgroups import open_manager
    done = []
    for pid in processes_mentioning(str(state_dir)):
        if pid != os.getpid():
            try:
                os.kill(pid, signal.SIGKILL)
                done.append(f"killed leftover pid {pid}")
            except ProcessLookupError:
                pass
    try:
        manager = open_manager(parent=cgroup_parent)
        if manager.exists(""):
            if manager.procs("", recursive=True):
                done.append("killed processes left in the cgroups")
            manager.remove("")
    except Exception as exc:  # noqa: BLE001 - report, keep cleaning
        done.append(f"cgroup cleanup failed: {exc}")
    done += [f"unmounted {target}" for target in unmount_under(state_dir)]
    return done


def mounts_under(path: Path) -> list[str]:
    root = str(path.resolve())
    return [line.split()[1] for line in open("/proc/mounts") if line.split()[1].startswith(root + "/")]


# -- the measured phases --------------------------------------------------------------------

def pod_manifest(i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"startup-{i:04d}", "namespace": NAMESPACE,
                                                             "labels": {"bench": "pod-startup"}},
            "spec": {"restartPolicy": "Always", "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": IMAGE, "imagePullPolicy": "Never",
                                     "command": ["sleep", "3600"]}]}}


async def wait_node_ready(server: str, agent: AgentUnderTest, timeout: float) -> None:
    from controlplane.client import NotFound
    deadline = time.monotonic() + timeout
    async with connect(server) as c:
        while True:
            agent.check_alive()
            try:
                node = await c.get("nodes", NODE)
                if any(x.get("type") == "Ready" and x.get("status") == "True"
                       for x in (node.get("status") or {}).get("conditions") or []):
                    return
            except NotFound:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"node {NODE} not Ready after {timeout:.0f}s")
            await asyncio.sleep(0.2)


async def create_and_watch(server: str, agent: AgentUnderTest, *, pods: int, rate: float,
                           timeout: float) -> dict[str, Any]:
    """Create `pods` pods at `rate` per second; create->bound and create->Running per pod."""
    created: dict[str, float] = {}
    bound: dict[str, float] = {}
    running: dict[str, float] = {}
    all_running = asyncio.Event()
    async with connect(server, timeout=30) as c:
        rv = (await c.list("pods", NAMESPACE)).resource_version

        async def watch() -> None:
            async for event in c.watch("pods", NAMESPACE, label_selector="bench=pod-startup", resource_version=rv):
                now = time.monotonic()
                if event.type not in ("ADDED", "MODIFIED"):
                    continue
                name = event.object["metadata"]["name"]
                if (event.object.get("spec") or {}).get("nodeName"):
                    bound.setdefault(name, now)
                if (event.object.get("status") or {}).get("phase") == "Running":
                    running.setdefault(name, now)
                    if len(running) == pods:
                        all_running.set()
        watcher = asyncio.create_task(watch())
        try:
            t0 = time.monotonic()
            for i in range(pods):
                await asyncio.sleep(max(0.0, t0 + i / rate - time.monotonic()))
                manifest = pod_manifest(i)
                created[manifest["metadata"]["name"]] = time.monotonic()
                await c.create(manifest)
            creation_seconds = time.monotonic() - t0
            deadline = time.monotonic() + timeout
            while not all_running.is_set():
                agent.check_alive()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"only {len(running)}/{pods} pods Running {timeout:.0f}s after the last create")
                try:
                    await asyncio.wait_for(all_running.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
    to_running = [running[n] - created[n] for n in created]
    to_bound = [bound[n] - created[n] for n in created if n in bound]
    bound_to_running = [running[n] - bound[n] for n in created if n in bound]
    slowest = sorted(created, key=lambda n: running[n] - created[n], reverse=True)[:5]
    return {"pods": pods, "rate_per_second": rate, "creation_seconds": round(creation_seconds, 2),
            "create_to_running_ms": percentiles(to_running), "create_to_bound_ms": percentiles(to_bound),
            "bound_to_running_ms": percentiles(bound_to_running),
            "slowest": [{"pod": n, "create_to_bound_ms": round((bound.get(n, created[n]) - created[n]) * 1000, 1),
                         "create_to_running_ms": round((running[n] - created[n]) * 1000, 1)} for n in slowest]}


async def delete_all(server: str, agent: AgentUnderTest, timeout: float) -> float:
    """Delete every bench pod (grace 1 s) and wait until the API has none; the seconds it took."""
    from controlplane.client import NotFound
    t0 = time.monotonic()
    async with connect(server, timeout=30) as c:
        for pod in (await c.list("pods", NAMESPACE, label_selector="bench=pod-startup")).items:
            try:
                await c.delete("pods", pod["metadata"]["name"], NAMESPACE, grace_seconds=1)
            except NotFound:
                pass
        while (await c.list("pods", NAMESPACE, label_selector="bench=pod-startup")).items:
            agent.check_alive()
            if time.monotonic() - t0 > timeout:
                raise TimeoutError(f"bench pods still there {timeout:.0f}s after deleting them")
            await asyncio.sleep(0.2)
    return time.monotonic() - t0


def settle(pids: list[int]) -> float:
    """Wait until the agent (and the others) use < 3% of a core over 2 s windows."""
    return wait_until_idle(pids, below_percent=3.0, timeout=120, window=2.0)


# What importing the agent costs, before it does anything: RSS of a fresh interpreter after each
# group of imports, in the order the agent's own imports pull them in. Then, in the same
# interpreter, what the agent imports only when needed (LATER_STEPS): those figures are not part
# of an idle agent's memory, they say what a registry pull or the object model would add.
IMPORT_STEPS = [("gRPC (grpc, grpc.aio)", "grpc, grpc.aio"),
                ("protobuf stubs (protos.skiff_pb2_grpc)", "protos.skiff_pb2_grpc"),
                ("client and informer (controlplane.client; no object model)",
                 "controlplane.client, controlplane.client.informer, controlplane.client.events"),
                ("image store (agent.images; the registry client is imported by the first pull)", "agent.images"),
                ("runtime, cgroups, volumes, probes", "agent.runtime, agent.cgroups, agent.volumes, agent.probing"),
                ("the rest of the agent (agent.main -> agent.agent)", "agent.agent, agent.main")]
LATER_STEPS = [("registry client and httpx (first pull from a registry)", "agent.images.registry"),
               ("PyYAML (a registries file: --registries-config)", "yaml"),
               ("pydantic and every kind's model (api.registry; not used by the agent)", "api.registry")]
IMPORT_PROBE = """
import json, sys
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
steps, later = json.loads(sys.argv[1])
out = [["python interpreter", rss()]]
for label, modules in steps:
    exec("import " + modules)
    out.append([label, rss()])
loaded = len(sys.modules)
out_later = []
for label, modules in later:
    exec("import " + modules)
    out_later.append([label, rss()])
print(json.dumps({"modules": loaded, "steps": out, "later": out_later}))
"""


def import_breakdown() -> dict[str, Any]:
    """MiB added by each group of the agent's imports, in a fresh interpreter; then what the
    agent imports only when needed would add on top (`later`)."""
    reply = subprocess.run([sys.executable, "-c", IMPORT_PROBE, json.dumps([IMPORT_STEPS, LATER_STEPS])],
                           capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                           check=True, timeout=120)
    data = json.loads(reply.stdout)
    out: dict[str, Any] = {"modules_loaded": data["modules"]}
    previous = 0
    for part in ("steps", "later"):
        out[part] = []
        for label, kib in data[part]:
            out[part].append({"what": label, "added_mib": round((kib - previous) / 1024, 1),
                              "total_mib": round(kib / 1024, 1)})
            previous = kib
    return out


def build_image(work: Path) -> Path:
    archive = work / "busybox.tar"
    subprocess.run([sys.executable, str(REPO / "deploy" / "build-test-image.py"), "--out", str(work / "layout"),
                    "--archive", str(archive)], check=True, capture_output=True)
    return archive


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pods", type=int, default=100)
    p.add_argument("--rate", type=float, default=5.0, help="pods created per second")
    p.add_argument("--profile", action="store_true", help="py-spy on the agent while the pods start (first round)")
    p.add_argument("--rounds", type=int, default=1,
                   help="create and delete the pods this many times in the same agent (does its memory keep growing?)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "pod_startup.json")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("error: run as root (the agent creates namespaces, cgroups and mounts)", file=sys.stderr)
        return 1
    # SIGTERM unwinds like Ctrl-C, so the `finally` blocks stop the agent, the API server and
    # etcd and remove the cgroups and mounts.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    result: dict[str, Any] = {"bench": "pod_startup", "machine": machine_info(),
                              "settings": {"pods": args.pods, "rate_per_second": args.rate, "rounds": args.rounds, "image": IMAGE,
                                           "pod_network": False, "controlplane": "scheduler + controllers"}}
    with cluster() as cl:
        state = cl.work_dir / "agent"
        parent = f"skiff-bench-{secrets.token_hex(4)}"
        result["settings"].update(cgroup_parent=parent, state_dir=str(state))
        from agent.images import ImageStore
        asyncio.run(ImageStore(state / "images").load_archive(build_image(cl.work_dir)))
        agent = AgentUnderTest(state, join=cl.api.join_args(), cgroup_parent=parent)
        try:
            agent.start()
            asyncio.run(wait_node_ready(cl.api.address, agent, timeout=60))
            others = [cl.api.pid, cl.etcd.proc.pid]
            settle([agent.pid, *others])
            result["idle_no_pods"] = memory_report(agent)
            print(f"idle, no pods: agent RSS {result['idle_no_pods']['agent_rss_mib']} MiB", flush=True)

            from agent.cgroups import open_manager
            cgroups = open_manager(parent=parent)
            result["rounds"] = []
            for number in range(1, args.rounds + 1):
                profile = None
                if args.profile and number == 1:
                    seconds = args.pods / args.rate + 5
                    profile = Profile(agent.pid, RESULTS_DIR / "pod_startup-agent.folded", seconds=seconds)
                    profile.start()
                meter = CpuMeter({"agent": agent.pid, "apiserver": cl.api.pid, "etcd": cl.etcd.proc.pid})
                meter.start()
                startup = asyncio.run(create_and_watch(cl.api.address, agent, pods=args.pods, rate=args.rate,
                                                       timeout=120))
                startup["cpu_percent_of_a_core"] = meter.stop()
                if profile is not None:
                    result["agent_profile"] = profile.finish(timeout=args.pods / args.rate + 60)
                s = startup["create_to_running_ms"]
                print(f"round {number}: create -> Running: p50 {s['p50']} ms, p99 {s['p99']} ms, max {s['max']} ms",
                      flush=True)

                settle([agent.pid, *others])
                running = memory_report(agent)
                print(f"round {number}: {args.pods} pods running: agent RSS {running['agent_rss_mib']} MiB", flush=True)

                delete_seconds = round(asyncio.run(delete_all(cl.api.address, agent, timeout=120)), 2)
                wait_for(lambda: not cgroups.list_children("") and not mounts_under(state / "runtime"), timeout=60,
                         what="the agent to remove its pods' cgroups and mounts")
                settle([agent.pid, *others])
                after = memory_report(agent)
                print(f"round {number}: idle, after the pods: agent RSS {after['agent_rss_mib']} MiB", flush=True)
                result["rounds"].append({"round": number, "startup": startup, "running": running,
                                         "delete_seconds": delete_seconds, "idle_after_pods": after})
            first = result["rounds"][0]
            result["startup"], result["running"] = first["startup"], first["running"]
            result["idle_after_pods"] = result["rounds"][-1]["idle_after_pods"]
        finally:
            agent.stop()
            result["cleanup"] = cleanup(state, parent)
            shutil.rmtree(state, ignore_errors=True)

    result["agent_imports"] = import_breakdown()
    p99 = result["startup"]["create_to_running_ms"]["p99"]
    idle = max(result["idle_no_pods"]["agent_rss_mb"], result["idle_after_pods"]["agent_rss_mb"])
    result["goals"] = {"create_to_running_p99_ms": {"goal": 1000, "measured": p99, "met": p99 <= 1000},
                       "agent_idle_rss_mb": {"goal": 60, "measured": idle, "met": idle <= 60,
                                             "note": "MB = 10^6 bytes; the *_mib figures are 2^20"}}
    path = write_results(args.out, result)
    print(json.dumps(result["goals"], indent=2))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
