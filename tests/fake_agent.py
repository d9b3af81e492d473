"""A node that joins and serves TLS like a real agent, its agent service a servicer in the test's event loop.

`join` gets a node's certificates as `skiff-agent` does at its first start: a bootstrap token
from `skiff-controlplane token create`, the cluster CA pinned by its hash, certificates from
`Bootstrap.NodeCertificates` (agent/certificates.py). That records the agent's address in the
node's identity, the address the API server dials (controlplane/apiserver/proxy.py AgentDialer);
a Node object's status is not used for it. `serve_tls` makes the agent's gRPC server for any
servicer (a real AgentService, or a fake one) at that address, over TLS with the node's serving
certificate, accepting only the API server (agent/service.py AgentServer).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agent.certificates import NodeCertificates, NodeIdentity
from agent.service import AgentServer
from procs import ControlPlane


async def join(cp: ControlPlane, state_dir: Path, node: str, port: int) -> tuple[NodeCertificates, NodeIdentity]:
    """The node's certificates (kept under state_dir/node), its agent to serve at 127.0.0.1:port."""
    args = await asyncio.to_thread(cp.join_args)
    certificates = NodeCertificates(state_dir / node, server=cp.address, node_name=node,
                                    agent_address=f"127.0.0.1:{port}")
    identity = await certificates.ensure(token=args[args.index("--token") + 1],
                                         ca_cert_hash=args[args.index("--ca-cert-hash") + 1])
    return certificates, identity


def serve_tls(servicer: Any, certificates: NodeCertificates, identity: NodeIdentity) -> AgentServer:
    """The agent's server for `servicer` at the address the node's identity recorded (not started:
    `await server.server.start()`, or `server.run()` for an AgentService)."""
    return AgentServer(servicer, certificates.agent_address, credentials=certificates.serving_credentials(identity),
                       ca=identity.ca)
