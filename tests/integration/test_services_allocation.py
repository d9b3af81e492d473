"""Cluster IPs and node ports against a real etcd and real API servers: unique under
concurrency (also across two API servers on one etcd), requested values honoured or
refused by name, released on delete, immutable, headless, and the `kubernetes` Service."""

from __future__ import annotations

import asyncio
import ipaddress
import uuid

import pytest
from procs import ControlPlane

from controlplane.client import Client
from controlplane.client.errors import ApiError, Invalid

RANGE = "10.97.0.0/24"   # small, so parallel creates really compete for addresses


def service(name: str, namespace: str, *, type_: str = "ClusterIP", cluster_ip: str | None = None,
            ports: list[dict] | None = None, selector: dict | None = None) -> dict:
    spec: dict = {"type": type_, "ports": ports if ports is not None else [{"port": 80, "targetPort": 8080}]}
    if cluster_ip is not None:
        spec["clusterIP"] = cluster_ip
    if selector is not None:
        spec["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": spec}


@pytest.fixture(scope="module")
def two_servers(etcd, tmp_path_factory):
    """Two API servers sharing one etcd prefix and a small service range."""
    prefix = f"/svc-{uuid.uuid4().hex[:8]}"
    args = ["--etcd-prefix", prefix, "--no-scheduler", "--no-controllers", "--service-cluster-ip-range", RANGE,
            "--service-node-port-range", "30000-30099"]
    a = ControlPlane(tmp_path_factory.mktemp("cp-a"), etcd_endpoints=etcd.endpoint, extra_args=args).start()
    b = ControlPlane(tmp_path_factory.mktemp("cp-b"), etcd_endpoints=etcd.endpoint, extra_args=args).start()
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


@pytest.fixture
async def clients(two_servers):
    a, b = two_servers
    async with Client(a.address, credentials=a.credentials, timeout=20) as ca, \
            Client(b.address, credentials=b.credentials, timeout=20) as cb:
        ns = f"t-{uuid.uuid4().hex[:10]}"
        await ca.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        yield ca, cb, ns


async def test_parallel_creates_on_two_api_servers_never_share_an_ip(clients):
    ca, cb, ns = clients
    n = 120
    created = await asyncio.gather(*((ca if i % 2 else cb).create(service(f"s{i}", ns)) for i in range(n)))
    ips = [s["spec"]["clusterIP"] for s in created]
    assert len(set(ips)) == n, "two Services got one cluster IP"
    net = ipaddress.ip_network(RANGE)
    assert all(ipaddress.ip_address(ip) in net for ip in ips)
    assert all(s["spec"]["clusterIPs"] == [s["spec"]["clusterIP"]] for s in created)
    # What the servers stored agrees with what they answered.
    stored = {s["metadata"]["name"]: s["spec"]["clusterIP"] for s in (await ca.list("Service", ns)).items}
    assert stored == {s["metadata"]["name"]: s["spec"]["clusterIP"] for s in created}


async def test_requested_ip_honoured_then_refused_naming_the_holder_then_released(clients):
    ca, cb, ns = clients
    first = await ca.create(service("first", ns, cluster_ip="10.97.0.10"))
    assert first["spec"]["clusterIP"] == "10.97.0.10"
    with pytest.raises(Invalid) as err:
        await cb.create(service("second", ns, cluster_ip="10.97.0.10"))
    assert "spec.clusterIP" in err.value.message
    assert f"provided IP is already allocated to Service {ns}/first" in err.value.message
    with pytest.raises(Invalid) as err:
        await ca.create(service("outside", ns, cluster_ip="10.200.0.1"))
    assert 'spec.clusterIP: Invalid value: "10.200.0.1": provided IP is not in the valid range. ' \
           f"The range of valid IPs is {RANGE}" in err.value.message
    await ca.delete("Service", "first", ns)
    again = await cb.create(service("second", ns, cluster_ip="10.97.0.10"))
    assert again["spec"]["clusterIP"] == "10.97.0.10"


