"""Smoke test of bench/cluster_dns.py: a short run against dnsmasq must finish and write every
figure docs/PERFORMANCE.md quotes ("Cluster DNS"), so the benchmark cannot rot."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from procs import run_bench


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("dnsperf") and (shutil.which("dnsmasq") or Path("/usr/sbin/dnsmasq").exists())),
                    reason="needs dnsmasq and dnsperf (deploy/install.sh --test)")
def test_short_run_writes_every_figure(tmp_path: Path) -> None:
    output = tmp_path / "dns.json"
    done = run_bench("cluster_dns.py", ["--services", "50", "--seconds", "1", "--rounds", "1", "--rate", "200",
                                        "--output", str(output)], timeout=120)
    assert done.returncode == 0, done.stdout[-4000:]
    data = json.loads(output.read_text())
    servers = {"skiff", "skiff, no answer cache", "dnsmasq"}
    # the fixed-rate rounds also ask the floor (a trivial responder) in the same seconds as the servers
    assert set(data["results"]["throughput"]) == servers
    assert set(data["results"]["fixed_rate"]) == servers | {"floor (trivial responder)"}
    assert all(run["floor_p99_same_seconds"] is not None for label, runs in data["results"]["fixed_rate"].items()
               if label in servers for run in runs)
    assert set(data["summary"]["held_goal_where_floor_held_it"]) == servers
    assert all(run["queries_per_second"] > 0 for runs in data["results"]["throughput"].values() for run in runs)
    assert all(run["count"] > 0 and run["p99"] >= 0 for runs in data["results"]["fixed_rate"].values() for run in runs)
    assert data["summary"]["ratio_skiff_to_dnsmasq"] > 0
    assert all(run["machine_stalls"]["wakeups"] > 0 for runs in data["results"]["fixed_rate"].values() for run in runs)
