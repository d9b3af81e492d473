"""`ctl cluster up` / `down`: a local control plane in the background, then nothing left behind."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from procs import REPO, alive, free_port

pytestmark = pytest.mark.slow


def in_session(sid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[3] == str(sid) and fields[0] not in ("Z", "X"):
                out.append(int(entry.name))
    return out


def test_cluster_up_get_down(tmp_path):
    cluster_dir, config = tmp_path / "cluster", tmp_path / "config"
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "SKIFF_CONFIG": str(config)}

    def ctl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cli.main", *args], capture_output=True, text=True, cwd=REPO,
                              env=env, timeout=120)

    pid = 0
    try:
        r = ctl("cluster", "up", "--dir", str(cluster_dir), "--port", str(port), "--nodes", "0")
        assert r.returncode == 0, r.stderr
        pid = int((cluster_dir / "pids" / "controlplane.pid").read_text())
        assert alive(pid)
        assert (cluster_dir / "logs" / "controlplane.log").exists()
        # The client config: the cluster's CA and an admin certificate, as the current context.
        assert config.stat().st_mode & 0o777 == 0o600
        r = ctl("config", "current-context")
        assert r.stdout == "kubernetes-admin@skiff-local\n", r.stderr
        r = ctl("config", "view")
        assert f"server: 127.0.0.1:{port}" in r.stdout and "client-key-data: REDACTED" in r.stdout
        assert "PRIVATE KEY" not in r.stdout

        r = ctl("get", "ns")  # no --server, no other step: TLS and the credential written by `up`
        assert r.returncode == 0, r.stderr
        assert any(line.split()[:2] == ["default", "Active"] for line in r.stdout.splitlines())

        r = ctl("cluster", "up", "--dir", str(cluster_dir), "--port", str(port))
        assert r.returncode == 0 and "already running" in r.stdout

        r = ctl("cluster", "down", "--dir", str(cluster_dir))
        assert r.returncode == 0, r.stderr
        assert f"stopped controlplane (pid {pid})" in r.stdout
        assert not alive(pid)
        assert in_session(pid) == []  # the embedded etcd went too
        assert not cluster_dir.exists()
        r = ctl("get", "ns")
        assert r.returncode == 1 and "is unreachable" in r.stderr
    finally:
        if pid:
            for leftover in in_session(pid):  # only if the test failed half-way
                os.kill(leftover, signal.SIGKILL)


def test_cluster_up_on_a_taken_port_starts_nothing(tmp_path, api_server):
    env = {**os.environ, "PYTHONPATH": str(REPO), "SKIFF_CONFIG": str(tmp_path / "config")}
    r = subprocess.run([sys.executable, "-m", "cli.main", "cluster", "up", "--dir", str(tmp_path / "c"),
                        "--port", str(api_server.port), "--nodes", "0"], capture_output=True, text=True, cwd=REPO, env=env,
                       timeout=60)
    assert r.returncode == 1
    assert r.stderr == f"error: 127.0.0.1:{api_server.port} is already in use; choose another port with --port\n"
    assert not (tmp_path / "c" / "pids").exists() and not (tmp_path / "config").exists()


def test_cluster_up_that_fails_shows_the_log_and_leaves_nothing_running(tmp_path):
    """Without etcd on PATH the control plane exits at once: `up` says why, with the log's last lines."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "SKIFF_CONFIG": str(tmp_path / "config"), "PATH": "/nonexistent"}
    cluster_dir = tmp_path / "c"
    r = subprocess.run([sys.executable, "-m", "cli.main", "cluster", "up", "--dir", str(cluster_dir),
                        "--port", str(free_port()), "--nodes", "0"], capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert lines[0].startswith("error: controlplane exited with status 1 while starting; last lines of ")
    assert any("etcd was not found on PATH" in line for line in lines[1:])
    pid = int((cluster_dir / "pids" / "controlplane.pid").read_text())
    assert not alive(pid) and not (tmp_path / "config").exists()
    r = subprocess.run([sys.executable, "-m", "cli.main", "cluster", "down", "--dir", str(cluster_dir)],
                       capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
    assert r.returncode == 0 and not cluster_dir.exists()


def test_cluster_up_rejects_a_bad_dns_upstream(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "SKIFF_CONFIG": str(tmp_path / "config")}
    r = subprocess.run([sys.executable, "-m", "cli.main", "cluster", "up", "--dir", str(tmp_path / "cluster"),
                        "--port", str(free_port()), "--dns-upstream", "dns.example.org"],
                       capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert r.returncode == 1
    assert r.stderr.strip() == "error: --dns-upstream: invalid address 'dns.example.org': expected IP[:PORT]"
    assert not (tmp_path / "cluster").exists()       # nothing was started