async def test_cluster_ip_is_immutable_and_kept_when_an_update_leaves_it_out(clients):
    ca, _, ns = clients
    svc = await ca.create(service("web", ns))
    ip = svc["spec"]["clusterIP"]
    changed = {**svc, "spec": {**svc["spec"], "clusterIP": "10.97.0.11", "clusterIPs": ["10.97.0.11"]}}
    with pytest.raises(Invalid) as err:
        await ca.update(changed)
    assert 'spec.clusterIP: Invalid value: "10.97.0.11": field is immutable' in err.value.message
    left_out = {**svc, "spec": {k: v for k, v in svc["spec"].items() if k not in ("clusterIP", "clusterIPs")}}
    updated = await ca.update(left_out)
    assert updated["spec"]["clusterIP"] == ip
    # apply of the same manifest twice: unchanged, and the IP stays.
    manifest = service("applied", ns)
    first, result = await ca.apply(manifest)
    assert result == "created"
    again, result = await ca.apply(manifest)
    assert result == "unchanged" and again["spec"]["clusterIP"] == first["spec"]["clusterIP"]


async def test_headless_and_bad_specs(clients):
    ca, _, ns = clients
    headless = await ca.create(service("db", ns, cluster_ip="None"))
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["clusterIPs"] == ["None"]
    headless_no_ports = await ca.create(service("db2", ns, cluster_ip="None", ports=[]))
    assert headless_no_ports["spec"]["clusterIP"] == "None"
    with pytest.raises(Invalid) as err:
        await ca.create(service("noports", ns, ports=[]))
    assert "spec.ports: field required" in err.value.message
    with pytest.raises(Invalid) as err:
        await ca.create(service("np", ns, type_="NodePort", cluster_ip="None"))
    assert "spec.clusterIP" in err.value.message and "'None'" in err.value.message
    with pytest.raises(Invalid) as err:
        await ca.update({**headless, "spec": {**headless["spec"], "clusterIP": "10.97.0.12",
                                              "clusterIPs": ["10.97.0.12"]}})
    assert "field is immutable" in err.value.message


