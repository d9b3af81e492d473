"""Smoke test of bench/pod_startup.py: a 3-pod run on a real agent must finish, write every
figure docs/PERFORMANCE.md quotes, and leave no process, cgroup or mount behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.root, pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root: runs a real agent")]


def leftovers(parent: str, state_dir: str) -> list[str]:
    found = [line.split()[1] for line in open("/proc/mounts") if parent in line or state_dir in line]
    found += subprocess.run(["find", "/sys/fs/cgroup", "-maxdepth", "3", "-name", parent],
                            capture_output=True, text=True).stdout.split()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if state_dir.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(f"process {pid}")
        except OSError:
            pass
    return found


def test_small_run_writes_every_figure_and_cleans_up(tmp_path: Path) -> None:
    out = tmp_path / "pod_startup.json"
    proc = subprocess.Popen([sys.executable, str(REPO / "bench" / "pod_startup.py"), "--pods", "3", "--out", str(out)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        log, _ = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)          # the bench's finally blocks stop what it started
        log, _ = proc.communicate(timeout=60)
        pytest.fail(f"bench/pod_startup.py did not finish in 300 s:\n{log[-3000:]}")
    assert proc.returncode == 0, log[-3000:]
    data = json.loads(out.read_text())
    assert data["startup"]["create_to_running_ms"]["count"] == 3
    assert data["startup"]["create_to_running_ms"]["p99"] > 0
    for phase in ("idle_no_pods", "running", "idle_after_pods"):
        assert data[phase]["agent_rss_mib"] > 0
    assert data["running"]["workers"] >= 3                          # a supervisor per container (+ the spare)
    assert [s["what"] for s in data["agent_imports"]["steps"]][0] == "python interpreter"
    assert set(data["goals"]) == {"create_to_running_p99_ms", "agent_idle_rss_mb"}
    assert data["cleanup"] == []                                    # the agent had cleaned up after itself
    assert leftovers(data["settings"]["cgroup_parent"], data["settings"]["state_dir"]) == []
    assert not Path(data["settings"]["state_dir"]).exists()
