"""Smoke test of bench/grpc_transport.py: a short run must finish and write every figure
docs/PERFORMANCE.md quotes ("Request streams"), so the benchmark cannot rot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from procs import run_bench


@pytest.mark.slow
def test_short_run_writes_every_figure(tmp_path: Path) -> None:
    output = tmp_path / "grpc.json"
    done = run_bench("grpc_transport.py", ["--requests", "320", "--rate", "100", "--open-seconds", "0.5",
                                           "--output", str(output)], timeout=120)
    assert done.returncode == 0, done.stdout[-4000:]
    results = json.loads(output.read_text())["results"]
    assert set(results) == {"closed loop, 50 in flight", "open loop, 100/s evenly spaced"}
    for rows in results.values():
        assert set(rows) == {"unary", "stream", "batched"}
        for runs in rows.values():
            # (a short run's CPU can be under one clock tick: 0.0 ms is a figure too)
            assert len(runs) == 2 and all(r["requests_per_second"] > 0 and r["server_ms_per_request"] >= 0
                                          and r["client_ms_per_request"] >= 0 for r in runs)
