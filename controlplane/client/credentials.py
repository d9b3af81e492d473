"""What a client proves and trusts: the TLS channel to an API server (or an agent).

A `Credentials` holds the CA that must have signed the server's certificate and the
caller's own proof: a client certificate and key (CN = user, O = groups), a bearer
token (sent as `authorization: Bearer ...`), or both. A caller with only a token
presents the public anonymous certificate during the handshake (controlplane/pki/
anonymous.py explains why) and is then known by its token alone.

`Credentials.plaintext()` is for a server started with `--insecure`: no TLS at all.
A server address written `http://host:port` means the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

PLAINTEXT_SCHEME = "http://"


@dataclass(frozen=True)
class Credentials:
    ca: bytes | None = None        # PEM: the CA the server's certificate must chain to
    cert: bytes | None = None      # PEM: the client certificate (with its chain)
    key: bytes | None = None       # PEM: its private key
    token: str | None = None       # a bearer token
    insecure: bool = False         # plain text, no TLS (a server run with --insecure)

    @classmethod
    def plaintext(cls) -> "Credentials":
        return cls(insecure=True)

    @classmethod
    def from_files(cls, *, ca: Path | None = None, cert: Path | None = None, key: Path | None = None,
                   token: str | None = None) -> "Credentials":
        read = lambda p: Path(p).expanduser().read_bytes() if p else None  # noqa: E731
        return cls(ca=read(ca), cert=read(cert), key=read(key), token=token)

    def describe(self) -> str:
        if self.insecure:
            return "plain text"
        return "client certificate" if self.cert else ("bearer token" if self.token else "no credential")

    def channel_credentials(self) -> grpc.ChannelCredentials:
        if self.insecure:
            raise ValueError("plain-text credentials have no TLS channel credentials")
        if not self.ca:
            raise ValueError("TLS needs the cluster CA certificate (certificate-authority in the client config)")
        if bool(self.cert) != bool(self.key):
            raise ValueError("a client certificate needs its key, and a key its certificate")
        cert, key = self.cert, self.key
        if not cert:
            from controlplane.pki import anonymous
            cert, key = anonymous.CERT, anonymous.KEY
        creds = grpc.ssl_channel_credentials(root_certificates=self.ca, private_key=key, certificate_chain=cert)
        if self.token:
            creds = grpc.composite_channel_credentials(creds, grpc.access_token_call_credentials(self.token))
        return creds

    def channel(self, target: str, options: list[tuple[str, Any]] | None = None) -> grpc.aio.Channel:
        """An asyncio channel to target (host:port, or http://host:port for plain text)."""
        target, plain = split_target(target)
        if plain or self.insecure:
            return grpc.aio.insecure_channel(target, options=options)
        return grpc.aio.secure_channel(target, self.channel_credentials(), options=options)

    def sync_channel(self, target: str, options: list[tuple[str, Any]] | None = None) -> grpc.Channel:
        """A blocking channel, for tools and tests that check a server from outside an event loop."""
        target, plain = split_target(target)
        if plain or self.insecure:
            return grpc.insecure_channel(target, options=options)
        return grpc.secure_channel(target, self.channel_credentials(), options=options)


def split_target(server: str) -> tuple[str, bool]:
    """(host:port, whether the address asks for plain text with http://)."""
    if server.startswith(PLAINTEXT_SCHEME):
        return server[len(PLAINTEXT_SCHEME):], True
    if server.startswith("https://"):
        return server[len("https://"):], False
    return server, False
