"""The service proxy: Services' cluster IPs and NodePorts on this node, in one nftables table.

    model.py        Service + EndpointSlices (Kubernetes' shapes, plain dicts) -> ServicePorts
    ruleset.py      ServicePorts -> the table's chains, sets and map elements (pure)
    transaction.py  nft scripts: the whole table, or only what changed
    nft.py          running them: libnftables in-process on one worker thread
    conntrack.py    deleting stale UDP flows
    syncer.py       ServiceProxy: informer events -> dirty Services -> transactions

The agent runs one ServiceProxy fed by its informers on services and endpointslices
(agent/agent.py); see docs/ARCHITECTURE.md for why it lives in the agent.
"""

from .syncer import ServiceProxy

__all__ = ["ServiceProxy"]
