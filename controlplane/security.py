"""The API server's transport security, assembled at start (everything but `--insecure`).

- the cluster PKI in `<state-dir>/pki` (controlplane/pki/ca.py), made on first start;
- gRPC server credentials: the serving certificate, and a client certificate required from
  the cluster CA or the public anonymous root (token callers; controlplane/pki/anonymous.py);
- the `Authenticator`: client certificates, then bearer tokens (bootstrap tokens here;
  `token_authenticators` is where others, such as ServiceAccount tokens, are added);
- every servicer wrapped by `guard` so each call is authenticated before it runs;
- `admin.conf` and `controlplane.conf` (client configs) and `apiserver.json` (the addresses
  `skiff-controlplane token create` prints in the join command).
"""

from __future__ import annotations

import argparse
import datetime
import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from controlplane.apiserver.handlers import Handlers
from controlplane.auth.authn import Authenticator, guard
from controlplane.client import kubeconfig
from controlplane.client.credentials import Credentials
from controlplane.pki import anonymous, bootstraptoken, nodecerts
from controlplane.pki.ca import ADMIN_NAME, CONTROLPLANE_NAME, ClusterPKI, KeyPair
from controlplane.storage import keys
from protos import skiff_pb2_grpc as pb_grpc

CLUSTER_NAME = "skiff"


@dataclass
class Security:
    pki: ClusterPKI
    authenticator: Authenticator
    server_credentials: grpc.ServerCredentials
    agent_client: Credentials          # what the API server presents to agents
    controlplane_client: Credentials   # the leader's own scheduler and controllers
    handlers: Handlers
    node_cert_ttl: datetime.timedelta

    permits = staticmethod(nodecerts.permits)

    def rest_tls(self) -> "ssl.SSLContext":
        """The REST API's TLS (controlplane/rest/server.py): the same serving certificate and CA."""
        from controlplane.rest.server import tls_context
        return tls_context(self.pki.dir / "apiserver.crt", self.pki.dir / "apiserver.key", self.pki.ca_pem)

    def register(self, service: Any, server: grpc.aio.Server) -> None:
        pb_grpc.add_ApiServicer_to_server(guard(service, self.authenticator, permits=nodecerts.permits), server)
        bootstrap = nodecerts.BootstrapService(self.pki, self.handlers.store, self.authenticator,
                                               node_cert_ttl=self.node_cert_ttl)
        pb_grpc.add_BootstrapServicer_to_server(guard(bootstrap, self.authenticator, permits=nodecerts.permits),
                                                server)


def local_address(listen: str) -> str:
    """How a client on this machine dials a listen address."""
    host, _, port = listen.rpartition(":")
    return f"{'127.0.0.1' if host in ('0.0.0.0', '', '[::]', '::') else host}:{port}"


def advertise_address(listen: list[str], explicit: str = "") -> str:
    if explicit:
        return explicit
    for address in listen:
        host = address.rpartition(":")[0].strip("[]")
        if host not in ("0.0.0.0", "::", "", "localhost") and not host.startswith("127."):
            return address
    return local_address(listen[0])


def _credentials(pki: ClusterPKI, pair: KeyPair) -> Credentials:
    return Credentials(ca=pki.ca_pem, cert=pair.cert, key=pair.key)


def _write_config(path: Path, pki: ClusterPKI, server: str, user: str, pair: KeyPair) -> None:
    kubeconfig.write(path, kubeconfig.build(cluster=CLUSTER_NAME, server=server, ca=pki.ca_pem, user=user,
                                            cert=pair.cert, key=pair.key))


KUBERNETES_NAMES = ("kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local")


def setup(state_dir: Path, listen: list[str], handlers: Handlers, args: argparse.Namespace) -> Security:
    pki = ClusterPKI.load_or_create(state_dir / "pki")
    # --tls-san: names every API server of an HA cluster shares (clients given several
    # servers check each one's certificate against the first server's name).
    extra = [f"{name}:0" for name in getattr(args, "tls_san", "").split(",") if name.strip()]
    extra += list(getattr(args, "rest_addresses", []))
    # Pods reach the API through the `kubernetes` Service (its cluster IP, kubernetes.default.svc, ...),
    # and in-cluster clients check the certificate against those names, as for kube-apiserver.
    if getattr(args, "service_cluster_ip_range", ""):
        from controlplane.apiserver.service_alloc import ServiceNetwork
        extra.append(f"{ServiceNetwork(cluster_ip_range=args.service_cluster_ip_range).kubernetes_ip()}:0")
    extra += [f"{name}:0" for name in KUBERNETES_NAMES]
    serving = pki.serving(listen + extra)
    server_credentials = grpc.ssl_server_credentials([(serving.key, serving.cert)],
                                                     root_certificates=pki.ca_pem + anonymous.CA,
                                                     require_client_auth=True)
    secrets_key = lambda name: keys.object_key(handlers.store.prefix, "secrets",  # noqa: E731
                                               bootstraptoken.NAMESPACE, name)

    def lookup(name: str) -> dict | None:
        cache = handlers.caches.get("secrets")
        return cache.objects.get(secrets_key(name)) if cache is not None else None

    authenticator = Authenticator(pki.ca_cert, [bootstraptoken.BootstrapTokenAuthenticator(lookup)])
    local = local_address(listen[0])
    admin, own = pki.admin(), pki.controlplane_client()
    _write_config(state_dir / "admin.conf", pki, local, ADMIN_NAME, admin)
    _write_config(state_dir / "controlplane.conf", pki, local, CONTROLPLANE_NAME, own)
    rest = list(getattr(args, "rest_addresses", []))
    if rest:   # for the real kubectl: the REST API (controlplane/rest), the same admin credential
        _write_config(state_dir / "kubeconfig", pki, f"https://{local_address(rest[0])}", ADMIN_NAME, admin)
    (state_dir / "apiserver.json").write_text(json.dumps(
        {"listen": listen, "local": local, "advertise": advertise_address(listen, args.advertise_address),
         "caCertHash": pki.ca_hash}, indent=2) + "\n")
    return Security(pki=pki, authenticator=authenticator, server_credentials=server_credentials,
                    agent_client=_credentials(pki, pki.agent_client()),
                    controlplane_client=_credentials(pki, own), handlers=handlers,
                    node_cert_ttl=datetime.timedelta(seconds=args.node_cert_ttl))
