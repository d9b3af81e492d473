"""The agent's settings, grouped; filled from `skiff-agent` flags (agent/main.py)."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class BackoffSettings:
    """CrashLoopBackOff and ImagePullBackOff: 1 s doubling to 60 s, reset after 10 min running.
    (Kubernetes: 10 s -> 300 s; small clusters want quicker recovery.)"""

    initial_seconds: float = 1.0
    max_seconds: float = 60.0
    reset_after_seconds: float = 600.0

    def delay(self, restarts: int) -> float:
        """Delay before restart number `restarts` (1 for the first restart)."""
        if restarts <= 0:
            return 0.0
        return min(self.initial_seconds * (2 ** (restarts - 1)), self.max_seconds)


@dataclass
class AgentConfig:
    server: str = "127.0.0.1:6443"
    node_name: str = field(default_factory=socket.gethostname)
    node_ip: str = ""                      # empty: the address that routes to the control plane
    state_dir: Path = Path("/var/lib/skiff/agent")
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, str]] = field(default_factory=list)
    reserved: dict[str, str] = field(default_factory=dict)   # {"cpu": "100m", "memory": "256Mi"}
    max_pods: int = 110
    # Processes and threads per pod (the pod's cgroup), kubelet's --pod-max-pids (unlimited there by
    # default; Skiff caps it). The node's cgroup parent is capped too: pid_max less `reserved["pid"]`.
    pod_max_pids: int | None = 4096
    # Ephemeral storage accounting (agent/ephemeral.py): how often writable layers, logs and
    # emptyDirs are measured against limits.ephemeral-storage and emptyDir.sizeLimit.
    eviction_interval_seconds: float = 10.0
    cgroup_parent: str = "skiff"
    cgroup_root: Path = Path("/sys/fs/cgroup")
    lease_renew_seconds: float = 2.0
    status_update_seconds: float = 10.0
    registries_config: Path | None = None
    listen: str = "0.0.0.0:10250"          # the agent's own gRPC service (logs, exec); main.py: <node-ip>:10250
    # Identity (agent/certificates.py): join with a bootstrap token and the CA's pin, once; or
    # plain text with no identity at all (insecure, for a control plane run with --insecure).
    token: str = ""
    ca_cert_hash: str = ""
    insecure: bool = False
    backoff: BackoffSettings = field(default_factory=BackoffSettings)
    # Pod network (bridge, veth, IPAM, host-gw routes); pods wait until the node has a podCIDR.
    # Off: pods get a network namespace with only loopback (for tests of other parts).
    network: bool = True
    cluster_cidr: str = "10.244.0.0/16"    # all pods' addresses; traffic leaving it is masqueraded
    bridge: str = "skiff0"
    # The service proxy (agent/proxy): cluster IPs and NodePorts in nftables table ip skiff-proxy.
    # Only with the pod network; off in tests of other parts and where another proxy runs.
    service_proxy: bool = True
    # Cluster DNS (agent/dns): served on the bridge's gateway address, port dns_port, for this
    # node's pods. Upstreams: IP[:port] strings; None reads the node's /etc/resolv.conf.
    cluster_domain: str = "cluster.local"
    dns_upstreams: list[str] | None = None
    dns_port: int = 53
    # Image GC (agent/imagegc.py): when the store's disk is above high, remove unused images
    # down to low; checked every interval (kubelet: 85 / 80 %, every 5 minutes).
    image_gc_high_percent: int = 85
    image_gc_low_percent: int = 80
    image_gc_interval_seconds: float = 300.0

    # Path properties, one per directory: alike in shape (the `duplicates` tool pairs them), nothing to share.
    @property
    def runtime_dir(self) -> Path:
        return self.state_dir / "runtime"

    @property
    def images_dir(self) -> Path:
        return self.state_dir / "images"

    @property
    def pods_dir(self) -> Path:
        return self.state_dir / "pods"

    @property
    def network_dir(self) -> Path:
        return self.state_dir / "network"

    @property
    def local_path_dir(self) -> Path:
        """The directories of local-path PersistentVolumes on this node (agent/localpath.py)."""
        return self.state_dir / "local-path"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def seccomp_dir(self) -> Path:
        """Where `Localhost` seccomp profiles are read from (kubelet: <root-dir>/seccomp)."""
        return self.state_dir / "seccomp"
