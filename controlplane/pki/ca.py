"""The cluster CA and the control plane's own certificates, in `<state-dir>/pki`.

    pki/ca.crt, ca.key               the cluster CA (key 0600; it never leaves this directory)
    pki/apiserver.crt, .key          the API server's serving certificate: SANs are the listen
                                     addresses (every local address for 0.0.0.0), 127.0.0.1,
                                     localhost and the host name; reissued when they change
    pki/apiserver-agent-client.*     the API server's client certificate towards agents
                                     (CN skiff-apiserver): the only caller an agent accepts
    admin.conf                       a client config with an admin credential (CN
                                     kubernetes-admin, O system:masters), as kubeadm writes
    controlplane.conf                the credential of the control plane's own clients (the
                                     leader's scheduler and controllers, or standalone ones)

Everything is made on first start; a restart reuses it. Several control planes that share
one etcd must share one CA: copy ca.crt and ca.key into each one's pki/ before first start.
"""

from __future__ import annotations

import datetime
import socket
from dataclasses import dataclass
from pathlib import Path


from controlplane.client.privatefile import write_private
from controlplane.pki import certs

CA_NAME = "skiff-ca"
APISERVER_NAME = "skiff-apiserver"            # serving cert CN, and the agent-client identity
AGENT_CLIENT_NAME = "skiff-apiserver"
ADMIN_NAME = "kubernetes-admin"
CONTROLPLANE_NAME = "system:skiff-controlplane"
MASTERS = "system:masters"
YEAR = datetime.timedelta(days=365)
RENEW_BEFORE = datetime.timedelta(days=30)    # own certificates are reissued at start when closer to expiry


@dataclass(frozen=True)
class KeyPair:
    cert: bytes   # PEM
    key: bytes    # PEM


def local_names(listen: list[str]) -> list[str]:
    """The names a client may dial this server by: the listen hosts (all local addresses
    for a wildcard), loopback, localhost and the host name."""
    names = ["127.0.0.1", "::1", "localhost", socket.gethostname()]
    for address in listen:
        host = address.rpartition(":")[0].strip("[]")
        if host in ("0.0.0.0", "::", ""):
            names += _interface_addresses()
        else:
            names.append(host)
    return list(dict.fromkeys(names))


def _interface_addresses() -> list[str]:
    out = []
    try:
        for _, _, _, _, sockaddr in socket.getaddrinfo(socket.gethostname(), None):
            out.append(sockaddr[0])
    except OSError:
        pass
    try:
        from pyroute2 import IPRoute
        with IPRoute() as ipr:
            out += [a.get_attr("IFA_ADDRESS") for a in ipr.get_addr()]
    except Exception:
        pass
    return [a for a in out if a]


class ClusterPKI:
    """The CA on disk, and what it issues."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.ca_key = certs.load_key((directory / "ca.key").read_bytes())
        self.ca_cert = certs.load_cert((directory / "ca.crt").read_bytes())
        self.ca_pem = certs.cert_pem(self.ca_cert)

    @classmethod
    def load_or_create(cls, directory: Path) -> "ClusterPKI":
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not (directory / "ca.key").exists():
            key, cert = certs.self_signed_ca(CA_NAME)
            write_private(directory / "ca.key", certs.key_pem(key))
            write_private(directory / "ca.crt", certs.cert_pem(cert), mode=0o644)
        return cls(directory)

    @property
    def ca_hash(self) -> str:
        return certs.ca_hash(self.ca_cert)

    def issue(self, *, common_name: str, organizations: tuple[str, ...] = (), client: bool = False,
              server_names: list[str] | None = None, lifetime: datetime.timedelta = YEAR,
              public_key=None) -> KeyPair:  # type: ignore[no-untyped-def]
        """A certificate (and a new key, unless the caller's public key is given: then `key` is b"")."""
        key = None if public_key is not None else certs.new_key()
        cert = certs.issue(self.ca_key, self.ca_cert, public_key or key.public_key(), common_name=common_name,
                           organizations=organizations, client=client, server_names=server_names, lifetime=lifetime)
        return KeyPair(certs.cert_pem(cert), certs.key_pem(key) if key is not None else b"")

    def _kept(self, stem: str, *, wanted_names: list[str] | None = None) -> KeyPair | None:
        """An existing pair under `stem` that is from this CA, not near expiry and covers the names."""
        try:
            pair = KeyPair((self.dir / f"{stem}.crt").read_bytes(), (self.dir / f"{stem}.key").read_bytes())
            cert = certs.load_cert(pair.cert)
        except (OSError, ValueError):
            return None
        if not certs.issued_by(cert, self.ca_cert) or cert.not_valid_after_utc - certs.now() < RENEW_BEFORE:
            return None
        if wanted_names and not set(wanted_names) <= certs.sans_of(cert):
            return None
        return pair

    def _own(self, stem: str, *, wanted_names: list[str] | None = None, **issue_args) -> KeyPair:  # type: ignore[no-untyped-def]
        pair = self._kept(stem, wanted_names=wanted_names)
        if pair is None:
            pair = self.issue(**issue_args)
            write_private(self.dir / f"{stem}.key", pair.key)
            write_private(self.dir / f"{stem}.crt", pair.cert, mode=0o644)
        return pair

    def serving(self, listen: list[str]) -> KeyPair:
        """The API server's serving pair; its chain carries the CA too, so a joining agent
        can fetch the CA from the handshake and check it against its pin."""
        names = local_names(listen)
        pair = self._own("apiserver", wanted_names=names, common_name=APISERVER_NAME, server_names=names)
        return KeyPair(pair.cert + self.ca_pem, pair.key)

    def agent_client(self) -> KeyPair:
        return self._own("apiserver-agent-client", common_name=AGENT_CLIENT_NAME, client=True)

    def admin(self) -> KeyPair:
        return self._own("admin", common_name=ADMIN_NAME, organizations=(MASTERS,), client=True)

    def controlplane_client(self) -> KeyPair:
        return self._own("controlplane-client", common_name=CONTROLPLANE_NAME, organizations=(MASTERS,),
                         client=True)

