"""`ctl schedule --dry-run -f FILE` against a real API server: every node's filter verdicts and
scores for a pod or a workload's pod template, the chosen node or the "0/N nodes" line, and
bad input refused with the field path. Nothing is created.

Nodes are plain Node objects (no agent, no scheduler); each test has its own API server (own
etcd prefix) so it sees only its own nodes.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from controlplane.client import Client
from procs import REPO, ControlPlane

GPU_TAINT = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


@pytest.fixture
def own_api(etcd, tmp_path) -> ControlPlane:
    cp = ControlPlane(tmp_path / "cp", etcd_endpoints=etcd.endpoint,
                      extra_args=["--etcd-prefix", f"/ctlsched-{uuid.uuid4().hex[:8]}", "--no-scheduler",
                                  "--no-controllers"]).start()
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture
def nodes(own_api: ControlPlane) -> ControlPlane:
    """small (1 cpu), large (4 cpu), gpu (8 cpu, tainted), and the API server's cache seeing all three."""
    async def make() -> None:
        async with Client(own_api.address, credentials=own_api.credentials, timeout=10) as c:
            for name, cpu, taints in (("small", "1", []), ("large", "4", []), ("gpu", "8", [GPU_TAINT])):
                await c.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                                "spec": {"taints": taints}})
                node = await c.get("nodes", name)
                node["status"] = {"capacity": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
                                  "allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"}}
                await c.update_status(node)
            # The preview answers from the watch cache, which may trail these writes by a moment.
            deadline = time.monotonic() + 10
            while True:
                seen = (await c.schedule_preview(pod_manifest("probe", cpu="1")))["nodes"]
                if sorted(n["name"] for n in seen if n["feasible"]) == ["large", "small"]:
                    break
                assert time.monotonic() < deadline, f"the API server's cache never saw the three nodes: {seen}"
                await asyncio.sleep(0.1)
    asyncio.run(make())
    return own_api


def pod_manifest(name: str, *, cpu: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "main", "image": "busybox:1.36",
                                     "resources": {"requests": {"cpu": cpu}}}]}}


def deployment_manifest(name: str, *, cpu: str) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "main", "image": "busybox:1.36",
                                                           "resources": {"requests": {"cpu": cpu}}}]}}}}


def ctl(cp: ControlPlane, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "SKIFF_CONFIG": str(tmp_path / "ctl-config")}
    return subprocess.run([sys.executable, "-m", "cli.main", *args, "--config", str(cp.admin_config)], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=60)


def write(tmp_path: Path, name: str, *docs: dict) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(docs))
    return str(path)


def table(stdout: str) -> dict[str, list[str]]:
    """The table's rows by their first cell, cells split on runs of 3+ spaces (tabwriter padding)."""
    import re
    rows = {}
    for line in stdout.splitlines():
        if line.strip() and "  " in line:
            cells = re.split(r"\s{3,}", line.strip())
            rows[cells[0]] = cells[1:]
    return rows


def test_pod_table_shows_every_node_and_the_choice(nodes, tmp_path):
    out = ctl(nodes, tmp_path, "schedule", "--dry-run", "-f", write(tmp_path, "pod.yaml", pod_manifest("what-if", cpu="2")))
    assert out.returncode == 0, out.stderr
    rows = table(out.stdout)
    assert rows["PLUGIN"] == ["gpu", "large", "small"]                       # one column per node
    assert rows["filter NodeResourcesFit"] == ["ok", "ok", "Insufficient cpu"]
    assert rows["filter TaintToleration"] == ["node(s) had untolerated taint {dedicated: gpu}", "ok", "ok"]
    assert rows["filter NodeUnschedulable"] == ["ok", "ok", "ok"]
    assert rows["score TaintToleration (x3)"] == ["-", "300", "-"]           # only feasible nodes are scored
    total = rows["TOTAL"]
    assert total[0] == "-" and total[2] == "-" and int(total[1]) > 0
    assert out.stdout.rstrip().endswith(f'pod default/what-if would be scheduled on node "large" '
                                        f'(highest total, {total[1]}).')
    # a dry run: nothing was created
    assert ctl(nodes, tmp_path, "get", "pods", "-A", "-o", "name").stdout.strip() == ""


def test_unschedulable_pod_gets_the_schedulers_message(nodes, tmp_path):
    out = ctl(nodes, tmp_path, "schedule", "--dry-run", "-f", write(tmp_path, "big.yaml", pod_manifest("big", cpu="64")))
    assert out.returncode == 0, out.stderr
    rows = table(out.stdout)
    assert rows["filter NodeResourcesFit"] == ["Insufficient cpu"] * 3
    assert "TOTAL" not in rows and not [r for r in rows if r.startswith("score ")]     # no node to score
    assert out.stdout.rstrip().splitlines()[-1] == (
        "pod default/big would stay Pending: 0/3 nodes are available: 2 Insufficient cpu, "
        "1 node(s) had untolerated taint {dedicated: gpu}.")


