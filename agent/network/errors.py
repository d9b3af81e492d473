"""The errors of the pod network library (agent/network).

`NetworkError` is what a caller (the agent's pod sync) reports as the reason a pod's
network could not be set up; its message names the pod, port, address or file at fault.
`IPAMExhausted` is the one a pod can wait out: the node's pod CIDR is full until
another pod on the node goes away.
"""

from __future__ import annotations


class NetworkError(Exception):
    """A pod's network, or the node's, could not be set up or torn down."""


class IPAMExhausted(NetworkError):
    """Every address of the node's pod CIDR is assigned to a pod."""
