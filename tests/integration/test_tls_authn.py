"""Transport security and authentication of the API server, as an attacker on the LAN sees it.

Real TLS against the session's API server (its CA and admin credential from its state
directory) and, for --insecure, a control plane of its own.
"""

from __future__ import annotations

import asyncio
import datetime
import stat
import uuid

import grpc
import pytest

from controlplane.client import Client, Credentials, Unauthenticated, Unavailable
from controlplane.pki import anonymous, bootstraptoken, certs
from controlplane.pki.ca import ClusterPKI
from procs import ControlPlane
from protos import skiff_pb2 as pb
from protos import skiff_pb2_grpc as pb_grpc

pytestmark = pytest.mark.asyncio
CONFIGMAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "stolen", "namespace": "default"}}


def ca_only(api_server: ControlPlane) -> Credentials:
    return Credentials(ca=api_server.credentials.ca)


async def test_no_credential_cannot_list_create_or_watch(api_server):
    async with Client(api_server.address, credentials=ca_only(api_server), timeout=10) as c:
        for attempt in (c.list("secrets", "kube-system"), c.create(CONFIGMAP), c.get("namespaces", "default")):
            with pytest.raises(Unauthenticated, match="Unauthorized: no credential: present a client certificate"):
                await attempt
        with pytest.raises(Unauthenticated, match="no credential"):
            async for _ in c.watch("pods"):
                pass
        with pytest.raises(Unauthenticated, match="no credential"):
            async for _ in c.logs("default", "any"):
                pass


async def test_plain_text_to_the_tls_port_gets_nothing(api_server):
    async with Client(f"http://{api_server.address}", timeout=5) as c:
        with pytest.raises(Unavailable):
            await c.list("namespaces")


async def test_a_certificate_from_another_ca_is_refused(api_server, tmp_path):
    other = ClusterPKI.load_or_create(tmp_path / "other-pki")
    forged = other.issue(common_name="kubernetes-admin", organizations=("system:masters",), client=True)
    creds = Credentials(ca=api_server.credentials.ca, cert=forged.cert, key=forged.key)
    async with Client(api_server.address, credentials=creds, timeout=5) as c:
        with pytest.raises(Unavailable):   # the TLS handshake fails: unknown CA
            await c.list("secrets", "kube-system")


async def test_the_public_anonymous_certificate_alone_is_no_identity(api_server):
    creds = Credentials(ca=api_server.credentials.ca, cert=anonymous.CERT, key=anonymous.KEY)
    async with Client(api_server.address, credentials=creds, timeout=5) as c:
        with pytest.raises(Unauthenticated, match="no credential"):
            await c.list("secrets")


async def test_a_server_from_another_ca_is_not_trusted(api_server, tmp_path):
    other = ClusterPKI.load_or_create(tmp_path / "other-pki")
    admin = api_server.credentials
    async with Client(api_server.address, credentials=Credentials(ca=other.ca_pem, cert=admin.cert, key=admin.key),
                      timeout=5) as c:
        with pytest.raises(Unavailable):
            await c.list("namespaces")


def node_request(node: str, client_key=None, serving_key=None) -> pb.NodeCertificatesRequest:
    client_key, serving_key = client_key or certs.new_key(), serving_key or certs.new_key()
    return pb.NodeCertificatesRequest(node_name=node, agent_address="127.0.0.1:10250",
                                      client_csr=certs.csr(client_key, node), serving_csr=certs.csr(serving_key, node))


def join_call(api_server: ControlPlane, token: str, node: str = "n1"):
    return node_request(node), Credentials(ca=api_server.credentials.ca, token=token)


async def node_certificates(api_server: ControlPlane, credentials: Credentials, request) -> pb.NodeCertificatesResponse:
    async with credentials.channel(api_server.address) as channel:
        return await pb_grpc.BootstrapStub(channel).NodeCertificates(request, timeout=10)


