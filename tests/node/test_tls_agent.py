"""The agent's identity and its port, attacked and used: real TLS, a real agent, real pods.

A dedicated control plane whose node certificates live 30 s (so renewal is seen within a
test), one `skiff-agent` that joined with a bootstrap token, and the busybox test image.
- port 10250 serves only the API server's certificate: plain text, the public anonymous
  certificate, the administrator's and the node's own certificates are all refused;
- a Node whose status someone rewrote, or a made-up Node, cannot draw exec to another address;
- the certificates renew before expiry without a restart, and exec still works afterwards;
- joining with an unknown token, or pinning the wrong CA, is refused with the reason.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from controlplane.client import Client, Credentials, NotFound
from controlplane.pki import anonymous, certs
from procs import REPO, AgentProcess, ControlPlane, force_cleanup, free_port
from protos import skiff_pb2 as pb
from protos import skiff_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root: runs real containers")]
IMAGE = "skiff.local/busybox:1.35"
NODE = f"tls-node-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def cluster(etcd, tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("tls-cluster")
    out = base / "image"
    subprocess.run([sys.executable, str(REPO / "deploy" / "build-test-image.py"), "--out", str(out / "layout"),
                    "--archive", str(out / "busybox.tar")], check=True, capture_output=True)
    cp = ControlPlane(base / "cp", etcd_endpoints=etcd.endpoint,
                      extra_args=["--etcd-prefix", f"/tls-{uuid.uuid4().hex[:8]}", "--no-scheduler",
                                  "--no-controllers", "--node-cert-ttl", "30s"]).start()
    state = base / "agent"
    parent = f"skiff-test-{uuid.uuid4().hex[:8]}"
    from agent.images import ImageStore
    asyncio.run(ImageStore(state / "images").load_archive(out / "busybox.tar"))
    agent = AgentProcess(state, controlplane=cp, node_name=NODE, cgroup_parent=parent).start()
    try:
        yield {"cp": cp, "agent": agent, "state": state}
    finally:
        async def drain() -> None:
            async with Client(cp.address, credentials=cp.credentials) as c:
                for p in (await c.list("pods")).items:
                    try:
                        await c.delete("pods", p["metadata"]["name"], p["metadata"]["namespace"], grace_seconds=0)
                    except NotFound:
                        pass
                deadline = time.monotonic() + 20
                while [p for p in (await c.list("pods")).items if p["spec"].get("nodeName") == NODE] \
                        and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
        try:
            if agent.proc and agent.proc.poll() is None:
                asyncio.run(drain())
        finally:
            agent.stop()
            cp.stop()
            force_cleanup(state, parent)
            shutil.rmtree(state, ignore_errors=True)


def admin(cluster) -> Client:
    return Client(cluster["cp"].address, credentials=cluster["cp"].credentials, timeout=15)


async def running_pod(c: Client, name: str, node: str = NODE) -> None:
    await c.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
                    "spec": {"nodeName": node, "restartPolicy": "Always", "terminationGracePeriodSeconds": 1,
                             "containers": [{"name": "main", "image": IMAGE, "command": ["sleep", "300"]}]}})
    if node != NODE:
        return
    deadline = time.monotonic() + 60     # the first pod waits for the agent to register
    while time.monotonic() < deadline:
        if ((await c.get("pods", name, "default")).get("status") or {}).get("phase") == "Running":
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"pod {name} did not start")


async def exec_hostname(c: Client, pod: str) -> str:
    async def inputs():
        yield pb.ExecInput(start=pb.ExecStart(namespace="default", pod=pod, container="main", command=["hostname"]))
        yield pb.ExecInput(stdin_closed=True)
    out = b""
    async for message in c.exec(inputs()):
        out += message.stdout
    return out.decode().strip()


def agent_port(cluster) -> int:
    return cluster["agent"].port


@dataclass
class Refusal:
    """How a raw call ended: the status the agent (or the handshake) gave it."""
    code: grpc.StatusCode
    text: str

    def details(self) -> str:
        return self.text


async def raw_exec(address: str, channel: grpc.aio.Channel) -> Refusal:
    """A direct Exec on the agent's port, as an attacker on the LAN would make it. The status is
    read from the call itself. The agent refuses before it reads the first message, so the call
    is given a few seconds to end before anything is sent: a send that races the refusal fails on
    the client's side ("Internal error from Core"), which says nothing about what the agent
    answered. Only a call the agent did not refuse gets the Exec request written."""
    async with channel:
        call = pb_grpc.AgentStub(channel).Exec(timeout=10)
        try:
            await asyncio.wait_for(asyncio.shield(call.code()), 3)
        except asyncio.TimeoutError:
            try:
                await call.write(pb.ExecInput(start=pb.ExecStart(namespace="default", pod="victim",
                                                                 container="main", command=["id"])))
                await call.done_writing()
                async for _ in call:
                    pass
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                pass
        code = await call.code()
        assert code != grpc.StatusCode.OK, "the agent ran an Exec for a caller that is not the API server"
        return Refusal(code, await call.details())


async def test_the_agent_port_serves_only_the_api_server(cluster):
    async with admin(cluster) as c:
        await running_pod(c, "victim")
        assert await exec_hostname(c, "victim") == "victim"    # through the API server: allowed
    address = f"127.0.0.1:{agent_port(cluster)}"
    ca = cluster["cp"].credentials.ca
    override = [("grpc.ssl_target_name_override", NODE)]

    plain = await raw_exec(address, grpc.aio.insecure_channel(address))
    assert plain.code == grpc.StatusCode.UNAVAILABLE

    anon = Credentials(ca=ca, cert=anonymous.CERT, key=anonymous.KEY)
    refused = await raw_exec(address, anon.channel(address, options=override))
    assert refused.code == grpc.StatusCode.UNAVAILABLE      # handshake: not from the cluster CA

    admin_creds = cluster["cp"].credentials
    denied = await raw_exec(address, admin_creds.channel(address, options=override))
    assert denied.code == grpc.StatusCode.PERMISSION_DENIED
    assert '"kubernetes-admin" may not call the agent\'s Exec: only the API server' in denied.details()

    pki = cluster["state"] / "pki"
    node_creds = Credentials(ca=ca, cert=(pki / "node.crt").read_bytes(), key=(pki / "node.key").read_bytes())
    denied = await raw_exec(address, node_creds.channel(address, options=override))
    assert denied.code == grpc.StatusCode.PERMISSION_DENIED


class Listener:
    """A stand-in attacker: a TCP port that records whether anyone connects."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
                self.connections += 1
                conn.close()
            except OSError:
                pass

    def close(self) -> None:
        self.stopped = True
        self.thread.join(2)
        self.sock.close()


