"""The node's identity: joining with a bootstrap token, and renewing before expiry.

Files in `<state-dir>/pki/` (keys 0600):

    ca.crt                   the cluster CA, pinned at join by its hash
    node.crt, node.key       client certificate CN=system:node:<name>, O=system:nodes
    serving.crt, serving.key the agent's serving certificate (SANs: its IP and the node name)

**Join** (kubeadm's token discovery): the agent knows the server, a token and
`sha256:<hex>` of the CA's public key. It opens a TLS connection without trusting anyone
yet, takes the CA from the chain the server presents, and refuses unless the SHA-256 of
that CA's SubjectPublicKeyInfo equals the pin and the server's certificate was signed by
it. Only then does it speak gRPC, verifying the server against that CA, and send the
token with two CSRs (keys made here, never sent) to `Bootstrap.NodeCertificates`.

**Renew**: at 70% of the client certificate's life (kubelet renews between 70 and 90%)
the agent asks again with its current certificate; the API client switches to the new
one without a restart (`Client.renew_credentials`), and the serving side picks the new
pair up at the next handshake (`serving_credentials`, gRPC's dynamic credentials).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import grpc

from controlplane.client.credentials import Credentials, split_target
from controlplane.client.privatefile import write_private
import controlplane.pki.anonymous as anonymous
import controlplane.pki.certs as certs
from protos import skiff_pb2 as pb
from protos import skiff_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)
RENEW_AT = 0.7          # fraction of the certificate's lifetime


class JoinError(Exception):
    """The node cannot get (or keep) its identity; the message says why. `retry_for`: seconds
    worth retrying (the server is not up yet; a token just created is not in its cache yet)."""

    def __init__(self, message: str, *, retry_for: float = 0.0):
        super().__init__(message)
        self.retry_for = retry_for


UNREACHABLE_RETRY = 60.0     # an agent started before its control plane waits this long for it
NEW_TOKEN_RETRY = 3.0        # a token's Secret reaches the API server's cache within milliseconds


@dataclass(frozen=True)
class NodeIdentity:
    ca: bytes
    cert: bytes
    key: bytes
    serving_cert: bytes
    serving_key: bytes

    def client_credentials(self) -> Credentials:
        return Credentials(ca=self.ca, cert=self.cert, key=self.key)

    def renew_due(self) -> float:
        """Seconds until this identity should be renewed (negative: overdue)."""
        cert = certs.load_cert(self.cert)
        # notBefore is back-dated by CLOCK_SKEW for clocks behind the signer's; the life counts from issue.
        end = cert.not_valid_after_utc
        start = min(cert.not_valid_before_utc + certs.CLOCK_SKEW, end)
        due = start + (end - start) * RENEW_AT
        return (due - certs.now()).total_seconds()


class NodeCertificates:
    """The files of one node's identity, and getting them."""

    def __init__(self, state_dir: Path, *, server: str, node_name: str, agent_address: str):
        self.dir = state_dir / "pki"
        self.server = server
        self.node_name = node_name
        self.agent_address = agent_address

    def load(self) -> NodeIdentity | None:
        try:
            read = lambda name: (self.dir / name).read_bytes()  # noqa: E731
            identity = NodeIdentity(read("ca.crt"), read("node.crt"), read("node.key"), read("serving.crt"),
                                    read("serving.key"))
            ca, cert = certs.load_cert(identity.ca), certs.load_cert(identity.cert)
        except (OSError, ValueError):
            return None
        if not certs.issued_by(cert, ca) or cert.not_valid_after_utc <= certs.now():
            return None
        return identity

    def _save(self, identity: NodeIdentity) -> None:
        write_private(self.dir / "ca.crt", identity.ca, mode=0o644)
        write_private(self.dir / "node.key", identity.key)
        write_private(self.dir / "node.crt", identity.cert, mode=0o644)
        write_private(self.dir / "serving.key", identity.serving_key)
        write_private(self.dir / "serving.crt", identity.serving_cert, mode=0o644)

    async def ensure(self, *, token: str | None, ca_cert_hash: str | None) -> NodeIdentity:
        """The stored identity if it is valid, else join with the token (which must be given)."""
        identity = self.load()
        if identity is not None:
            if ca_cert_hash and certs.ca_hash(certs.load_cert(identity.ca)) != ca_cert_hash:
                raise JoinError(f"the CA stored in {self.dir} does not match --ca-cert-hash {ca_cert_hash}; "
                                f"remove {self.dir} to join another cluster")
            if self._recorded_address() != self.agent_address:
                # The agent serves elsewhere now: its serving certificate and the address the API
                # server dials must follow.
                return await self.renew(identity)
            return identity
        if not token or not ca_cert_hash:
            raise JoinError(f"this node has no valid certificate in {self.dir}: join with "
                            f"--token and --ca-cert-hash (`skiff-controlplane token create` prints the command)")
        start = asyncio.get_running_loop().time()
        while True:
            try:
                ca = await asyncio.to_thread(fetch_ca, self.server, ca_cert_hash)
                identity = await self._request(Credentials(ca=ca, token=token), ca)
                break
            except JoinError as exc:
                if asyncio.get_running_loop().time() - start >= exc.retry_for:
                    raise
                log.info("joining: %s (retrying)", exc)
                await asyncio.sleep(0.5)
        log.info("joined the cluster at %s as system:node:%s", self.server, self.node_name)
        return identity

    async def renew(self, current: NodeIdentity) -> NodeIdentity:
        identity = await self._request(current.client_credentials(), current.ca)
        log.info("renewed the node certificates (valid until %s)",
                 certs.load_cert(identity.cert).not_valid_after_utc.isoformat())
        return identity

    async def _request(self, credentials: Credentials, ca: bytes) -> NodeIdentity:
        client_key, serving_key = certs.new_key(), certs.new_key()
        request = pb.NodeCertificatesRequest(node_name=self.node_name, agent_address=self.agent_address,
                                             client_csr=certs.csr(client_key, self.node_name),
                                             serving_csr=certs.csr(serving_key, self.node_name))
        async with credentials.channel(self.server) as channel:
            try:
                reply = await pb_grpc.BootstrapStub(channel).NodeCertificates(request, timeout=30)
            except grpc.aio.AioRpcError as exc:
                details = exc.details() or exc.code().name
                retry = (UNREACHABLE_RETRY if exc.code() == grpc.StatusCode.UNAVAILABLE
                         else NEW_TOKEN_RETRY if "is unknown" in details else 0.0)
                raise JoinError(f"the API server at {self.server} refused the node certificates: {details}",
                                retry_for=retry) from None
        if certs.load_cert(reply.ca_certificate) != certs.load_cert(ca):
            raise JoinError("the API server answered with a different CA than the one pinned")
        identity = NodeIdentity(ca, reply.client_certificate, certs.key_pem(client_key), reply.serving_certificate,
                                certs.key_pem(serving_key))
        self._save(identity)
        write_private(self.dir / "agent-address", self.agent_address.encode(), mode=0o644)
        return identity

    def _recorded_address(self) -> str:
        try:
            return (self.dir / "agent-address").read_text()
        except OSError:
            return ""

    def serving_credentials(self, identity: NodeIdentity) -> grpc.ServerCredentials:
        """TLS for the agent's server: its serving pair, re-read at each handshake when renewed;
        a client certificate from the cluster CA is required (the guard then wants skiff-apiserver)."""
        served = {"cert": identity.serving_cert}

        def config_of(cert: bytes, key: bytes) -> Any:
            return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=identity.ca)

        def fetch() -> Any:
            try:
                cert = (self.dir / "serving.crt").read_bytes()
                if cert == served["cert"]:
                    return None
                key = (self.dir / "serving.key").read_bytes()
            except OSError:
                return None
            served["cert"] = cert
            return config_of(cert, key)

        return grpc.dynamic_ssl_server_credentials(config_of(identity.serving_cert, identity.serving_key), fetch,
                                                   require_client_authentication=True)

    async def keep_renewed(self, identity: NodeIdentity, on_renewed: Callable[[NodeIdentity], Any]) -> None:
        """Renew at 70% of each certificate's life, forever; failures are retried every 10 s."""
        while True:
            await asyncio.sleep(max(identity.renew_due(), 0.0))
            try:
                identity = await self.renew(identity)
            except Exception as exc:  # keep the current identity; it is still valid for a while
                log.warning("renewing the node certificates failed (retrying in 10s): %s", exc)
                await asyncio.sleep(10)
                continue
            result = on_renewed(identity)
            if asyncio.iscoroutine(result):
                await result


