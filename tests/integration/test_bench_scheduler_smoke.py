"""Smoke test of bench/scheduler.py: tiny runs (50 hollow nodes renewing Leases every 2 s, 200 pods)
of the plain workload and of the Deployments workload must finish and write the figures
docs/PERFORMANCE.md quotes, so the benchmark cannot rot. About 10 s each.

The bench starts its own etcd, API server, scheduler and load processes; procs.run_bench runs it in
its own process group so that, should it hang, the test can stop all of them by that group's id.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from procs import run_bench


@pytest.mark.slow
@pytest.mark.parametrize("workload,extra", [("plain", []), ("deployments", []), ("plain", ["--node-api-server"])],
                         ids=["plain", "deployments", "plain-node-api-server"])
def test_tiny_run_with_leases_writes_every_figure(tmp_path: Path, workload: str, extra: list[str]) -> None:
    output = tmp_path / "scheduler.json"
    done = run_bench("scheduler.py", ["--nodes", "50", "--pods", "200", "--lease-seconds", "2", "--workload", workload,
                                      "--deployments", "4", "--output", str(output), *extra], timeout=120)
    assert done.returncode == 0, done.stdout[-4000:]
    assert "lease renewals:" in done.stdout

    data = json.loads(output.read_text())
    result = data["result"]
    assert result["pods_bound"] == 200
    for key in ("pods_bound_per_second", "create_to_bound_ms", "seen_created_to_bound_ms", "goal_met"):
        assert key in result, f"missing {key}"
    assert result["create_to_bound_ms"]["count"] == 200
    assert data["loadavg_start"] and data["loadavg_end"]
    leases = data["leases"]
    assert leases["expected_per_second"] == 25.0
    assert leases["renewal_failures"] == 0
    assert leases["seconds"] == 0 or leases["per_second"] > 0
    assert "hollow-nodes" in data["cpu_percent_of_a_core"]
    if extra:   # the nodes' own API server is measured too
        assert "nodes-api-server" in data["cpu_percent_of_a_core"]
    if workload == "deployments":
        assert data["deployments"]["count"] == 4 and data["deployments"]["replicas"] == 50
        assert result["goal_pods_per_second"] == 400
    else:
        assert result["done_pods_per_second"] == 300
