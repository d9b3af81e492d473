"""The `Bootstrap` service: signing a node's certificates, and where its agent may be reached.

An agent sends two CSRs (its keys never leave the node) and its serving address:

- joining, with a bootstrap token (`system:bootstrap:<id>`): any node name;
- renewing, with its node certificate (`system:node:<name>`): only its own name.

It gets a client certificate `CN=system:node:<name>, O=system:nodes` and a serving certificate
with the same subject and SANs = the address's IP and the node's name. The address is
recorded at `<prefix>/_agents/<name>` in etcd, outside every API kind: the API server relays
logs/exec/images/metrics only to the address a node's own identity recorded, and checks the
agent's certificate names that node (controlplane/apiserver/proxy.py). A Node object whose
status someone else wrote cannot redirect it.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
from typing import Any, Callable

import grpc

from controlplane.auth.identity import NODE_PREFIX, NODES, UserInfo
from controlplane.pki import bootstraptoken, certs
from controlplane.pki.ca import ClusterPKI
from controlplane.storage import Store
from protos import skiff_pb2 as pb
from protos import skiff_pb2_grpc as pb_grpc

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DEFAULT_NODE_CERT_TTL = datetime.timedelta(days=365)


def agent_record_key(prefix: str, node: str) -> bytes:
    return f"{prefix}/_agents/{node}".encode()


async def recorded_agent_address(store: Store, node: str) -> str | None:
    """host:port recorded when the node's serving certificate was issued, or None."""
    result = await store.client.get(agent_record_key(store.prefix, node))
    if result is None:
        return None
    return json.loads(result.value).get("address") or None


def check_address(address: str) -> str:
    """host:port with an IP host; the message names the problem."""
    host, sep, port = address.rpartition(":")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"agent_address: {address!r} must be IP:port (the address the API server dials)") from None
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"agent_address: {address!r} has no valid port")
    return host


class BootstrapService(pb_grpc.BootstrapServicer):
    def __init__(self, pki: ClusterPKI, store: Store, authenticate: Callable[[Any], UserInfo], *,
                 node_cert_ttl: datetime.timedelta = DEFAULT_NODE_CERT_TTL):
        self.pki = pki
        self.store = store
        self.authenticate = authenticate
        self.node_cert_ttl = node_cert_ttl

    def _allowed(self, user: UserInfo, node: str) -> str | None:
        if bootstraptoken.is_bootstrapper(user):
            return None
        if user.node_name is not None:
            return None if user.node_name == node else \
                f"{user} may renew only its own certificates (node {user.node_name!r}), not node {node!r}'s"
        return f"{user} is neither a bootstrap token nor a node: it cannot request node certificates"

    async def NodeCertificates(self, request: pb.NodeCertificatesRequest, context: Any) -> pb.NodeCertificatesResponse:
        user = self.authenticate(context)
        node = request.node_name
        if not DNS_SUBDOMAIN.match(node) or len(node) > 253:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"node_name: {node!r} is not a valid node name (a DNS subdomain)")
        denied = self._allowed(user, node)
        if denied:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, denied)
        try:
            ip = check_address(request.agent_address)
            client_key = certs.csr_public_key(request.client_csr)
            serving_key = certs.csr_public_key(request.serving_csr)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        name = NODE_PREFIX + node
        client = self.pki.issue(common_name=name, organizations=(NODES,), client=True,
                                lifetime=self.node_cert_ttl, public_key=client_key)
        serving = self.pki.issue(common_name=name, organizations=(NODES,), server_names=[ip, node],
                                 lifetime=self.node_cert_ttl, public_key=serving_key)
        record = {"address": request.agent_address, "issuedTo": user.name,
                  "servingSerial": str(certs.load_cert(serving.cert).serial_number)}
        await self.store.client.put(agent_record_key(self.store.prefix, node), json.dumps(record).encode())
        return pb.NodeCertificatesResponse(client_certificate=client.cert, serving_certificate=serving.cert,
                                           ca_certificate=self.pki.ca_pem)


def permits(user: UserInfo, method: str) -> str | None:
    """The guard's check (controlplane/auth/authn.py): bootstrap tokens only join nodes."""
    if bootstraptoken.is_bootstrapper(user) and method != "NodeCertificates":
        return f"{user} is a bootstrap token: it may only join a node, not call {method}"
    return None