def fetch_ca(server: str, ca_cert_hash: str, *, timeout: float = 10.0) -> bytes:
    """The CA the server presents in its TLS chain, if its public key matches the pin (blocking)."""
    target, plain = split_target(server)
    if plain:
        raise JoinError(f"--server {server}: a node joins over TLS; drop http://")
    if not ca_cert_hash.startswith("sha256:") or len(ca_cert_hash) != len("sha256:") + 64:
        raise JoinError(f"--ca-cert-hash {ca_cert_hash!r}: expected sha256:<64 hex digits>")
    host, _, port = target.rpartition(":")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE          # nothing is trusted yet: the pin decides below
    context.set_alpn_protocols(["h2"])
    with tempfile.TemporaryDirectory() as tmp:   # ssl loads a client pair only from files
        cert_file, key_file = Path(tmp, "anon.crt"), Path(tmp, "anon.key")
        cert_file.write_bytes(anonymous.CERT)
        key_file.write_bytes(anonymous.KEY)
        context.load_cert_chain(cert_file, key_file)
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=host.strip("[]")) as tls:
                # Python 3.13 has SSLSocket.get_unverified_chain(); 3.11 and 3.12 have it on _sslobj.
                chain = [c.public_bytes(ssl._ssl.ENCODING_DER) for c in tls._sslobj.get_unverified_chain()]  # type: ignore[attr-defined]
    except OSError as exc:
        raise JoinError(f"cannot reach the API server at {server}: {exc}", retry_for=UNREACHABLE_RETRY) from None
    from cryptography import x509
    presented = [x509.load_der_x509_certificate(der) for der in chain]
    if not presented:
        raise JoinError(f"the API server at {server} presented no certificate")
    for candidate in presented:
        if certs.ca_hash(candidate) == ca_cert_hash:
            if not certs.issued_by(presented[0], candidate):
                raise JoinError("the server's certificate is not signed by the pinned CA")
            return certs.cert_pem(candidate)
    found = ", ".join(certs.ca_hash(c) for c in presented[1:]) or "none"
    raise JoinError(f"the API server at {server} presented a CA that does not match --ca-cert-hash "
                    f"{ca_cert_hash} (it presented {found}); refusing to join")