def test_workload_uses_its_pod_template_and_json_output(nodes, tmp_path):
    path = write(tmp_path, "app.yaml", deployment_manifest("web", cpu="3"),
                 {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                  "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
    out = ctl(nodes, tmp_path, "schedule", "--dry-run", "-f", path, "-n", "default")
    assert out.returncode == 0, out.stderr
    assert "skipping service/web: it has no pod to schedule" in out.stderr
    assert table(out.stdout)["filter NodeResourcesFit"] == ["ok", "ok", "Insufficient cpu"]
    assert 'the pod template of deployment.apps default/web would be scheduled on node "large"' in out.stdout

    data = json.loads(ctl(nodes, tmp_path, "schedule", "--dry-run", "-f", path, "-o", "json").stdout)
    assert data["node"] == "large" and [n["name"] for n in data["nodes"]] == ["gpu", "large", "small"]
    assert ctl(nodes, tmp_path, "get", "deploy,pods", "-A", "-o", "name").stdout.strip() == ""


def test_daemonset_runs_on_every_node_that_passes(nodes, tmp_path):
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
          "spec": {"selector": {"matchLabels": {"app": "agent"}},
                   "template": {"metadata": {"labels": {"app": "agent"}},
                                "spec": {"containers": [{"name": "a", "image": "busybox:1.36",
                                                         "resources": {"requests": {"cpu": "2"}}}]}}}}
    out = ctl(nodes, tmp_path, "schedule", "--dry-run", "-f", write(tmp_path, "ds.yaml", ds))
    assert out.returncode == 0, out.stderr
    # the gpu taint is not tolerated (daemon pods only tolerate node-condition taints); small is too small
    assert out.stdout.rstrip().splitlines()[-1] == (
        "the pod template of daemonset.apps default/agent would run one pod on each of 1/3 nodes: large.")


@pytest.mark.parametrize("doc, args, message", [
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
      "spec": {"containers": [{"name": "main"}]}}, (), "spec.containers[0].image"),
    ({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
      "spec": {"replicas": -1, "selector": {"matchLabels": {"a": "b"}},
               "template": {"metadata": {"labels": {"a": "b"}},
                            "spec": {"containers": [{"name": "c", "image": "i"}]}}}}, (), "spec.replicas"),
    ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}, (), 'ConfigMap "x" has no pod to schedule'),
    (pod_manifest("x", cpu="1"), ("--no-dry-run-flag",), "pass --dry-run"),
])
def test_bad_input_exits_nonzero_with_the_field_path(nodes, tmp_path, doc, args, message):
    path = write(tmp_path, "bad.yaml", doc)
    argv = ["schedule", "-f", path] if args == ("--no-dry-run-flag",) else ["schedule", "--dry-run", "-f", path]
    out = ctl(nodes, tmp_path, *argv)
    assert out.returncode == 1
    assert message in out.stderr, out.stderr
    assert out.stdout == ""


def test_dry_run_uses_the_api_servers_scheduler_config(etcd, tmp_path):
    """The preview scores with the weights the scheduler was given, not the defaults."""
    config = tmp_path / "scheduler.yaml"
    config.write_text("scoreWeights:\n  TaintToleration: 7\ndisabledPlugins: [ImageLocality]\n")
    cp = ControlPlane(tmp_path / "cp", etcd_endpoints=etcd.endpoint,
                      extra_args=["--etcd-prefix", f"/ctlsched-{uuid.uuid4().hex[:8]}", "--no-controllers",
                                  "--scheduler-config", str(config)]).start()
    try:
        async def make() -> None:
            async with Client(cp.address, credentials=cp.credentials, timeout=10) as c:
                await c.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "only"}})
                node = await c.get("nodes", "only")
                node["status"] = {"allocatable": {"cpu": "2", "memory": "8Gi", "pods": "110"}}
                await c.update_status(node)
                deadline = time.monotonic() + 10
                while not any(n["feasible"] for n in (await c.schedule_preview(pod_manifest("p", cpu="1")))["nodes"]):
                    assert time.monotonic() < deadline, "the API server's cache never saw the node"
                    await asyncio.sleep(0.1)
        asyncio.run(make())
        out = ctl(cp, tmp_path, "schedule", "--dry-run", "-f", write(tmp_path, "pod.yaml", pod_manifest("p", cpu="1")))
        assert out.returncode == 0, out.stderr
        rows = table(out.stdout)
        assert rows["score TaintToleration (x7)"] == ["700"]
        assert not [r for r in rows if "ImageLocality" in r]
    finally:
        cp.stop()


def test_bad_scheduler_config_stops_the_control_plane_at_start(etcd, tmp_path):
    config = tmp_path / "scheduler.yaml"
    config.write_text("scoreWeights:\n  Nonsense: 1\n")
    cp = ControlPlane(tmp_path / "cp", etcd_endpoints=etcd.endpoint, extra_args=["--scheduler-config", str(config)])
    proc = subprocess.run(cp.args, capture_output=True, text=True, cwd=REPO, timeout=30,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 1
    assert f"error: scheduler config {config}: scoreWeights: " in proc.stderr
    assert "unknown score plugin 'Nonsense'" in proc.stderr
