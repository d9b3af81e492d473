"""The authenticators' caches (controlplane/auth): what a cached credential may and may not outlive.

- client certificates: one parse and signature check per certificate, whether it came as PEM
  (gRPC) or DER (the REST API's ssl); a certificate from another CA is refused either way;
- ServiceAccount tokens: the JWT's signature is checked once per token, but the token stops
  working at its expiry all the same, and at once when its pod or ServiceAccount is deleted or
  replaced (another uid) — those are looked up on every request.
"""

from __future__ import annotations

import ssl
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from controlplane.auth.authn import Authenticator
from controlplane.auth.identity import UserInfo
from controlplane.auth.serviceaccount_tokens import LEEWAY, ServiceAccountTokenAuthenticator, TokenIssuer
from controlplane.pki.ca import ClusterPKI


def _der(pem: bytes) -> bytes:
    first = pem.split(b"-----END CERTIFICATE-----")[0] + b"-----END CERTIFICATE-----\n"
    return ssl.PEM_cert_to_DER_cert(first.decode())


def test_a_certificate_as_der_is_the_same_identity_as_pem_and_other_cas_are_refused(tmp_path):
    pki = ClusterPKI.load_or_create(tmp_path / "pki")
    auth = Authenticator(pki.ca_cert)
    admin = pki.admin()
    user = auth.from_der(_der(admin.cert))
    assert user == UserInfo("kubernetes-admin", ("system:masters", "system:authenticated"))
    assert user == auth.from_certificate(admin.cert)
    assert auth.from_der(_der(admin.cert)) is user                       # cached by its bytes
    stranger = ClusterPKI.load_or_create(tmp_path / "other").admin()
    assert auth.from_der(_der(stranger.cert)) is None
    assert auth.from_der(_der(stranger.cert)) is None                    # the refusal is remembered too
    assert auth.from_der(b"\x30\x03garbage") is None


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def tokens():
    clock = Clock(time.time())
    issuer = TokenIssuer(ec.generate_private_key(ec.SECP256R1()), clock=clock)
    store = {
        ("serviceaccounts", "ns", "default"): {"metadata": {"name": "default", "namespace": "ns", "uid": "sa-1"}},
        ("pods", "ns", "web"): {"metadata": {"name": "web", "namespace": "ns", "uid": "pod-1"}},
    }
    authn = ServiceAccountTokenAuthenticator(issuer, lookup=lambda p, ns, n: store.get((p, ns, n)))
    token, expiry = issuer.issue(service_account=store[("serviceaccounts", "ns", "default")],
                                 pod=store[("pods", "ns", "web")], seconds=600)
    return clock, store, authn, token, expiry


def test_a_cached_token_still_expires(tokens, monkeypatch):
    clock, _store, authn, token, expiry = tokens
    assert authn(token).name == "system:serviceaccount:ns:default"
    import jwt
    calls = []
    real = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    assert authn(token).name == "system:serviceaccount:ns:default"
    assert calls == []                                                  # verified once, then remembered
    clock.now = expiry + LEEWAY + 1
    assert authn(token) is None                                         # the cache does not outlive the token
    assert token not in authn._verified


def test_a_cached_token_dies_with_its_pod_or_service_account(tokens):
    _clock, store, authn, token, _expiry = tokens
    assert authn(token) is not None
    pod = store.pop(("pods", "ns", "web"))
    assert authn(token) is None                                         # pod deleted: revoked at once
    store[("pods", "ns", "web")] = {"metadata": {**pod["metadata"], "uid": "pod-2"}}
    assert authn(token) is None                                         # a new pod of the same name
    store[("pods", "ns", "web")] = pod
    assert authn(token) is not None
    del store[("serviceaccounts", "ns", "default")]
    assert authn(token) is None                                         # ServiceAccount deleted


def test_a_forged_token_is_not_cached_or_accepted(tokens):
    _clock, _store, authn, token, _expiry = tokens
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-4]}AAAA"
    assert authn(forged) is None and authn(forged) is None
    assert forged not in authn._verified
