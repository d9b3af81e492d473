"""The control plane reaches etcd over TLS (--etcd-cafile/--etcd-certfile/--etcd-keyfile)
through the failover client (controlplane/storage/etcd_client.py): a real etcd that
requires client certificates, two endpoint spellings of it, objects written and read."""

from __future__ import annotations

import datetime
import shutil
import subprocess

import pytest

from controlplane.client import Client
from controlplane.pki import certs
from procs import ControlPlane, free_port, port_open, wait_for

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]


def write_pki(d):
    d.mkdir()
    ca_key, ca = certs.self_signed_ca("etcd-test-ca")
    day = datetime.timedelta(days=1)
    server_key, client_key = certs.new_key(), certs.new_key()
    server = certs.issue(ca_key, ca, server_key.public_key(), common_name="etcd", server_names=["127.0.0.1", "localhost"],
                         client=True, lifetime=day)
    client = certs.issue(ca_key, ca, client_key.public_key(), common_name="skiff", client=True, lifetime=day)
    for name, data in {"ca.crt": certs.cert_pem(ca), "server.crt": certs.cert_pem(server),
                       "server.key": certs.key_pem(server_key), "client.crt": certs.cert_pem(client),
                       "client.key": certs.key_pem(client_key)}.items():
        (d / name).write_bytes(data)
    return d


async def test_control_plane_over_tls_to_etcd(tmp_path):
    pki = write_pki(tmp_path / "pki")
    port, peer = free_port(), free_port()
    url = f"https://127.0.0.1:{port}"
    args = [shutil.which("etcd"), "--name", "t", "--data-dir", str(tmp_path / "data"),
            "--listen-client-urls", url, "--advertise-client-urls", url,
            "--listen-peer-urls", f"http://127.0.0.1:{peer}", "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-cluster", f"t=http://127.0.0.1:{peer}", "--cert-file", str(pki / "server.crt"),
            "--key-file", str(pki / "server.key"), "--trusted-ca-file", str(pki / "ca.crt"), "--client-cert-auth",
            "--log-level", "error", "--logger", "zap"]
    with open(tmp_path / "etcd.log", "ab") as log:
        etcd = subprocess.Popen(args, stdout=log, stderr=log)
    cp = None
    try:
        wait_for(lambda: port_open(port), timeout=15, what="etcd to listen")
        # The same member twice (by address and by name): one channel over both, over TLS.
        cp = ControlPlane(tmp_path / "cp", etcd_endpoints=f"127.0.0.1:{port},localhost:{port}",
                          extra_args=["--etcd-cafile", str(pki / "ca.crt"), "--etcd-certfile", str(pki / "client.crt"),
                                      "--etcd-keyfile", str(pki / "client.key")]).start()
        async with Client(cp.address, credentials=cp.credentials) as client:
            await client.apply({"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": "over-tls", "namespace": "default"}, "data": {"k": "v"}})
            assert (await client.get("configmaps", "over-tls", "default"))["data"] == {"k": "v"}
    finally:
        if cp:
            cp.stop()
        etcd.terminate()
        etcd.wait(15)
