"""The PKI's pure parts: certificates and identities, the CA pin, bootstrap tokens, the
authenticator's rules, client config resolution, and which etcd endpoints need TLS."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from controlplane.auth.authn import AuthenticationError, Authenticator, bearer_token
from controlplane.auth.identity import UserInfo
from controlplane.client import kubeconfig
from controlplane.etcdtls import is_loopback
from controlplane.pki import anonymous, bootstraptoken, certs
from controlplane.pki.ca import ClusterPKI, local_names


class Context:
    """What the authenticator reads from a gRPC call: the peer certificate and the metadata."""

    def __init__(self, cert: bytes | None = None, metadata: tuple = ()):
        self.cert, self.metadata = cert, metadata

    def auth_context(self) -> dict:
        return {"x509_pem_cert": [self.cert]} if self.cert else {}

    def invocation_metadata(self) -> tuple:
        return self.metadata


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> ClusterPKI:
    return ClusterPKI.load_or_create(tmp_path_factory.mktemp("pki"))


def test_ca_files_modes_and_reuse(pki):
    assert (pki.dir / "ca.key").stat().st_mode & 0o777 == 0o600
    assert pki.dir.stat().st_mode & 0o777 == 0o700
    again = ClusterPKI.load_or_create(pki.dir)
    assert again.ca_hash == pki.ca_hash and pki.ca_hash.startswith("sha256:") and len(pki.ca_hash) == 71


def test_serving_certificate_covers_the_listen_addresses_and_is_reissued_when_they_change(pki):
    first = pki.serving(["127.0.0.1:6443"])
    cert = certs.load_cert(first.cert.split(b"-----END CERTIFICATE-----")[0] + b"-----END CERTIFICATE-----\n")
    assert {"127.0.0.1", "localhost"} <= certs.sans_of(cert)
    assert pki.serving(["127.0.0.1:6443"]).cert == first.cert            # kept
    moved = pki.serving(["198.18.7.1:6443"])
    assert moved.cert != first.cert and pki.ca_pem in moved.cert            # the chain carries the CA
    assert "198.18.7.1" in local_names(["198.18.7.1:6443"])


def test_client_identity_is_cn_and_o_and_only_the_cluster_ca_counts(pki, tmp_path):
    admin = pki.admin()
    auth = Authenticator(pki.ca_cert)
    user = auth(Context(admin.cert))
    assert user == UserInfo("kubernetes-admin", ("system:masters", "system:authenticated"))
    assert auth(Context(admin.cert)) is user                               # cached per certificate
    other = ClusterPKI.load_or_create(tmp_path / "other").admin()
    with pytest.raises(AuthenticationError, match="no credential"):
        auth(Context(other.cert))
    with pytest.raises(AuthenticationError, match="no credential"):
        auth(Context(anonymous.CERT))


def test_bearer_tokens_go_to_the_token_authenticators_in_turn(pki):
    seen = []
    auth = Authenticator(pki.ca_cert, [lambda t: seen.append(t) and None,
                                       lambda t: UserInfo("sa", ("g",)) if t == "good" else None])
    assert auth(Context(anonymous.CERT, (("authorization", "Bearer good"),))) == \
        UserInfo("sa", ("g", "system:authenticated"))
    with pytest.raises(AuthenticationError, match="the bearer token is not valid"):
        auth(Context(None, (("authorization", "Bearer bad"),)))
    assert seen == ["good", "bad"]
    with pytest.raises(AuthenticationError, match="must be 'Bearer <token>'"):
        bearer_token((("authorization", "Basic xyz"),))


def test_bootstrap_tokens(pki):
    token = bootstraptoken.generate()
    assert bootstraptoken.TOKEN_RE.match(token)
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    secret = bootstraptoken.secret_for(token, ttl=datetime.timedelta(hours=24), description="n1", now=now)
    assert secret["metadata"] == {"name": f"bootstrap-token-{token[:6]}", "namespace": "kube-system"}
    assert secret["type"] == "bootstrap.kubernetes.io/token"
    parsed = bootstraptoken.parse_secret(secret)
    assert parsed.expiration == now + datetime.timedelta(hours=24) and parsed.description == "n1"
    store = {secret["metadata"]["name"]: secret}
    clock = [now]
    authn = bootstraptoken.BootstrapTokenAuthenticator(store.get, clock=lambda: clock[0])
    assert authn(token) == UserInfo(f"system:bootstrap:{token[:6]}", ("system:bootstrappers",))
    assert authn("not-a-bootstrap-token") is None
    with pytest.raises(AuthenticationError, match="is unknown"):
        authn(token[:7] + "0" * 16)
    clock[0] = now + datetime.timedelta(hours=25)
    with pytest.raises(AuthenticationError, match=f"bootstrap token '{token[:6]}' expired at 2026-01-02T00:00:00Z"):
        authn(token)
    with pytest.raises(ValueError, match="does not have the form"):
        bootstraptoken.secret_for("short.token", ttl=None)


def test_csr_signature_is_checked():
    key = certs.new_key()
    assert certs.csr_public_key(certs.csr(key, "n1")).public_numbers() == key.public_key().public_numbers()
    with pytest.raises(ValueError):
        certs.csr_public_key(b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")


def test_kubeconfig_build_resolve_and_files(tmp_path, pki):
    pair = pki.admin()
    data = kubeconfig.build(cluster="c", server="10.0.0.1:6443", ca=pki.ca_pem, user="u", cert=pair.cert,
                            key=pair.key, namespace="dev")
    path = tmp_path / "conf"
    kubeconfig.write(path, data)
    assert path.stat().st_mode & 0o777 == 0o600
    r = kubeconfig.load(path)
    assert (r.server, r.namespace, r.context) == ("10.0.0.1:6443", "dev", "u@c")
    assert r.credentials.ca == pki.ca_pem and r.credentials.key == pair.key
    (tmp_path / "ca.crt").write_bytes(pki.ca_pem)
    by_path = {**data, "clusters": [{"name": "c", "cluster": {"server": "h:1", "certificate-authority": "ca.crt"}}]}
    assert kubeconfig.resolve(by_path, path).credentials.ca == pki.ca_pem     # relative to the file
    plain = {**data, "clusters": [{"name": "c", "cluster": {"server": "http://h:1"}}]}
    assert kubeconfig.resolve(plain, path).credentials.insecure
    assert kubeconfig.resolve({}, path) is None
    with pytest.raises(kubeconfig.ConfigError, match="does not exist or names no context"):
        kubeconfig.load(tmp_path / "missing")


@pytest.mark.parametrize("endpoint, loopback", [("127.0.0.1:2379", True), ("http://127.0.0.1:2379", True),
                                                ("localhost:2379", True), ("[::1]:2379", True),
                                                ("10.0.0.2:2379", False), ("etcd.example:2379", False),
                                                ("[::1]", True), ("localhost", True), ("https://10.0.0.2", False)])
def test_which_etcd_endpoints_need_tls(endpoint, loopback):
    assert is_loopback(endpoint) is loopback


def test_anonymous_certificate_chains_only_to_its_own_root():
    cert, root = certs.load_cert(anonymous.CERT), certs.load_cert(anonymous.CA)
    assert certs.issued_by(cert, root)
    assert certs.identity_of(cert).name == "system:anonymous"
    assert Path(anonymous.__file__).read_text().count("PRIVATE KEY") == 2   # the leaf's key only: the CA's is gone
