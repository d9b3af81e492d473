"""Keys, CSRs and X.509 certificates for the cluster, with the `cryptography` package.

Kubernetes' conventions: a client certificate's subject CN is the user name and its O
values the groups; a CA is pinned by the SHA-256 of its DER SubjectPublicKeyInfo
(`sha256:<hex>`, kubeadm's `--discovery-token-ca-cert-hash`). Keys are ECDSA P-256:
handshakes are cheaper than with RSA and every TLS stack here speaks it.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = ec.EllipticCurvePrivateKey
CLOCK_SKEW = datetime.timedelta(minutes=5)   # notBefore this far back, as kubeadm does


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def new_key() -> PrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_key(pem: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("expected an EC private key")
    return key


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def subject(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    return x509.Name([*(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@dataclass(frozen=True)
class Identity:
    """Who a certificate names: CN and O values."""
    name: str
    groups: tuple[str, ...]


def identity_of(cert: x509.Certificate) -> Identity:
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return Identity(str(cn[0].value) if cn else "", tuple(str(o.value) for o in orgs))


def ca_hash(cert: x509.Certificate) -> str:
    """kubeadm's CA pin: sha256 of the DER SubjectPublicKeyInfo."""
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """Whether `ca`'s key signed `cert` (and its issuer name is the CA's subject)."""
    try:
        cert.verify_directly_issued_by(ca)
        return True
    except Exception:
        return False


def self_signed_ca(common_name: str, *, days: int = 3650) -> tuple[PrivateKey, x509.Certificate]:
    key = new_key()
    name = subject(common_name)
    start = now() - CLOCK_SKEW
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def san_entries(names: list[str]) -> list[x509.GeneralName]:
    """IP addresses as IPAddress entries, everything else as DNSName."""
    out: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def sans_of(cert: x509.Certificate) -> set[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(v) for v in ext.get_values_for_type(x509.IPAddress)} | set(ext.get_values_for_type(x509.DNSName))


def issue(ca_key: PrivateKey, ca_cert: x509.Certificate, public_key: ec.EllipticCurvePublicKey, *,
          common_name: str, organizations: tuple[str, ...] = (), client: bool = False,
          server_names: list[str] | None = None, lifetime: datetime.timedelta) -> x509.Certificate:
    """A leaf certificate for `public_key`: client auth, server auth (with SANs), or both."""
    usages = ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else []) + \
             ([ExtendedKeyUsageOID.SERVER_AUTH] if server_names else [])
    if not usages:
        raise ValueError("a certificate must be for a client, a server or both")
    start = now() - CLOCK_SKEW
    not_after = min(start + CLOCK_SKEW + lifetime, ca_cert.not_valid_after_utc)
    builder = (x509.CertificateBuilder().subject_name(subject(common_name, organizations))
               .issuer_name(ca_cert.subject).public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=False,
                                            crl_sign=False, content_commitment=False, data_encipherment=False,
                                            key_agreement=False, encipher_only=False, decipher_only=False),
                              critical=True)
               .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),
                              critical=False))
    if server_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(san_entries(server_names)), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def csr(key: PrivateKey, common_name: str) -> bytes:
    """A PEM certificate signing request (the signer decides the subject it issues)."""
    request = x509.CertificateSigningRequestBuilder().subject_name(subject(common_name)).sign(key, hashes.SHA256())
    return request.public_bytes(serialization.Encoding.PEM)


def csr_public_key(pem: bytes) -> ec.EllipticCurvePublicKey:
    """The key of a CSR whose signature checks out (proof the requester holds the private key)."""
    request = x509.load_pem_x509_csr(pem)
    if not request.is_signature_valid:
        raise ValueError("the certificate signing request's signature does not verify")
    key = request.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("the certificate signing request must carry an EC key")
    return key