async def test_a_node_object_written_by_someone_else_cannot_redirect_exec(cluster):
    attacker = Listener()
    try:
        async with admin(cluster) as c:
            await running_pod(c, "target")
            # The real node's status rewritten to point at the attacker: exec still reaches the real agent.
            node = await c.get("nodes", NODE)
            node["status"]["addresses"] = [{"type": "InternalIP", "address": "127.0.0.1"}]
            node["status"]["daemonEndpoints"] = {"kubeletEndpoint": {"Port": attacker.port}}
            await c.update_status(node)
            assert await exec_hostname(c, "target") == "target"
            # A made-up node pointing at the attacker: nothing is relayed anywhere.
            await c.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "fake-node"},
                            "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                                       "daemonEndpoints": {"kubeletEndpoint": {"Port": attacker.port}}}})
            await running_pod(c, "lure", node="fake-node")
            with pytest.raises(grpc.aio.AioRpcError, match="node fake-node has no agent address recorded by its own "
                                                           "identity"):
                await exec_hostname(c, "lure")
            with pytest.raises(Exception, match="fake-node"):
                async for _ in c.logs("default", "lure"):
                    pass
            await c.delete("pods", "lure", "default", grace_seconds=0)
            await c.delete("nodes", "fake-node")
        assert attacker.connections == 0
    finally:
        attacker.close()


async def test_certificates_renew_before_expiry_without_a_restart(cluster):
    pki = cluster["state"] / "pki"
    first = certs.load_cert((pki / "node.crt").read_bytes())
    first_serving = certs.load_cert((pki / "serving.crt").read_bytes())
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        current = certs.load_cert((pki / "node.crt").read_bytes())
        if current.serial_number != first.serial_number:
            break
        await asyncio.sleep(0.5)
    else:
        raise AssertionError("the node certificate was not renewed within 45 s (lifetime 30 s)")
    assert current.not_valid_after_utc > first.not_valid_after_utc
    assert first.not_valid_after_utc > certs.now()                     # renewed before expiry
    assert certs.load_cert((pki / "serving.crt").read_bytes()).serial_number != first_serving.serial_number
    pid = cluster["agent"].proc.pid
    async with admin(cluster) as c:
        await running_pod(c, "after-renewal")
        assert await exec_hostname(c, "after-renewal") == "after-renewal"   # the new serving certificate
        lease = await c.get("leases", NODE, "skiff-node-lease")
        await asyncio.sleep(0)
        end = time.monotonic() + 15
        while time.monotonic() < end:   # the agent keeps renewing its Lease on its new credential
            again = await c.get("leases", NODE, "skiff-node-lease")
            if again["spec"]["renewTime"] != lease["spec"]["renewTime"]:
                break
            await asyncio.sleep(0.3)
        else:
            raise AssertionError("the agent stopped renewing its Lease after the certificate renewal")
    assert cluster["agent"].proc.pid == pid and cluster["agent"].proc.poll() is None


def run_agent(cluster, tmp_path: Path, *join: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.main", *join, "--node-name", "joiner",
                           "--state-dir", str(tmp_path / "joiner"), "--listen", f"127.0.0.1:{free_port()}",
                           "--node-ip", "127.0.0.1", "--no-network"],
                          capture_output=True, text=True, cwd=REPO, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def test_join_with_an_unknown_token_or_the_wrong_ca_is_refused(cluster, tmp_path):
    cp: ControlPlane = cluster["cp"]
    good = cp.join_args()
    ca_hash = good[good.index("--ca-cert-hash") + 1]
    result = run_agent(cluster, tmp_path, "--server", cp.address, "--token", "abcdef.0123456789abcdef",
                       "--ca-cert-hash", ca_hash)
    assert result.returncode == 1
    assert "bootstrap token 'abcdef' is unknown" in result.stderr, result.stderr

    wrong = "sha256:" + "0" * 64
    result = run_agent(cluster, tmp_path, "--server", cp.address, "--token", good[good.index("--token") + 1],
                       "--ca-cert-hash", wrong)
    assert result.returncode == 1
    assert f"does not match --ca-cert-hash {wrong}" in result.stderr and "refusing to join" in result.stderr
    assert not (tmp_path / "joiner" / "pki" / "node.crt").exists()

    result = run_agent(cluster, tmp_path, "--server", cp.address)
    assert result.returncode == 1 and "join with --token and --ca-cert-hash" in result.stderr
