"""bench/network.py end to end with tiny parameters: it runs, writes its figures, and
leaves no namespace behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import netlab

pytestmark = pytest.mark.root
REPO = Path(__file__).resolve().parents[2]


def test_bench_network_smoke(tmp_path: Path) -> None:
    reason = netlab.skip_reason()
    if reason:
        pytest.skip(reason)
    out = tmp_path / "network.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "network.py"), "--pods", "3", "--ports", "10",
                           "--seconds", "0.5", "--rr", "200", "--connections", "50", "--runs", "1",
                           "--out", str(out)], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "left behind" not in proc.stderr
    result = json.loads(out.read_text())
    assert result["setup"]["attach"]["count"] == 3 and result["setup"]["detach"]["count"] == 3
    assert result["throughput"]["pod_to_pod_gbit_per_s"] > 0 and result["throughput"]["ratio"] > 0
    assert result["latency"]["pod_to_pod"]["p50_us"] > 0
    assert set(result["hostport"]) == {"direct", "10"}
    assert not [n for n in netlab.sh("ip", "netns", "list").split() if n.startswith("sknb")]
