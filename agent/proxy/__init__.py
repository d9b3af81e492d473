"""The service proxy: Services' cluster IPs and NodePorts on this node, in one nftables table.

    model.py        Service + EndpointSlices (Kubernetes' shapes, plain dicts) -> ServicePorts
    ruleset.py      ServicePorts -> the table's chains, sets and map elements (pure)
    expressions.py  each rule as nft text and as the same nf_tables netlink expressions
    transaction.py  the whole table as an nft script, or only what changed as ops (text or netlink)
    netlink.py      nf_tables netlink batches on a NETLINK_NETFILTER socket, no nft
    nft.py          running them on one worker thread: changes as netlink batches, full syncs
                    through libnftables in-process
    conntrack.py    deleting stale UDP flows
    syncer.py       ServiceProxy: informer events -> dirty Services -> transactions

The agent runs one ServiceProxy fed by its informers on services and endpointslices
(agent/agent.py); see docs/ARCHITECTURE.md for why it lives in the agent.
"""

from .syncer import ServiceProxy

__all__ = ["ServiceProxy"]
