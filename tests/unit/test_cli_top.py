"""`ctl top`: kubectl's number formats and the two tables, from canned metrics."""

from __future__ import annotations

import pytest

from cli.commands.top import format_cpu, format_memory, format_percent, node_rows, pod_rows
from cli.printers.tabwriter import align

MI = 1 << 20


@pytest.mark.parametrize("nanocores, text", [
    (0, "0m"), (1, "1m"), (999_999, "1m"), (1_000_000, "1m"), (1_000_001, "2m"),   # rounded up, as MilliValue()
    (12_300_000, "13m"), (250_000_000, "250m"), (2_000_000_000, "2000m"),
])
def test_cpu_in_millicores_rounded_up(nanocores, text):
    assert format_cpu(nanocores) == text


@pytest.mark.parametrize("num_bytes, text", [
    (0, "0Mi"), (MI - 1, "0Mi"), (MI, "1Mi"), (34 * MI + 500_000, "34Mi"), (3 * 1024 * MI, "3072Mi"),
])
def test_memory_in_whole_mebibytes_rounded_down(num_bytes, text):
    assert format_memory(num_bytes) == text


def test_percent_truncates_and_handles_no_denominator():
    assert format_percent(0.5, 2) == "25%"
    assert format_percent(0.999, 1) == "99%"
    assert format_percent(3, 2) == "150%"
    assert format_percent(1, 0) == "<unknown>"


def pod(ns: str, name: str, *containers: tuple[str, int, int]) -> dict:
    return {"namespace": ns, "name": name, "uid": name, "node": "n1",
            "containers": [{"name": c, "cpuNanocores": cpu, "memoryBytes": mem} for c, cpu, mem in containers]}


PODS = [pod("default", "web", ("app", 10_000_000, 30 * MI), ("sidecar", 2_000_000, 4 * MI)),
        pod("default", "db", ("pg", 1_000_000, 200 * MI)),
        pod("kube", "dns", ("dns", 50_000_000, 10 * MI))]


def test_pod_table_sums_containers_sorted_by_name():
    assert pod_rows(PODS[:2], all_namespaces=False, containers=False, sort_by=None, show_sum=False) == [
        ["NAME", "CPU(cores)", "MEMORY(bytes)"],
        ["db", "1m", "200Mi"],
        ["web", "12m", "34Mi"]]


def test_pod_table_all_namespaces_sorted_by_cpu_then_memory():
    rows = pod_rows(PODS, all_namespaces=True, containers=False, sort_by="cpu", show_sum=False)
    assert rows[0] == ["NAMESPACE", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert [r[1] for r in rows[1:]] == ["dns", "web", "db"]
    rows = pod_rows(PODS, all_namespaces=True, containers=False, sort_by="memory", show_sum=False)
    assert [r[1] for r in rows[1:]] == ["db", "web", "dns"]


def test_pod_table_per_container_and_sum():
    rows = pod_rows(PODS[:1], all_namespaces=False, containers=True, sort_by=None, show_sum=True)
    assert rows == [["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"],
                    ["web", "app", "10m", "30Mi"],
                    ["web", "sidecar", "2m", "4Mi"],
                    ["", "", "________", "________"],
                    ["", "", "12m", "34Mi"]]
    assert align(rows).splitlines()[0] == "POD   NAME      CPU(cores)   MEMORY(bytes)"
    assert pod_rows(PODS[:1], all_namespaces=False, containers=False, sort_by=None, show_sum=False,
                    headers=False) == [["web", "12m", "34Mi"]]


def node(name: str, cpu: str, memory: str, *, capacity_cpu: str | None = None) -> dict:
    return {"metadata": {"name": name},
            "status": {"allocatable": {"cpu": cpu, "memory": memory},
                       "capacity": {"cpu": capacity_cpu or cpu, "memory": memory}}}


def test_node_table_percent_of_allocatable_and_unknown_nodes():
    nodes = [node("n2", "2", "4Gi"), node("n1", "1500m", "2Gi", capacity_cpu="2"), node("down", "2", "4Gi")]
    usage = {"n1": {"cpuNanocores": 750_000_000, "memoryBytes": 512 * MI},
             "n2": {"cpuNanocores": 100_000_000, "memoryBytes": 3 * 1024 * MI}}
    assert node_rows(nodes, usage, sort_by=None, show_capacity=False) == [
        ["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"],
        ["n1", "750m", "50%", "512Mi", "25%"],
        ["n2", "100m", "5%", "3072Mi", "75%"],
        ["down", "<unknown>", "<unknown>", "<unknown>", "<unknown>"]]
    rows = node_rows(nodes, usage, sort_by="memory", show_capacity=True)
    assert rows[1][0] == "n2" and rows[2] == ["n1", "750m", "37%", "512Mi", "25%"]
