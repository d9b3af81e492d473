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
    # Job: delay before recreating a failed pod, base doubling per failure up to max.
    # Kubernetes: 10 s doubling to 6 min.
    job_backoff_seconds: float = 1.0
    job_backoff_max_seconds: float = 60.0
    # Pod network: each node gets a /node_cidr_mask_size of cluster_cidr as spec.podCIDR.
    cluster_cidr: str = "10.244.0.0/16"
    node_cidr_mask_size: int = 24
    # Workers per controller.
    workers: int = 4
