"""Hollow nodes register, renew Leases, report their pods, finish deletions and die on request."""

from __future__ import annotations

import asyncio
import uuid

from agent.hollow_status import EXIT_AFTER, EXIT_CODE, READY, RUNTIME_VERSION
from controlplane.client import NotFound
from api.nodelease import LEASE_NAMESPACE
from hollow_harness import hollow_nodes, until


def pod(name: str, ns: str, *, annotations: dict[str, str] | None = None, restart: str = "Always") -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "annotations": annotations or {}},
            "spec": {"restartPolicy": restart, "terminationGracePeriodSeconds": 30,
                     "containers": [{"name": "c", "image": "busybox"}]}}


def prefix() -> str:
    return f"h{uuid.uuid4().hex[:6]}"


async def test_nodes_register_and_renew_leases(client):
    async with hollow_nodes(client, 3, prefix=prefix(), lease_renew_seconds=0.5, labels={"zone": "a"}) as cluster:
        for name in cluster.node_names:
            node = await client.get("nodes", name)
            info = node["status"]["nodeInfo"]
            assert info["containerRuntimeVersion"] == RUNTIME_VERSION
            assert node["metadata"]["labels"]["zone"] == "a"
            assert node["status"]["addresses"][0]["address"].startswith("198.18.")
            ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"][0]
            assert ready["status"] == "True"
        name = cluster.node_names[0]
        first = (await client.get("leases", name, LEASE_NAMESPACE))["spec"]["renewTime"]

        async def renewed():
            return (await client.get("leases", name, LEASE_NAMESPACE))["spec"]["renewTime"] != first
        await until(renewed, timeout=5, what="a Lease renewal")

        cluster.kill(name)
        await until(renewed, timeout=5, what="the last renewal in flight")
        stopped = (await client.get("leases", name, LEASE_NAMESPACE))["spec"]["renewTime"]
        await asyncio.sleep(1.5)  # asserting an absence: three intervals in which a dead node must not renew
        assert (await client.get("leases", name, LEASE_NAMESPACE))["spec"]["renewTime"] == stopped
        cluster.revive(name)

        async def renewed_again():
            return (await client.get("leases", name, LEASE_NAMESPACE))["spec"]["renewTime"] != stopped
        await until(renewed_again, timeout=5, what="renewals after revive")
        names = cluster.node_names
    for name in names:  # deregistered on exit
        try:
            await client.get("nodes", name)
            raise AssertionError(f"node {name} left behind")
        except NotFound:
            pass


async def test_bound_pods_run_and_graceful_deletions_finish(client, namespace):
    async with hollow_nodes(client, 2, prefix=prefix()) as cluster:
        await client.create(pod("web", namespace))
        await client.bind(namespace, "web", cluster.node_names[1])

        async def running():
            p = await client.get("pods", "web", namespace)
            ready = any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
            return p["status"].get("phase") == "Running" and ready and p
        p = await until(running, what="the pod Running and Ready")
        assert p["status"]["hostIP"].startswith("198.18.")
        assert p["status"]["podIP"].startswith("198.19.")
        assert p["status"]["containerStatuses"][0]["state"]["running"]

        _, finished = await client.delete("pods", "web", namespace)
        assert not finished  # graceful: the node has to finish it

        async def gone():
            try:
                await client.get("pods", "web", namespace)
                return False
            except NotFound:
                return True
        await until(gone, what="the hollow node to finish the deletion")


async def test_pods_exit_as_annotated(client, namespace):
    async with hollow_nodes(client, 1, prefix=prefix()) as cluster:
        node = cluster.node_names[0]
        await client.create(pod("ok", namespace, restart="Never", annotations={EXIT_AFTER: "0.3"}))
        await client.create(pod("bad", namespace, restart="Never", annotations={EXIT_AFTER: "0.3", EXIT_CODE: "3"}))
        await client.create(pod("flaky", namespace, restart="OnFailure",
                                annotations={EXIT_AFTER: "0.3", EXIT_CODE: "1"}))
        await client.create(pod("unready", namespace, annotations={READY: "false"}))
        for name in ("ok", "bad", "flaky", "unready"):
            await client.bind(namespace, name, node)

        async def phase(name):
            return (await client.get("pods", name, namespace))["status"].get("phase")
        await until(lambda: _eq(phase("ok"), "Succeeded"), what="ok Succeeded")
        await until(lambda: _eq(phase("bad"), "Failed"), what="bad Failed")
        bad = await client.get("pods", "bad", namespace)
        assert bad["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3

        async def restarted():
            p = await client.get("pods", "flaky", namespace)
            return p["status"].get("phase") == "Running" and \
                p["status"]["containerStatuses"][0]["restartCount"] >= 2
        await until(restarted, what="flaky restarted in place (OnFailure)")
        unready = await client.get("pods", "unready", namespace)
        await until(lambda: _eq(phase("unready"), "Running"), what="unready Running")
        unready = await client.get("pods", "unready", namespace)
        assert [c["status"] for c in unready["status"]["conditions"] if c["type"] == "Ready"] == ["False"]


async def _eq(value, expected) -> bool:
    return (await value) == expected


async def test_simulator_command_registers_and_cleans_up(client, api_server, tmp_path):
    """`python -m agent.hollow --nodes 3`: a banner, three nodes, and on SIGTERM no nodes left."""
    import subprocess
    import sys

    from procs import REPO, stop_process
    name = prefix()
    log = tmp_path / "hollow.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "agent.hollow", "--kubeconfig", str(api_server.admin_config), "--nodes", "3",
                                 "--prefix", name, "--labels", "pool=sim"], stdout=out, stderr=out, cwd=REPO)
    try:
        async def registered():
            nodes = (await client.list("nodes", label_selector="pool=sim")).items
            return sorted(n["metadata"]["name"] for n in nodes if n["metadata"]["name"].startswith(name))
        async def all_three():
            found = await registered()
            return found if len(found) == 3 else None
        assert await until(all_three, what="3 nodes from the simulator") == [f"{name}-{i}" for i in range(3)]
        assert "SIMULATED NODES" in log.read_text() and "not a runtime" in log.read_text()
    finally:
        await asyncio.to_thread(stop_process, proc)
    assert proc.returncode == 0, log.read_text()[-2000:]
    assert await registered() == []


async def test_zones_and_leases_only_nodes_leave_pods_alone(client, namespace):
    async with hollow_nodes(client, 3, prefix=prefix(), lease_renew_seconds=0.5, zones=2,
                            report_pods=False) as cluster:
        zones = [(await client.get("nodes", name))["metadata"]["labels"]["topology.kubernetes.io/zone"]
                 for name in cluster.node_names]
        assert zones == ["zone-0", "zone-1", "zone-0"]
        await client.create(pod("idle", namespace))
        await client.bind(namespace, "idle", cluster.node_names[0])

        async def counted():
            return sum(cluster.renewals_by_second.values()) >= 6
        await until(counted, timeout=5, what="renewals counted")
        assert cluster.renewal_failures == 0
        # asserting an absence: the renewals above took a second; a reporting node posts Running well within it
        assert (await client.get("pods", "idle", namespace))["status"].get("phase") != "Running"
