"""`ctl port-forward` through a real API server and a real agent gRPC service (AgentService,
in this process), all over TLS: several connections at once, a Service's port translated to its
pod's target port, a refused port reported, Ctrl-C ends it. The pod is the one thing outside the
system here: its "IP" is 127.0.0.1, where the test serves an echo.

The API server is the session's (TLS); ctl uses the administrator's admin.conf. The node joins
as a real agent does (a bootstrap token, the CA pinned: procs.join_node) and its AgentService
serves TLS with the node's serving certificate to the API server only (procs.agent_server_tls),
so the API server's relay (proxy._relay_stream, shared with exec) dials the agent over TLS at
the address the node's identity recorded. The Node object's status names another port, where
nothing listens: it is not what the API server dials.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import uuid
from pathlib import Path

from procs import ControlPlane, agent_server_tls, free_port, join_node

from agent.service import AgentService

REPO = Path(__file__).resolve().parent.parent.parent
CTL_WITH_CTRL_C = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
                   "runpy.run_module('cli.main', run_name='__main__', alter_sys=True)")


async def echo_server() -> asyncio.Server:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data.upper())
            await writer.drain()
        writer.close()
    return await asyncio.start_server(echo, "127.0.0.1", 0)


async def start_ctl(api_server: ControlPlane, tmp_path: Path, *args: str) -> asyncio.subprocess.Process:
    """`ctl port-forward ARGS` with the administrator's client config (TLS, its certificate)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "SKIFF_CONFIG": str(tmp_path / "none")}
    return await asyncio.create_subprocess_exec(sys.executable, "-c", CTL_WITH_CTRL_C, "port-forward", *args,
                                                "--config", str(api_server.admin_config),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                cwd=REPO, env=env)


async def round_trip(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    writer.write_eof()
    data = await asyncio.wait_for(reader.read(), 20)
    writer.close()
    return data


async def test_port_forward_pod_and_service(api_server, client, namespace, tmp_path):
    echo = await echo_server()
    echo_port = echo.sockets[0].getsockname()[1]
    agent_port = free_port()
    node = f"pf-{uuid.uuid4().hex[:8]}"
    certificates, identity = await join_node(api_server, tmp_path, node, agent_port)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-0", "namespace": namespace,
                                                           "labels": {"app": "web"}},
           "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox",
                                                      "ports": [{"name": "http", "containerPort": echo_port}]}]}}
    created = await client.create(pod)
    running = await client.update_status({**created, "status": {
        "phase": "Running", "podIP": "127.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]}})
    # The status claims another port; only the address the node's identity recorded is dialled.
    await client.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node},
                         "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                                    "daemonEndpoints": {"kubeletEndpoint": {"Port": free_port()}}}})
    await client.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": namespace},
                         "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}})
    service = AgentService(runtime=None, node_name=node,
                           find_pod=lambda ns, name: running if (ns, name) == (namespace, "web-0") else None,
                           states=lambda: {})
    agent_task = asyncio.create_task(agent_server_tls(service, certificates, identity).run())
    procs = []
    try:
        for target, spec in (("pod/web-0", f":{echo_port}"), ("svc/web", ":80")):
            proc = await start_ctl(api_server, tmp_path, target, spec, "-n", namespace)
            procs.append(proc)
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            match = re.fullmatch(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)\n", line)
            assert match, line
            assert int(match.group(2)) == echo_port   # a Service's port 80 is its pod's port "http"
            local = int(match.group(1))
            # Several connections at once, each its own stream.
            answers = await asyncio.gather(*(round_trip(local, f"hello {i} ".encode() * 5000) for i in range(5)))
            assert answers == [f"HELLO {i} ".encode() * 5000 for i in range(5)]
        # A port nothing listens on: the error is reported, the forwarder goes on.
        closed_port, local = free_port(), free_port()
        proc = await start_ctl(api_server, tmp_path, "web-0", f"{local}:{closed_port}", "-n", namespace)
        procs.append(proc)
        assert (await asyncio.wait_for(proc.stdout.readline(), 30)).decode() == \
            f"Forwarding from 127.0.0.1:{local} -> {closed_port}\n"
        assert await round_trip(local, b"x") == b""
        err = (await asyncio.wait_for(proc.stderr.readline(), 20)).decode()
        assert f"error forwarding port {closed_port} to pod web-0" in err and "refused" in err.lower()
        for proc in procs:
            proc.send_signal(signal.SIGINT)
            assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        agent_task.cancel()
        await asyncio.gather(agent_task, return_exceptions=True)
        echo.close()
        await client.delete("Node", node)
