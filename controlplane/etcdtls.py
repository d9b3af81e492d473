"""etcd over TLS: aetcd only dials plain text, so this client dials with TLS credentials.

Used when `--etcd-endpoints` points off this machine (`--etcd-cafile`, `--etcd-certfile`,
`--etcd-keyfile`, as kube-apiserver names them). The embedded etcd listens on loopback
only and is dialled in plain text: nothing off the machine can reach it, and anyone on
the machine who can read its data directory (the control plane's state directory)
needs no network access to it.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import aetcd
import grpc
from aetcd import rpc


def is_loopback(endpoint: str) -> bool:
    host = endpoint.replace("http://", "").replace("https://", "").rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TLSClient(aetcd.Client):
    """aetcd.Client over a TLS channel (server verified against `ca`, client cert optional)."""

    def __init__(self, *args: Any, credentials: grpc.ChannelCredentials, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._credentials = credentials

    async def connect(self) -> None:
        real = rpc.insecure_channel
        rpc.insecure_channel = lambda target, options=None: grpc.aio.secure_channel(  # type: ignore[assignment]
            target, self._credentials, options=options)
        try:
            await super().connect()
        finally:
            rpc.insecure_channel = real
