"""The node heartbeat contract: how often agents renew their Lease, and how it is read.

Every agent (real or hollow) renews one Lease per node in namespace
`skiff-node-lease`, named after the node. The node lifecycle controller
(controlplane/controllers/nodelifecycle.py) watches those Leases: a node whose Lease has not been renewed
for a grace period is unreachable. This module holds the few rules both sides
must agree on, so neither imports the other.

Renewal interval. Each renewal is one write to etcd. Kubernetes' kubelets renew
every 10 s whatever the cluster size (500 writes/s at 5,000 nodes); Nomad
instead stretches its heartbeat so the servers see at most 50 heartbeats a
second: ttl = max(10 s, nodes / 50). We take Nomad's rule with our small-cluster
base of 2 s:

    interval = max(base, node_count / max_writes_per_second)       (base 2 s, 50/s)

so up to 100 nodes renew every 2 s (failover in seconds), 1,000 nodes every
20 s, 5,000 nodes every 100 s. The agent publishes the grace it needs in
`spec.leaseDurationSeconds` (4 intervals, so one or two lost renewals are
harmless); the controller waits for the larger of its own configured grace and
that duration, so big clusters trade failover time for a quiet etcd.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

LEASE_NAMESPACE = "skiff-node-lease"
DEFAULT_RENEW_SECONDS = 2.0
MAX_RENEWALS_PER_SECOND = 50.0
# Renewals that may be missed before a node counts as unreachable.
RENEWALS_PER_DURATION = 4


def lease_renew_interval(node_count: int, base: float = DEFAULT_RENEW_SECONDS, *,
                         max_per_second: float = MAX_RENEWALS_PER_SECOND) -> float:
    """Seconds between two renewals of one node's Lease in a cluster of `node_count` nodes."""
    if base <= 0:
        raise ValueError(f"lease renewal base must be positive, got {base}")
    return max(base, node_count / max_per_second)


def lease_duration_seconds(interval: float) -> int:
    """What an agent renewing every `interval` seconds writes as spec.leaseDurationSeconds."""
    return max(1, math.ceil(interval * RENEWALS_PER_DURATION))


def now_micro(clock_seconds: float | None = None) -> str:
    """RFC 3339 with microseconds, as Lease times are written: 2026-11-22T10:00:00.123456Z."""
    moment = datetime.now(timezone.utc) if clock_seconds is None else \
        datetime.fromtimestamp(clock_seconds, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> float | None:
    """Seconds since the epoch of an RFC 3339 time (with or without fraction); None if absent or bad."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()
