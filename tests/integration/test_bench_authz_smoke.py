"""Smoke test of bench/authz.py: a short run must finish and write every figure
docs/PERFORMANCE.md quotes ("Authorization"), so the benchmark cannot rot."""

from __future__ import annotations

import json
from pathlib import Path

from procs import run_bench


def test_quick_run_writes_every_figure(tmp_path: Path) -> None:
    output = tmp_path / "authz.json"
    done = run_bench("authz.py", ["--quick", "--namespaces", "20", "--bindings-per-namespace", "8", "--pods", "500",
                                  "--output", str(output)], timeout=120)
    assert done.returncode == 0, done.stdout[-4000:]
    data = json.loads(output.read_text())
    assert len(data["microseconds_per_decision"]) == 7
    assert all(us > 0 for us in data["microseconds_per_decision"].values())
    assert data["rbac_index_rebuild_ms"] > 0 and data["bindings"] > 160
