"""Usage and workload logs with a real agent: `ctl top pods|nodes` and `ctl logs TYPE/NAME`.

- The sampler (agent/metrics.py) over real cgroup v1 groups: a busy process has a CPU rate.
- A dedicated control plane (no scheduler, no controllers: pods name their node) and a real
  `skiff-agent` with the busybox test image: a pod spinning a CPU shows nonzero CPU in
  `ctl top pods` (within its 200m limit), and `ctl top nodes` lists the node.
- `ctl logs rs/NAME` / `deploy/NAME` pick the Running pod among those the selector matches.

Every wait has a deadline; the fixtures remove the pods, stop the agent and control plane
by PID, and clear the test's cgroups and mounts.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from agent.cgroups import Resources, detect, open_manager
from agent.metrics import MetricsCollector
from controlplane.client import Client
from procs import REPO, AgentProcess, ControlPlane, delete_all_pods, force_cleanup

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root: real cgroups and pods")]
IMAGE = "skiff.local/busybox:1.35"
NODE = "top-test-node"


def wait_until(condition, *, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


# -- the sampler on real v1 cgroups ----------------------------------------------------------

@pytest.mark.skipif(os.geteuid() == 0 and detect() != 1, reason="this machine does not run cgroup v1")
def test_sampler_reads_real_v1_groups():
    manager = open_manager(parent=f"skiff-test-{secrets.token_hex(4)}", version=1)
    busy = None
    try:
        manager.create("pod-u1/spin", Resources(cpu_limit_millis=300))
        busy = subprocess.Popen([sys.executable, "-c", "import sys\nsys.stdin.readline()\nheld = bytearray(b'x' * (8 << 20))\n"
                                 "while True: pass\n"],
                                stdin=subprocess.PIPE)
        manager.add_process("pod-u1/spin", busy.pid)
        busy.stdin.write(b"go\n")
        busy.stdin.flush()
        collector = MetricsCollector(manager)
        collector.sample()
        first = collector.latest.containers["pod-u1/spin"].cpu_usage_ns
        wait_until(lambda: manager.stats("pod-u1/spin").cpu_usage_ns > first + 300_000_000, timeout=10,
                   what="the busy process to use 300 ms of CPU")
        collector.sample()
        window = collector.window()
        usage = window.pods["u1"].containers["spin"]
        assert 0 < usage.cpu_nanocores <= 450_000_000, usage      # its 300m quota, give or take a CFS period
        assert usage.memory_bytes >= 8 << 20                       # charged after it joined the group
        assert window.node.cpu_nanocores > 0 and window.node.memory_bytes > 0
    finally:
        if busy is not None:
            busy.kill()
            busy.wait(5)
        manager.remove("")
    assert not manager.exists("")


# -- a real agent ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def image_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("image")
    subprocess.run([sys.executable, str(REPO / "deploy" / "build-test-image.py"), "--out", str(out / "layout"),
                    "--archive", str(out / "busybox.tar")], check=True, capture_output=True)
    return out / "busybox.tar"


@pytest.fixture(scope="module")
def cluster(etcd, tmp_path_factory: pytest.TempPathFactory, image_archive: Path):
    base = tmp_path_factory.mktemp("top-cluster")
    cp = ControlPlane(base / "cp", etcd_endpoints=etcd.endpoint,
                      extra_args=["--etcd-prefix", f"/top-{uuid.uuid4().hex[:8]}", "--no-scheduler",
                                  "--no-controllers"]).start()
    state = base / "agent"
    parent = f"skiff-test-{uuid.uuid4().hex[:8]}"
    from agent.images import ImageStore
    asyncio.run(ImageStore(state / "images").load_archive(image_archive))
    agent = AgentProcess(state, controlplane=cp, node_name=NODE, cgroup_parent=parent).start()
    try:
        yield {"cp": cp, "agent": agent, "base": base}
    finally:
        try:
            if agent.proc and agent.proc.poll() is None:
                asyncio.run(delete_all_pods(cp))      # the agent cleans up, then everything stops
        finally:
            agent.stop()
            cp.stop()
            force_cleanup(state, parent)
            shutil.rmtree(state, ignore_errors=True)


def ctl(cluster, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "SKIFF_CONFIG": str(cluster["base"] / "ctl-config")}
    return subprocess.run([sys.executable, "-m", "cli.main", *args, "--config", str(cluster["cp"].admin_config)],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=60)


def pod(name: str, command: str, *, labels: dict | None = None, restart: str = "Never", **container) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": labels or {}},
            "spec": {"nodeName": NODE, "restartPolicy": restart, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": IMAGE, "command": ["sh", "-c", command], **container}]}}


def create(cluster, *objects: dict) -> None:
    async def run() -> None:
        async with Client(cluster["cp"].address, credentials=cluster["cp"].credentials) as c:
            for obj in objects:
                await c.create(obj)
    asyncio.run(run())


def phase_of(cluster, name: str) -> str:
    async def run() -> str:
        async with Client(cluster["cp"].address, credentials=cluster["cp"].credentials) as c:
            return ((await c.get("pods", name, "default")).get("status") or {}).get("phase", "")
    return asyncio.run(run())


def millicores(text: str) -> int:
    assert re.fullmatch(r"\d+m", text), text
    return int(text[:-1])


def test_top_shows_a_busy_pod_and_the_node(cluster):
    create(cluster, pod("spinner", "while :; do :; done",
                        resources={"limits": {"cpu": "200m", "memory": "64Mi"}}),
           pod("idle", "sleep 3600"))
    wait_until(lambda: phase_of(cluster, "spinner") == "Running" and phase_of(cluster, "idle") == "Running",
               timeout=60, what="the pods to run")

    def busy_row():
        out = ctl(cluster, "top", "pods")
        rows = {line.split()[0]: line.split() for line in out.stdout.splitlines()[1:]}
        spinner = rows.get("spinner")
        return (out, rows) if spinner and "idle" in rows and millicores(spinner[1]) > 20 else None
    out, rows = wait_until(busy_row, timeout=45, what="ctl top pods to show the spinner using CPU", interval=1)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].split() == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert 20 < millicores(rows["spinner"][1]) <= 260, rows       # its 200m limit holds (CFS periods: some slack)
    assert millicores(rows["idle"][1]) < 20
    assert re.fullmatch(r"\d+Mi", rows["spinner"][2])

    per_container = ctl(cluster, "top", "pods", "spinner", "--containers")
    assert per_container.stdout.splitlines()[1].split()[:2] == ["spinner", "main"]
    by_cpu = ctl(cluster, "top", "pods", "--sort-by", "cpu")
    assert by_cpu.stdout.splitlines()[1].split()[0] == "spinner"

    nodes = ctl(cluster, "top", "nodes")
    assert nodes.returncode == 0, nodes.stderr
    header, *lines = nodes.stdout.splitlines()
    assert header.split() == ["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"]
    row = next(line.split() for line in lines if line.split()[0] == NODE)
    assert millicores(row[1]) > 0 and row[2].endswith("%") and row[3].endswith("Mi") and row[4].endswith("%")


def test_logs_of_a_workload_pick_its_running_pod(cluster):
    labels = {"app": "echo"}
    template = {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "main", "image": IMAGE}]}}
    create(cluster,
           {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "echo", "namespace": "default"},
            "spec": {"replicas": 0, "selector": {"matchLabels": labels}, "template": template}},
           {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "echo", "namespace": "default"},
            "spec": {"replicas": 0, "selector": {"matchLabels": labels}, "template": template}},
           pod("echo-done", "echo from-done", labels=labels),
           pod("echo-live", "echo from-live; sleep 3600", labels=labels),
           pod("other", "echo from-other; sleep 3600", labels={"app": "other"}))
    wait_until(lambda: phase_of(cluster, "echo-done") == "Succeeded" and phase_of(cluster, "echo-live") == "Running",
               timeout=60, what="one pod to finish and one to run")

    for target in ("rs/echo", "deploy/echo", "deployment.apps/echo", "replicasets/echo"):
        out = wait_until(lambda: (r := ctl(cluster, "logs", target)).stdout and r, timeout=20,
                         what=f"ctl logs {target}")
        assert out.returncode == 0, out.stderr
        assert out.stdout == "from-live\n"                                  # Running beats Succeeded
        assert out.stderr.strip() == "Found 2 pods, using pod/echo-live"

    single = ctl(cluster, "logs", "pod/echo-done")
    assert single.stdout == "from-done\n" and single.stderr == ""
    missing = ctl(cluster, "logs", "job/nope")
    assert missing.returncode == 1 and 'jobs.batch "nope" not found' in missing.stderr, missing.stderr
    wrong = ctl(cluster, "logs", "cm/echo")
    assert wrong.returncode == 1 and "cannot get logs of configmaps" in wrong.stderr
