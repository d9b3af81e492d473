"""Smoke test of bench/api.py: a --quick run (1 s per scenario, 50 watchers, 100 requests
per verb; about 15 s) must finish and write every figure docs/PERFORMANCE.md quotes, so the
benchmark cannot rot.

The bench starts its own etcd, API server and load processes; procs.run_bench runs it in
its own process group so that, should it hang, the test can stop all of them by that group's id.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from procs import run_bench


@pytest.mark.slow
def test_quick_run_writes_every_figure(tmp_path: Path) -> None:
    output = tmp_path / "api.json"
    done = run_bench("api.py", ["--quick", "--compare-insecure", "--output", str(output)], timeout=300)
    assert done.returncode == 0, done.stdout[-4000:]
    assert "1. create throughput" in done.stdout and "3b. watch fan-out" in done.stdout

    data = json.loads(output.read_text())
    for key in ("benchmark", "date", "command", "machine", "settings", "create_throughput", "mixed_load",
                "watch_fanout", "goals"):
        assert key in data, f"missing {key}"

    create = data["create_throughput"]
    assert create["created"] > 0 and create["errors"] == 0, create
    assert create["creates_per_second"] > 0
    assert {"p50", "p99"} <= set(create["latency_ms"])
    assert {"api-server", "etcd"} <= set(create["cpu_percent"])

    mixed = data["mixed_load"]
    assert mixed["errors"] == 0, mixed["error_samples"]
    for verb in ("create", "update", "get"):
        assert {"p50", "p90", "p99"} <= set(mixed["verbs"][verb]["latency_ms"]), verb
    assert mixed["sweep"] and "p99_ms" in mixed["sweep"][0]

    for shape in ("kubelet", "broadcast"):
        fanout = data["watch_fanout"][shape]
        assert fanout["deliveries_expected"] > 0, shape
        assert fanout["lost"] == 0 and fanout["failed_streams"] == 0, fanout
        assert {"p50", "p99"} <= set(fanout["delivery_delay_ms"]), shape
    assert data["watch_fanout"]["kubelet"]["watchers"] == 50

    assert set(data["goals"]) == {"create_throughput", "mixed_load_p99", "watch_fanout_kubelet_p99",
                                  "watch_fanout_broadcast_p99", "tls_vs_insecure_create_ratio",
                                  "rest_vs_grpc_create_ratio"}

    rest = data["rest_vs_grpc"]   # creates through the Kubernetes REST API vs gRPC, same server
    assert rest["rest"] > 0 and rest["grpc"] > 0 and rest["ratio"] > 0, rest
    assert rest["runs"]["rest"][0]["errors"] == 0, rest["runs"]["rest"][0]["error_samples"]
    assert "5. REST vs gRPC: creates/s" in done.stdout

    assert data["transport"] == "TLS, client certificate"
    ratio = data["tls_vs_insecure"]
    assert ratio["creates_per_second"]["insecure"] > 0 and ratio["creates_per_second"]["ratio"] > 0
    assert set(ratio["mixed_p99_ms"]) == {"create", "update", "get"}
    assert data["insecure"]["create_throughput"]["errors"] == 0
    assert "0. TLS vs --insecure: creates/s" in done.stdout

    assert "4. API server CPU per request" in done.stdout
    verbs = data["cost"]["verbs"]
    for verb in ("bare gRPC call (a server that does nothing)", "create pod", "get pod", "update pod",
                 "bind pod, with its Scheduled event", "each watch event delivered, per watcher"):
        assert "cpu_ms_per_request" in verbs[verb], verb
    assert create["cpu_ms_per_create"]["api-server"] > 0
