"""`kubectl logs` through the REST API (pods/log), relayed by the API server to the pod's agent.

The "agent" is a gRPC server in the test's event loop serving canned log lines, joined as a
real agent joins (a bootstrap token, the CA pinned; procs.join_node / agent_server_tls), so
the relay is the real one (controlplane/apiserver/proxy.py, over TLS to the node's
certificate). What a real agent's logs hold is tested in tests/node.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid

import pytest

from controlplane.client import Client
from procs import ControlPlane, agent_server_tls, free_port, join_node
from protos import skiff_pb2 as pb
from protos import skiff_pb2_grpc as pb_grpc

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="no kubectl on PATH (the real client is what is tested)")


class LogAgent(pb_grpc.AgentServicer):
    def __init__(self) -> None:
        self.requests: list[pb.LogsRequest] = []

    async def Logs(self, request: pb.LogsRequest, context):  # type: ignore[no-untyped-def]
        self.requests.append(request)
        lines = [f"line {i}\n".encode() for i in range(1, 4)]
        for line in lines[-request.tail_lines:] if request.tail_lines >= 0 else lines:
            yield pb.LogChunk(data=line)


@pytest.fixture
def own_api(etcd, tmp_path) -> ControlPlane:
    cp = ControlPlane(tmp_path / "cp", etcd_endpoints=etcd.endpoint,
                      extra_args=["--etcd-prefix", f"/kubectl-logs-{uuid.uuid4().hex[:8]}", "--no-scheduler",
                                  "--no-controllers"]).start()
    try:
        yield cp
    finally:
        cp.stop()


async def kubectl(cp: ControlPlane, tmp_path, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "KUBECONFIG": str(cp.kubeconfig), "HOME": str(tmp_path)}
    proc = await asyncio.create_subprocess_exec(KUBECTL, *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode, out.decode(), err.decode()


async def test_kubectl_logs_relayed_from_the_agent(own_api: ControlPlane, tmp_path) -> None:
    agent = LogAgent()
    port = free_port()
    certificates, identity = await join_node(own_api, tmp_path, "n1", port)
    server = agent_server_tls(agent, certificates, identity).server
    await server.start()
    try:
        async with Client(own_api.address, credentials=own_api.credentials, timeout=10) as c:
            await c.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
            node = await c.get("nodes", "n1")
            node["status"] = {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                              "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
                              "conditions": [{"type": "Ready", "status": "True"}]}
            await c.update_status(node)
            await c.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
                            "spec": {"nodeName": "n1", "containers": [{"name": "main", "image": "busybox"}]}})
        code, out, err = await kubectl(own_api, tmp_path, "logs", "web")
        assert (code, out) == (0, "line 1\nline 2\nline 3\n"), err
        code, out, err = await kubectl(own_api, tmp_path, "logs", "web", "-c", "main", "--tail=1", "--timestamps",
                                       "--since=30s")
        assert (code, out) == (0, "line 3\n"), err
        asked = agent.requests[-1]
        assert (asked.namespace, asked.pod, asked.container, asked.tail_lines, asked.timestamps, asked.since_seconds) \
            == ("default", "web", "main", 1, True, 30)
        code, out, err = await kubectl(own_api, tmp_path, "logs", "nope")
        assert code == 1 and err.strip() == 'error: error from server (NotFound): pods "nope" not found in namespace "default"'
    finally:
        await server.stop(None)
