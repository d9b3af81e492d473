"""The pod network of a node: bridge, veth pairs, IPAM, host-gw routes, nftables.

    node_network.py   NodeNetwork - what the agent calls (setup/attach/detach/sync_routes/teardown)
    ipam.py           pod addresses from the node's pod CIDR, persisted
    bridge.py         the node's bridge (pod gateway), uplink MTU, IPv4 forwarding
    podlink.py        a pod's veth pair and its eth0, lo and default route
    netns.py          doing that work from a thread in the pod's namespace (setns, no fork)
    routes.py         routes to other nodes' pod CIDRs via their InternalIPs
    hostports.py      hostPorts of pods and the node's reservations
    nftables.py       the nftables table: masquerade and the one hostPort DNAT map
    statefile.py      atomic JSON state files
    links.py          small netlink helpers

Independent of the rest of the agent (cgroups, images, runtime): it is given a pod
dict and the path of the pod's network namespace.
"""

from .errors import IPAMExhausted, NetworkError
from .node_network import NodeNetwork, teardown_node_network

__all__ = ["NodeNetwork", "NetworkError", "IPAMExhausted", "teardown_node_network"]
