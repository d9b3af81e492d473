"""Settings of the controllers, grouped, with defaults tuned for small clusters.

Every field can be set from `skiff-controlplane` flags. Kubernetes' defaults are
noted where ours differ on purpose (small clusters want failover in seconds).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ControllerSettings:
    # Node lifecycle. Kubernetes: lease renew 10 s, grace 40 s, eviction after 300 s.
    node_lease_renew_seconds: float = 2.0
    node_monitor_grace_seconds: float = 8.0
    pod_eviction_seconds: float = 5.0
    node_monitor_period_seconds: float = 1.0
    # Workers per controller.
    workers: int = 4