async def test_node_ports_allocated_conflicts_named_and_released(clients):
    ca, cb, ns = clients
    np = await ca.create(service("np1", ns, type_="NodePort",
                                 ports=[{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]))
    ports = [p["nodePort"] for p in np["spec"]["ports"]]
    assert all(30000 <= p <= 30099 for p in ports) and len(set(ports)) == 2
    assert np["spec"]["externalTrafficPolicy"] == "Cluster"
    taken = ports[0]
    with pytest.raises(Invalid) as err:
        await cb.create(service("np2", ns, type_="NodePort", ports=[{"port": 80, "nodePort": taken}]))
    assert f"spec.ports[0].nodePort: Invalid value: {taken}: provided port is already allocated to Service " \
           f"{ns}/np1" in err.value.message
    with pytest.raises(Invalid) as err:
        await cb.create(service("np3", ns, type_="NodePort", ports=[{"port": 80, "nodePort": 31000}]))
    assert "provided port is not in the valid range. The range of valid ports is 30000-30099" in err.value.message
    # An update that leaves the node ports out keeps them; switching to ClusterIP releases them.
    same, result = await ca.apply(service("np1", ns, type_="NodePort",
                                          ports=[{"name": "http", "port": 80},
                                                 {"name": "dns", "port": 53, "protocol": "UDP"}]))
    assert [p["nodePort"] for p in same["spec"]["ports"]] == ports
    await ca.apply(service("np1", ns, type_="ClusterIP", ports=[{"name": "http", "port": 80}]))
    mine = await cb.create(service("np2", ns, type_="NodePort", ports=[{"port": 80, "nodePort": taken}]))
    assert mine["spec"]["ports"][0]["nodePort"] == taken
    await cb.delete("Service", "np2", ns)
    again = await ca.create(service("np4", ns, type_="NodePort", ports=[{"port": 80, "nodePort": taken}]))
    assert again["spec"]["ports"][0]["nodePort"] == taken


async def test_parallel_node_port_creates_never_share_a_port(clients):
    ca, cb, ns = clients
    created = await asyncio.gather(*((ca if i % 2 else cb).create(service(f"p{i}", ns, type_="NodePort"))
                                     for i in range(40)))
    ports = [s["spec"]["ports"][0]["nodePort"] for s in created]
    assert len(set(ports)) == 40


async def test_kubernetes_service_points_at_the_api_servers(two_servers):
    a, b = two_servers
    async with Client(a.address, credentials=a.credentials, timeout=10) as c:
        async def ready():
            try:
                svc = await c.get("Service", "kubernetes", "default")
                ep = await c.get("Endpoints", "kubernetes", "default")
                eps = await c.get("EndpointSlice", "kubernetes", "default")
            except ApiError:
                return None
            return svc, ep, eps
        svc, ep, eps = await wait_for_async(ready)
        assert svc["spec"]["clusterIP"] == "10.97.0.1"
        assert svc["spec"]["ports"] == [{"name": "https", "protocol": "TCP", "port": 443,
                                         "targetPort": a.rest_port}]   # the REST API, for in-cluster clients
        assert ep["subsets"][0]["addresses"] == [{"ip": "127.0.0.1"}]
        assert eps["metadata"]["labels"]["kubernetes.io/service-name"] == "kubernetes"
        assert eps["addressType"] == "IPv4" and eps["endpoints"][0]["addresses"] == ["127.0.0.1"]


async def wait_for_async(fn, timeout: float = 20.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await fn()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


def test_bad_range_flags_are_refused_by_name(tmp_path):
    import subprocess
    import sys
    from procs import REPO
    for flag, value in (("--service-cluster-ip-range", "10.0.0.0/33"), ("--service-cluster-ip-range", "10.0.0.1/24"),
                        ("--service-node-port-range", "30000-70000")):
        done = subprocess.run([sys.executable, "-m", "controlplane.main", "--state-dir", str(tmp_path), flag, value],
                              capture_output=True, text=True, cwd=REPO, timeout=30)
        assert done.returncode == 1
        assert done.stderr.startswith(f"error: {flag} {value}") and "Traceback" not in done.stderr


async def test_services_stored_without_addresses_get_them_at_start(etcd, tmp_path):
    """A cluster upgraded in place: Services written before cluster IPs were allocated get
    theirs (and node ports) when an API server starts."""
    import json

    import aetcd

    prefix = f"/old-{uuid.uuid4().hex[:8]}"
    host, _, port = etcd.endpoint.replace("http://", "").rpartition(":")
    raw = aetcd.Client(host=host, port=int(port))
    try:
        for name, spec in (("web", {"type": "ClusterIP", "selector": {"app": "web"},
                                    "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}]}),
                           ("np", {"type": "NodePort", "selector": {"app": "np"},
                                   "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}]}),
                           ("db", {"type": "ClusterIP", "clusterIP": "None", "selector": {"app": "db"},
                                   "ports": [{"port": 5432, "protocol": "TCP", "targetPort": 5432}]})):
            body = {"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}",
                                 "creationTimestamp": "2026-01-01T00:00:00Z"}, "spec": spec}
            await raw.put(f"{prefix}/services/default/{name}".encode(), json.dumps(body).encode())
    finally:
        await raw.close()
    cp = ControlPlane(tmp_path, etcd_endpoints=etcd.endpoint,
                      extra_args=["--etcd-prefix", prefix, "--no-scheduler", "--no-controllers",
                                  "--service-cluster-ip-range", RANGE]).start()
    try:
        async with Client(cp.address, credentials=cp.credentials, timeout=10) as c:
            async def allocated():
                web, np = await c.get("Service", "web", "default"), await c.get("Service", "np", "default")
                return (web, np) if web["spec"].get("clusterIP") and np["spec"].get("clusterIP") else None
            web, np = await wait_for_async(allocated)
            assert ipaddress.ip_address(web["spec"]["clusterIP"]) in ipaddress.ip_network(RANGE)
            assert 30000 <= np["spec"]["ports"][0]["nodePort"] <= 32767
            assert (await c.get("Service", "db", "default"))["spec"]["clusterIP"] == "None"
    finally:
        cp.stop()