async def test_unknown_and_expired_tokens_are_refused_with_the_reason(api_server, client):
    request, creds = join_call(api_server, "abcdef.0123456789abcdef")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await node_certificates(api_server, creds, request)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "bootstrap token 'abcdef' is unknown" in err.value.details()

    token = bootstraptoken.generate()
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=2)
    await client.create(bootstraptoken.secret_for(token, ttl=datetime.timedelta(hours=1), now=past))
    request, creds = join_call(api_server, token)

    async def refused_as_expired() -> str:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await node_certificates(api_server, creds, request)
        return err.value.details()
    details = await refused_as_expired()
    for _ in range(50):   # the token's Secret reaches the server's cache within moments
        if "expired" in details:
            break
        await asyncio.sleep(0.1)
        details = await refused_as_expired()
    assert f"bootstrap token '{token.split('.')[0]}' expired at" in details


async def test_a_bootstrap_token_joins_a_node_and_does_nothing_else(api_server, client):
    token = bootstraptoken.generate()
    await client.create(bootstraptoken.secret_for(token, ttl=datetime.timedelta(minutes=5)))
    node = f"n-{uuid.uuid4().hex[:6]}"
    client_key = certs.new_key()
    request = node_request(node, client_key)
    creds = Credentials(ca=api_server.credentials.ca, token=token)
    for _ in range(50):   # until the token's Secret is in the server's cache
        try:
            reply = await node_certificates(api_server, creds, request)
            break
        except grpc.aio.AioRpcError as exc:
            assert "unknown" in exc.details()
            await asyncio.sleep(0.1)
    issued = certs.load_cert(reply.client_certificate)
    assert certs.identity_of(issued) == certs.Identity(f"system:node:{node}", ("system:nodes",))
    assert certs.sans_of(certs.load_cert(reply.serving_certificate)) == {"127.0.0.1", node}

    async with Client(api_server.address, credentials=creds, timeout=5) as c:
        with pytest.raises(Exception, match="is a bootstrap token: it may only join a node"):
            await c.list("secrets", "kube-system")

    # A node's own certificate renews its own certificates, and no other node's.
    node_creds = Credentials(ca=api_server.credentials.ca, cert=reply.client_certificate,
                             key=certs.key_pem(client_key))
    renewed = await node_certificates(api_server, node_creds, node_request(node))
    assert certs.identity_of(certs.load_cert(renewed.client_certificate)).name == f"system:node:{node}"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await node_certificates(api_server, node_creds, node_request("someone-else"))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "may renew only its own certificates" in err.value.details()


