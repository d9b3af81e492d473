"""`ctl top pods|nodes` through a real API server, with fake agents serving canned usage.

The API server asks every Ready node's agent at once with a short deadline; here one node's
"agent" is a gRPC server in the test's event loop, one node points at a port where nothing
listens, and one node is not Ready. The nodes join as real agents do (a bootstrap token, the
CA pinned, certificates from `Bootstrap.NodeCertificates`), and the fake agent serves over TLS
to the API server's certificate only (procs.agent_server_tls, agent/service.py AgentServer). Real
agents sampling real cgroups are covered by tests/node/test_agent_top.py.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

import pytest

from controlplane.client import Client
from procs import REPO, ControlPlane, agent_server_tls, free_port, join_node
from protos import skiff_pb2 as pb
from protos import skiff_pb2_grpc as pb_grpc

MI = 1 << 20


class FakeAgent(pb_grpc.AgentServicer):
    def __init__(self, node: str) -> None:
        self.node = node
        self.pods: dict[str, pb.PodMetrics] = {}
        self.ready = False
        self.requests: list[pb.MetricsRequest] = []

    async def Metrics(self, request: pb.MetricsRequest, context) -> pb.MetricsResponse:
        self.requests.append(request)
        if not self.ready:
            return pb.MetricsResponse(pending=[self.node])
        return pb.MetricsResponse(
            nodes=[pb.NodeMetrics(name=self.node, cpu_nanocores=500_000_000, memory_bytes=1024 * MI)],
            pods=[self.pods[uid] for uid in request.pod_uids if uid in self.pods])


@pytest.fixture
def own_api(etcd, tmp_path) -> ControlPlane:
    cp = ControlPlane(tmp_path / "cp", etcd_endpoints=etcd.endpoint,
                      extra_args=["--etcd-prefix", f"/ctltop-{uuid.uuid4().hex[:8]}", "--no-scheduler",
                                  "--no-controllers"]).start()
    try:
        yield cp
    finally:
        cp.stop()


async def make_node(c: Client, name: str, *, port: int, ready: bool) -> None:
    await c.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    node = await c.get("nodes", name)
    node["status"] = {"capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                      "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                      "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                      "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
                      "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    await c.update_status(node)


async def ctl(cp: ControlPlane, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "SKIFF_CONFIG": str(tmp_path / "ctl-config")}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "cli.main", *args, "--config", str(cp.admin_config),
                                                cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode, out.decode(), err.decode()


async def test_top_through_the_api_server(own_api, tmp_path):
    agent = FakeAgent("n1")
    port = free_port()
    certificates, identity = await join_node(own_api, tmp_path, "n1", port)
    await join_node(own_api, tmp_path, "n2", free_port())         # nothing listens there
    await join_node(own_api, tmp_path, "n3", port)
    server = agent_server_tls(agent, certificates, identity).server
    await server.start()
    try:
        async with Client(own_api.address, credentials=own_api.credentials, timeout=10) as c:
            await make_node(c, "n1", port=port, ready=True)
            await make_node(c, "n2", port=port, ready=True)
            await make_node(c, "n3", port=port, ready=False)
            for name in ("web", "db"):
                await c.create({"apiVersion": "v1", "kind": "Pod",
                                "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
                                "spec": {"nodeName": "n1", "containers": [{"name": "main", "image": "busybox"}]}})
            uids = {name: (await c.get("pods", name, "default"))["metadata"]["uid"] for name in ("web", "db")}

            # agents without a complete sample yet
            code, out, err = await ctl(own_api, tmp_path, "top", "nodes")
            assert code == 1 and "error: metrics not available yet" in err, err
            code, out, err = await ctl(own_api, tmp_path, "top", "pods")
            assert code == 1 and "error: metrics not available yet" in err, err

            agent.ready = True
            agent.pods = {uids["web"]: pb.PodMetrics(namespace="default", name="web", uid=uids["web"], node="n1",
                                                     containers=[pb.ContainerMetrics(name="main", cpu_nanocores=12_300_000,
                                                                                     memory_bytes=34 * MI)]),
                          uids["db"]: pb.PodMetrics(namespace="default", name="db", uid=uids["db"], node="n1",
                                                    containers=[pb.ContainerMetrics(name="main", cpu_nanocores=1,
                                                                                    memory_bytes=200 * MI)])}
            started = time.monotonic()
            code, out, err = await ctl(own_api, tmp_path, "top", "nodes")
            assert code == 0, err
            assert out.splitlines() == [
                "NAME   CPU(cores)   CPU%        MEMORY(bytes)   MEMORY%",
                "n1     500m         25%         1024Mi          25%",
                "n2     <unknown>    <unknown>   <unknown>       <unknown>",
                "n3     <unknown>    <unknown>   <unknown>       <unknown>"]
            assert "warning: n2: cannot reach its agent at 127.0.0.1:" in err
            assert "warning: n3: node is not Ready" in err
            assert time.monotonic() - started < 20      # the dead node costs at most the short deadline

            code, out, err = await ctl(own_api, tmp_path, "top", "pods", "--sort-by", "memory")
            assert code == 0, err
            assert out.splitlines() == ["NAME   CPU(cores)   MEMORY(bytes)",
                                        "db     1m           200Mi",
                                        "web    13m          34Mi"]
            code, out, err = await ctl(own_api, tmp_path, "top", "po", "-l", "app=web", "--containers")
            assert out.splitlines() == ["POD   NAME   CPU(cores)   MEMORY(bytes)", "web   main   13m          34Mi"]
            # the agent was asked only for the pods the selector matched
            assert list(agent.requests[-1].pod_uids) == [uids["web"]]
            code, out, err = await ctl(own_api, tmp_path, "top", "pod", "db", "-A")
            assert out.splitlines()[1].split() == ["db", "1m", "200Mi"]

            code, out, err = await ctl(own_api, tmp_path, "top", "pods", "-n", "kube-system")
            assert code == 0 and out == "" and "No resources found in kube-system namespace." in err
            code, out, err = await ctl(own_api, tmp_path, "top", "pod", "nope")
            assert code == 1 and 'pods "nope" not found' in err
    finally:
        await server.stop(grace=None)
