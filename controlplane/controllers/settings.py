"""Settings of the controllers, grouped, with defaults tuned for small clusters.

Every field can be set from `skiff-controlplane` flags. Kubernetes' defaults are
noted where ours differ on purpose (small clusters want failover in seconds).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass


# Flag and setting declarations: alike in shape to other programs' (the `duplicates` tool pairs
# them), each program its own.
@dataclass
class ControllerSettings:
    # Node lifecycle. Kubernetes: lease renew 10 s, grace 40 s, then a 300 s toleration that its
    # DefaultTolerationSeconds admission adds to every pod. Ours: the 8 s grace (4 renewals) is
    # the one wait for a node to come back; a pod without its own toleration for the
    # unreachable/not-ready NoExecute taints is evicted when the taint appears (what Kubernetes'
    # taint manager does to such a pod; a pod's tolerationSeconds keeps it longer).
    # docs/OPERATIONS.md, "Node failure", says how to choose these.
    node_lease_renew_seconds: float = 2.0
    node_monitor_grace_seconds: float = 8.0
    pod_eviction_seconds: float = 0.0
    node_monitor_period_seconds: float = 1.0
    # Job: delay before recreating a failed pod, base doubling per failure up to max.
    # Kubernetes: 10 s doubling to 6 min.
    job_backoff_seconds: float = 1.0
    job_backoff_max_seconds: float = 60.0
    # Pod network: each node gets a /node_cidr_mask_size of cluster_cidr as spec.podCIDR.
    cluster_cidr: str = "10.244.0.0/16"
    node_cidr_mask_size: int = 24
    # HorizontalPodAutoscaler: seconds between looks at each HPA (Kubernetes: 15 s).
    hpa_sync_seconds: float = 15.0
    # Workers per controller.
    workers: int = 4


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The controllers' flags, shared by skiff-controlplane and `python -m controlplane.controllers`."""
    d = ControllerSettings()
    p.add_argument("--node-monitor-grace", type=float, default=d.node_monitor_grace_seconds,
                   help="seconds without a node Lease renewal before the node is NotReady")
    p.add_argument("--pod-eviction-timeout", type=float, default=d.pod_eviction_seconds,
                   help="seconds a pod without its own toleration stays on a node after the node "
                        "becomes unreachable or not-ready (the NoExecute taint); default 0: evicted at once")
    p.add_argument("--cluster-cidr", default=d.cluster_cidr, help="the pod network; each node gets a slice")
    p.add_argument("--node-cidr-mask-size", type=int, default=d.node_cidr_mask_size,
                   help="prefix length of each node's podCIDR")
    p.add_argument("--horizontal-pod-autoscaler-sync-period", type=float, default=d.hpa_sync_seconds,
                   help="seconds between looks at each HorizontalPodAutoscaler")


def from_args(args: argparse.Namespace) -> ControllerSettings:
    return ControllerSettings(node_monitor_grace_seconds=args.node_monitor_grace,
                              pod_eviction_seconds=args.pod_eviction_timeout,
                              cluster_cidr=args.cluster_cidr, node_cidr_mask_size=args.node_cidr_mask_size,
                              hpa_sync_seconds=args.horizontal_pod_autoscaler_sync_period)