async def test_the_ca_key_stays_private_and_admin_conf_is_0600(api_server):
    pki = api_server.state_dir / "pki"
    assert stat.S_IMODE((pki / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(pki.stat().st_mode) == 0o700
    assert stat.S_IMODE(api_server.admin_config.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" not in (api_server.state_dir / "apiserver.json").read_bytes()


async def test_insecure_is_explicit_and_warns(etcd, tmp_path):
    cp = ControlPlane(tmp_path / "cp", etcd_endpoints=etcd.endpoint,
                      extra_args=["--etcd-prefix", f"/test-{uuid.uuid4().hex[:8]}", "--no-scheduler",
                                  "--no-controllers", "--insecure"]).start()
    try:
        log = cp.log_path.read_text()
        assert "WARNING" in log and "--insecure" in log and "EVERY caller" in log
        async with Client(f"http://{cp.address}", timeout=5) as c:
            assert (await c.get("namespaces", "default"))["metadata"]["name"] == "default"
        assert not (cp.state_dir / "pki").exists()
    finally:
        cp.stop()


async def test_etcd_off_this_machine_needs_tls(tmp_path):
    import subprocess
    import sys
    from procs import REPO
    result = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "controlplane.main", "--state-dir", str(tmp_path),
                             "--etcd-endpoints", "198.18.0.9:2379", "--listen", "127.0.0.1:0"],
                            capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 1
    assert "etcd off this machine must be reached over TLS: give --etcd-cafile" in result.stderr


async def test_etcd_over_tls(tmp_path):
    """The control plane reaches an etcd that serves only TLS and wants a client certificate
    (--etcd-cafile/--etcd-certfile/--etcd-keyfile), as it must for an etcd off the machine."""
    import shutil
    import subprocess
    from procs import free_port, port_open, stop_process, wait_for
    etcd_ca = ClusterPKI.load_or_create(tmp_path / "etcd-pki")
    server = etcd_ca.issue(common_name="etcd", server_names=["127.0.0.1", "localhost"], client=True)
    client = etcd_ca.issue(common_name="skiff-controlplane", client=True)
    files = {}
    for name, data in (("ca.crt", etcd_ca.ca_pem), ("server.crt", server.cert), ("server.key", server.key),
                       ("client.crt", client.cert), ("client.key", client.key)):
        files[name] = tmp_path / name
        files[name].write_bytes(data)
    port, peer = free_port(), free_port()
    url, peer_url = f"https://127.0.0.1:{port}", f"http://127.0.0.1:{peer}"
    log = open(tmp_path / "etcd.log", "wb")
    etcd = subprocess.Popen([shutil.which("etcd"), "--name", "tls", "--data-dir", str(tmp_path / "etcd-data"),
                             "--listen-client-urls", url, "--advertise-client-urls", url,
                             "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                             "--initial-cluster", f"tls={peer_url}", "--client-cert-auth",
                             "--trusted-ca-file", str(files["ca.crt"]), "--cert-file", str(files["server.crt"]),
                             "--key-file", str(files["server.key"]), "--log-level", "error", "--logger", "zap"],
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        await asyncio.to_thread(wait_for, lambda: port_open(port), timeout=15, what="etcd over TLS")
        cp = ControlPlane(tmp_path / "cp", etcd_endpoints=f"127.0.0.1:{port}",
                          extra_args=["--no-scheduler", "--no-controllers", "--etcd-cafile", str(files["ca.crt"]),
                                      "--etcd-certfile", str(files["client.crt"]),
                                      "--etcd-keyfile", str(files["client.key"])])
        await asyncio.to_thread(cp.start)
        try:
            async with Client(cp.address, credentials=cp.credentials, timeout=10) as c:
                await c.create({"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": "over-tls", "namespace": "default"}})
                assert (await c.get("configmaps", "over-tls", "default"))["metadata"]["name"] == "over-tls"
        finally:
            await asyncio.to_thread(cp.stop)
    finally:
        stop_process(etcd)
        log.close()


async def test_token_create_list_delete(api_server):
    import subprocess
    import sys
    from procs import REPO

    def token(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "controlplane.main", "token", "--state-dir",
                               str(api_server.state_dir), *args], capture_output=True, text=True, cwd=REPO, timeout=60)
    created = await asyncio.to_thread(token, "create", "--ttl", "2h", "--description", "rack 4")
    assert created.returncode == 0, created.stderr
    words = created.stdout.split()
    assert words[:2] == ["skiff-agent", "--server"] and words[3] == "--token" and words[5] == "--ca-cert-hash"
    assert bootstraptoken.TOKEN_RE.match(words[4]) and words[6] == certs.ca_hash(certs.load_cert(
        api_server.credentials.ca))
    token_id = words[4].split(".")[0]
    listed = await asyncio.to_thread(token, "list")
    row = next(line for line in listed.stdout.splitlines() if line.startswith(token_id))
    assert "rack 4" in row and row.split()[1].startswith(("1h", "2h")) and words[4] not in listed.stdout
    deleted = await asyncio.to_thread(token, "delete", token_id)
    assert deleted.stdout == f"bootstrap token {token_id!r} deleted\n"
    again = await asyncio.to_thread(token, "delete", token_id)
    assert again.returncode == 1 and f"bootstrap token {token_id!r} not found" in again.stderr
    bad = await asyncio.to_thread(token, "create", "--ttl", "soon")
    assert bad.returncode == 1 and "--ttl: invalid duration 'soon'" in bad.stderr
