"""The Service address pools (controlplane/apiserver/service_alloc.py) and what the Service
strategy keeps on update, as tables: no etcd needed for these parts."""

from __future__ import annotations

import ipaddress

import pytest

from controlplane.apiserver.service_alloc import Holder, ServiceNetwork, cluster_ip_pool, node_port_pool
from controlplane.apiserver.service_strategy import ServiceStrategy


class FakeStore:
    prefix = "/p"


def test_network_flags_checked_by_name():
    ServiceNetwork().check()
    assert ServiceNetwork(cluster_ip_range="198.18.130.0/24").kubernetes_ip() == "198.18.130.1"
    for network, flag in ((ServiceNetwork(cluster_ip_range="10.0.0.1/24"), "--service-cluster-ip-range"),
                          (ServiceNetwork(cluster_ip_range="fd00::/64"), "--service-cluster-ip-range"),
                          (ServiceNetwork(node_port_range="3-2"), "--service-node-port-range"),
                          (ServiceNetwork(node_port_range="a-b"), "--service-node-port-range")):
        with pytest.raises(ValueError, match=flag):
            network.check()


def test_dynamic_picks_avoid_the_static_band_until_it_is_all_that_is_left():
    pool = cluster_ip_pool(FakeStore(), ServiceNetwork(cluster_ip_range="10.0.0.0/24"))
    first = int(ipaddress.IPv4Address("10.0.0.1"))
    assert pool.size == 254 and pool.static == 16
    picked = set()
    for _ in range(254 - 16):
        value = pool.pick(picked)
        assert value is not None and value >= first + 16
        picked.add(value)
    assert pool.pick(picked) < first + 16          # the dynamic band is full: the static band is used
    pool.held = {v: Holder("ns", "x", "u") for v in range(first, first + 254)}
    assert pool.pick(set()) is None
    assert pool.key(first) == b"/p/_clusterips/10.0.0.1"


def test_node_ports_pool():
    pool = node_port_pool(FakeStore(), ServiceNetwork())
    assert (pool.first, pool.size) == (30000, 2768) and pool.contains(32767) and not pool.contains(32768)
    assert pool.key(30080) == b"/p/_nodeports/30080"


@pytest.mark.parametrize("old_spec,new_spec,expect", [
    # clusterIP left out by an update: kept.
    ({"clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"], "ports": [{"port": 80}]},
     {"ports": [{"port": 80}]},
     {"clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"], "internalTrafficPolicy": "Cluster"}),
    # nodePorts left out (a port list replaced whole): kept per port and protocol.
    ({"type": "NodePort", "clusterIP": "10.96.0.5", "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30001}]},
     {"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP"}]},
     {"ports": [{"port": 80, "protocol": "TCP", "nodePort": 30001}], "externalTrafficPolicy": "Cluster"}),
    # To ExternalName: the cluster IP is dropped.
    ({"clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"]},
     {"type": "ExternalName", "externalName": "db.example.com", "clusterIP": "10.96.0.5"},
     {"type": "ExternalName", "externalName": "db.example.com"}),
])
def test_prepare_for_update_keeps_what_was_allocated(old_spec, new_spec, expect):
    strategy = ServiceStrategy(FakeStore(), ServiceNetwork())
    new = {"spec": dict(new_spec)}
    strategy.prepare_for_update({"spec": old_spec}, new)
    for key, value in expect.items():
        assert new["spec"][key] == value
    if new["spec"].get("type") == "ExternalName":
        assert "clusterIP" not in new["spec"]
