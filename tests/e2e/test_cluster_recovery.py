"""Crash recovery of a local cluster, used as a user would: `kill -9` of the control plane,
then `ctl cluster up` restarts it (and says what it restarted and what was running);
`ctl cluster down` stops everything any `up` started, an orphaned etcd included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from procs import REPO, alive, free_port, port_open, wait_for

pytestmark = [pytest.mark.slow]


def holding(path: Path) -> list[int]:
    """Live processes whose command line mentions path (the cluster's directory)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(path) in cmdline and alive(int(entry.name)):
                out.append(int(entry.name))
    return out


KEPT = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kept, namespace: default}\ndata: {k: v}\n"


@pytest.fixture
def cluster(tmp_path):
    cluster_dir, config = tmp_path / "cluster", tmp_path / "config"
    env = {**os.environ, "PYTHONPATH": str(REPO), "SKIFF_CONFIG": str(config)}

    def ctl(*args: str, timeout: float = 180, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cli.main", *args], capture_output=True, text=True,
                              cwd=REPO, env=env, timeout=timeout, input=input)
    ctl.dir = cluster_dir
    try:
        yield ctl
    finally:
        if cluster_dir.exists():
            ctl("cluster", "down", "--dir", str(cluster_dir))
        for pid in holding(cluster_dir):   # only if the test failed half-way
            os.kill(pid, signal.SIGKILL)


def test_kill_9_of_the_control_plane_then_up_restarts_it(cluster):
    nodes = "1" if os.geteuid() == 0 else "0"
    port = free_port()
    r = cluster("cluster", "up", "--dir", str(cluster.dir), "--port", str(port), "--nodes", nodes)
    assert r.returncode == 0, r.stderr
    state = cluster.dir / "controlplane"
    cp = int((cluster.dir / "pids" / "controlplane.pid").read_text())
    etcd = int((state / "etcd.pid").read_text())
    r = cluster("apply", "-f", "-", input=KEPT)
    assert r.returncode == 0, r.stderr

    os.kill(cp, signal.SIGKILL)
    wait_for(lambda: not alive(etcd), timeout=10, what="etcd to die with its control plane")
    wait_for(lambda: not port_open(port), timeout=5, what="the API port to close")

    r = cluster("cluster", "up", "--dir", str(cluster.dir))
    assert r.returncode == 0, r.stderr
    new_cp = int((cluster.dir / "pids" / "controlplane.pid").read_text())
    first = r.stdout.splitlines()[0]
    expected = f"control plane restarted (pid {new_cp})" + ("; node-1 agent running" if nodes == "1" else "")
    assert first == expected
    assert alive(new_cp) and new_cp != cp
    r = cluster("get", "configmap", "kept", "-o", "jsonpath={.data.k}")
    assert r.returncode == 0 and r.stdout.strip() == "v", r.stderr

    r = cluster("cluster", "up", "--dir", str(cluster.dir))
    assert r.returncode == 0 and "already running" in r.stdout

    if nodes == "1":   # an agent killed: `up` starts it again, it rejoins with its certificate
        agent = int((cluster.dir / "pids" / "agent-node-1.pid").read_text())
        os.kill(agent, signal.SIGKILL)
        wait_for(lambda: not alive(agent), timeout=10, what="the agent to die")
        r = cluster("cluster", "up", "--dir", str(cluster.dir))
        assert r.returncode == 0, r.stderr
        new_agent = int((cluster.dir / "pids" / "agent-node-1.pid").read_text())
        assert r.stdout.splitlines()[0] == f"node-1 agent restarted (pid {new_agent}); control plane running"

    new_etcd = int((state / "etcd.pid").read_text())
    r = cluster("cluster", "down", "--dir", str(cluster.dir))
    assert r.returncode == 0, r.stderr
    assert not alive(new_cp) and not alive(new_etcd)
    assert holding(cluster.dir) == [] and not cluster.dir.exists()


def test_down_stops_an_orphaned_etcd(cluster, tmp_path):
    """The issue's case: the control plane was killed and its etcd left running on the
    cluster's data (as before parent-death signals); `down` stops it by its recorded PID."""
    from controlplane.etcd import EmbeddedEtcd
    port = free_port()
    r = cluster("cluster", "up", "--dir", str(cluster.dir), "--port", str(port), "--nodes", "0")
    assert r.returncode == 0, r.stderr
    state = cluster.dir / "controlplane"
    cp = int((cluster.dir / "pids" / "controlplane.pid").read_text())
    os.kill(cp, signal.SIGKILL)
    etcd = int((state / "etcd.pid").read_text())
    wait_for(lambda: not alive(etcd), timeout=10, what="etcd to die with its control plane")
    # An etcd on the same data directory without a parent-death signal: an orphan.
    embedded = EmbeddedEtcd(state)
    argv = [a for a in embedded._args() if a not in ("setpriv", "--pdeathsig", "TERM", "--")]
    with open(tmp_path / "orphan.log", "ab") as log:
        orphan = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
    try:
        (state / "etcd.pid").write_text(f"{orphan.pid}\n")
        wait_for(lambda: port_open(embedded.client_port), timeout=15, what="the orphan to listen")
        r = cluster("cluster", "down", "--dir", str(cluster.dir))
        assert r.returncode == 0, r.stderr
        assert orphan.wait(10) is not None
        assert holding(cluster.dir) == [] and not port_open(embedded.client_port)
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()
