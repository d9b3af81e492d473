"""hostPorts of the pod network (agent/network/hostports.py, nftables.py): reading them
from a pod, reserving them per node, and the nftables text they become."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from agent.network import NetworkError
from agent.network.hostports import HostPort, HostPortTable, host_ports_of, pod_uid
from agent.network.nftables import add_elements_script, delete_elements_script, setup_script
from agent.network.podlink import host_link_name


def pod(*ports: dict, uid: str = "u1") -> dict:
    return {"metadata": {"uid": uid, "name": "web", "namespace": "shop"},
            "spec": {"containers": [{"name": "c", "ports": list(ports)}]}}


def test_host_ports_read_from_containers() -> None:
    got = host_ports_of(pod({"containerPort": 80, "hostPort": 8080},
                            {"containerPort": 53, "hostPort": 5353, "protocol": "UDP"},
                            {"containerPort": 9090}))                     # no hostPort: not mapped
    assert got == [HostPort("TCP", 8080, 80), HostPort("UDP", 5353, 53)]


def test_same_mapping_twice_is_one() -> None:
    assert host_ports_of(pod({"containerPort": 80, "hostPort": 8080}, {"containerPort": 80, "hostPort": 8080})) \
        == [HostPort("TCP", 8080, 80)]


@pytest.mark.parametrize("port, message", [
    ({"containerPort": 80, "hostPort": 8080, "protocol": "ICMP"},
     "spec.containers[0].ports[0].protocol: unsupported value 'ICMP'"),
    ({"containerPort": 80, "hostPort": 70000}, "spec.containers[0].ports[0].hostPort: must be a port number"),
    ({"containerPort": "http", "hostPort": 80}, "spec.containers[0].ports[0].containerPort: must be a port"),
])
def test_bad_ports_name_the_field(port: dict, message: str) -> None:
    with pytest.raises(NetworkError, match=message.replace("[", r"\[").replace("]", r"\]")):
        host_ports_of(pod(port))


def test_one_host_port_to_two_container_ports_is_refused() -> None:
    with pytest.raises(NetworkError, match="8080/TCP is mapped twice, to container ports 80 and 81"):
        host_ports_of(pod({"containerPort": 80, "hostPort": 8080}, {"containerPort": 81, "hostPort": 8080}))


def test_pod_without_uid() -> None:
    with pytest.raises(NetworkError, match="metadata.uid"):
        pod_uid({"metadata": {"name": "x"}})


def test_reservations_conflict_and_persist(tmp_path: Path) -> None:
    table = HostPortTable(tmp_path / "hostports").load()
    table.set("u1", "shop/web", [HostPort("TCP", 8080, 80)])
    assert table.conflicts("u1", [HostPort("TCP", 8080, 80)]) == []
    assert table.conflicts("u2", [HostPort("UDP", 8080, 80)]) == []          # other protocol: free
    assert table.conflicts("u2", [HostPort("TCP", 8080, 9)]) == [
        "hostPort 8080/TCP is already used by pod shop/web on this node"]
    again = HostPortTable(tmp_path / "hostports").load()
    assert again.ports("u1") == [HostPort("TCP", 8080, 80)]
    again.remove("u1")
    assert HostPortTable(tmp_path / "hostports").load().uids() == []
    assert list((tmp_path / "hostports").iterdir()) == [], "one file per pod, removed with its ports"


def test_nft_scripts() -> None:
    entries = [(HostPort("TCP", 8080, 80), IPv4Address("198.19.1.7")),
               (HostPort("UDP", 5353, 53), IPv4Address("198.19.1.9"))]
    assert add_elements_script(table="skiff", entries=entries) == \
        "add element inet skiff hostports { tcp . 8080 : 198.19.1.7 . 80, udp . 5353 : 198.19.1.9 . 53 }\n"
    assert delete_elements_script(table="skiff", ports=[p for p, _ in entries]) == \
        "delete element inet skiff hostports { tcp . 8080, udp . 5353 }\n"
    assert add_elements_script(table="skiff", entries=[]) == ""
    script = setup_script(table="skiff", bridge="skiff0", pod_cidr=IPv4Network("198.19.1.0/24"),
                          cluster_cidr=IPv4Network("198.19.0.0/16"), entries=entries)
    assert script.count("dnat ip to meta l4proto . th dport map @hostports") == 2    # prerouting and output
    assert script.index("flush map inet skiff hostports") < script.index("add element")  # one transaction


def test_host_link_names_fit_the_kernel_limit() -> None:
    names = {host_link_name(f"5f0c6e2a-{i:04d}-4d7e-9a53-1c2b3d4e5f60") for i in range(1000)}
    assert len(names) == 1000
    assert all(len(n) == 15 and n.startswith("skv") for n in names)
