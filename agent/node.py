"""The agent's Node: registration, status from real readings, and the Lease heartbeat.

On start the agent creates (or takes over) its Node object: capacity from the
machine (cpu count, /proc/meminfo, 110 pods), allocatable = capacity minus
`--reserved`, labels (hostname, os, arch and `--node-labels`), taints, the
InternalIP (from `--node-ip`, or else the local address of the route to the
control plane — not the first interface, which on Vagrant VMs is the same NAT
address everywhere), and nodeInfo (kernel, OS, runtime, cgroup version).

Every `lease_renew_seconds` it renews a Lease in namespace skiff-node-lease —
the cheap heartbeat the node lifecycle controller watches — and every
`status_update_seconds` it rewrites the Node's conditions (Ready,
MemoryPressure, DiskPressure, PIDPressure from real readings) and image list.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import shutil
import socket
from datetime import datetime, timezone
from typing import Any, Callable

from api.quantity import cpu_millis, format_cpu, memory_bytes
from controlplane.client import AlreadyExists, ApiError, Client, NotFound

from agent.cgroups import Resources
from agent.config import AgentConfig

log = logging.getLogger(__name__)
LEASE_NAMESPACE = "skiff-node-lease"
RUNTIME_VERSION = "skiff://0.1.0"
# Pressure thresholds (Kubernetes' hard eviction defaults: memory.available<100Mi, nodefs.available<10%).
MEMORY_PRESSURE_BYTES = 100 * 1024 * 1024
DISK_PRESSURE_FRACTION = 0.10
PID_PRESSURE_FRACTION = 0.95


def now_micro() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_seconds() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def meminfo() -> dict[str, int]:
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts:
                out[key] = int(parts[0]) * (1024 if len(parts) > 1 else 1)
    return out


def route_address(server: str) -> str:
    """The local address the kernel would use to reach the control plane (the first of
    several: "a:6443,b:6443")."""
    from controlplane.client.credentials import split_target
    host = split_target(server.split(",")[0].strip())[0].rsplit(":", 1)[0].strip("[]") or "127.0.0.1"
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((socket.gethostbyname(host), 9))  # UDP connect sends nothing
            return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"


def os_image() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


class NodeAgent:
    """Registers the node and keeps its Lease and status current."""

    def __init__(self, client: Client, config: AgentConfig, *, cgroup_version: int,
                 images: Callable[[], list[dict[str, Any]]] = lambda: []):
        self.client = client
        self.config = config
        self.cgroup_version = cgroup_version
        self.images = images
        self.node_ip = config.node_ip or route_address(config.server)
        self.registered = asyncio.Event()
        self._lease: dict[str, Any] | None = None

    # -- what the node is ------------------------------------------------------------

    def capacity(self) -> dict[str, str]:
        cpus = os.cpu_count() or 1
        memory = meminfo().get("MemTotal", 0)
        return {"cpu": str(cpus), "memory": f"{memory // 1024}Ki", "pods": str(self.config.max_pods),
                "ephemeral-storage": f"{shutil.disk_usage(self._disk_path()).total // 1024}Ki"}

    def allocatable(self) -> dict[str, str]:
        cap = self.capacity()
        reserved = self.config.reserved
        cpu = max(0, cpu_millis(cap["cpu"]) - cpu_millis(reserved.get("cpu", "0")))
        memory = max(0, memory_bytes(cap["memory"]) - memory_bytes(reserved.get("memory", "0")))
        return {**cap, "cpu": format_cpu(cpu), "memory": f"{memory // 1024}Ki"}

    def allocatable_pids(self) -> int:
        """Processes the node's pods may hold together (the node cgroup parent's pids limit):
        the kernel's limit (pid_max, or threads-max if lower) less `--reserved pid=N`
        (default: 5 %, at least 1000, kept for the system and the agent itself)."""
        limit = min(int(_read("/proc/sys/kernel/pid_max") or 32768),
                    int(_read("/proc/sys/kernel/threads-max") or 1 << 22))
        reserved = self.config.reserved.get("pid")
        keep = int(reserved) if reserved is not None else max(1000, limit // 20)
        return max(1, limit - keep)

    def node_cgroup_resources(self) -> Resources:
        """The limits of the node's cgroup parent: pids as above, and CPU shares (weight) in
        proportion to the allocatable CPU, as the kubelet gives its kubepods group."""
        return Resources(cpu_request_millis=cpu_millis(self.allocatable()["cpu"]),
                         pids_limit=self.allocatable_pids())

    def _disk_path(self) -> str:
        path = self.config.state_dir
        while not path.exists() and path != path.parent:
            path = path.parent
        return str(path)

    def labels(self) -> dict[str, str]:
        return {"kubernetes.io/hostname": self.config.node_name, "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch(), **self.config.labels}

    def annotations(self) -> dict[str, str]:
        """Where the built-in local-path provisioner puts this node's volumes (agent/localpath.py)."""
        from agent.localpath import ROOT_ANNOTATION
        return {ROOT_ANNOTATION: str(self.config.local_path_dir)}

    def conditions(self) -> list[dict[str, str]]:
        now = now_seconds()
        mem = meminfo()
        memory_pressure = mem.get("MemAvailable", 1 << 62) < MEMORY_PRESSURE_BYTES
        disk = shutil.disk_usage(self._disk_path())
        disk_pressure = disk.free < disk.total * DISK_PRESSURE_FRACTION
        try:
            pid_max = int(open("/proc/sys/kernel/pid_max").read())
            pids = sum(1 for d in os.listdir("/proc") if d.isdigit())
            pid_pressure = pids > pid_max * PID_PRESSURE_FRACTION
        except OSError:
            pid_pressure = False

        def cond(type_: str, bad: bool, ok_reason: str, bad_reason: str, ok_msg: str, bad_msg: str) -> dict:
            return {"type": type_, "status": "True" if bad else "False",
                    "reason": bad_reason if bad else ok_reason, "message": bad_msg if bad else ok_msg,
                    "lastHeartbeatTime": now, "lastTransitionTime": now}
        return [
            cond("MemoryPressure", memory_pressure, "KubeletHasSufficientMemory", "KubeletHasInsufficientMemory",
                 "agent has sufficient memory available", "agent has insufficient memory available"),
            cond("DiskPressure", disk_pressure, "KubeletHasNoDiskPressure", "KubeletHasDiskPressure",
                 "agent has no disk pressure", "agent has disk pressure"),
            cond("PIDPressure", pid_pressure, "KubeletHasSufficientPID", "KubeletHasInsufficientPID",
                 "agent has sufficient PID available", "agent has insufficient PID available"),
            {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "agent is posting ready status",
             "lastHeartbeatTime": now, "lastTransitionTime": now},
        ]

    def status(self) -> dict[str, Any]:
        uname = os.uname()
        return {
            "capacity": self.capacity(), "allocatable": self.allocatable(), "conditions": self.conditions(),
            "addresses": [{"type": "InternalIP", "address": self.node_ip},
                          {"type": "Hostname", "address": self.config.node_name}],
            "nodeInfo":
            {"kernelVersion": uname.release, "osImage": os_image(),
             "containerRuntimeVersion": f"{RUNTIME_VERSION} (cgroup v{self.cgroup_version})",
             "kubeletVersion": "skiff-agent/0.1.0", "operatingSystem": "linux", "architecture": arch(),
             "machineID": _read("/etc/machine-id"), "bootID": _read("/proc/sys/kernel/random/boot_id")},
            "images": self.images(),
            "daemonEndpoints": {"kubeletEndpoint": {"Port": int(self.config.listen.rsplit(":", 1)[1])}},
        }

    # -- registering ---------------------------------------------------------------------

    async def register(self) -> dict[str, Any]:
        """Create the Node, or take over an existing one with our labels and taints."""
        name = self.config.node_name
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": self.labels(), "annotations": self.annotations()},
                "spec": {"taints": [dict(t) for t in self.config.taints]} if self.config.taints else {},
                "status": self.status()}
        backoff = 0.2
        while True:
            try:
                try:
                    created = await self.client.create(node)
                    log.info("registered node %s (%s)", name, self.node_ip)
                    self.registered.set()
                    return created
                except AlreadyExists:
                    current = await self.client.get("nodes", name)
                    current["metadata"]["labels"] = {**(current["metadata"].get("labels") or {}), **self.labels()}
                    current["metadata"]["annotations"] = {**(current["metadata"].get("annotations") or {}),
                                                          **self.annotations()}
                    spec = current.setdefault("spec", {})
                    if self.config.taints:
                        keys = {(t["key"], t.get("effect")) for t in self.config.taints}
                        spec["taints"] = [t for t in spec.get("taints") or [] if (t["key"], t.get("effect")) not in keys] \
                            + [dict(t) for t in self.config.taints]
                    current = await self.client.update(current)
                    # A node coming back renews its Lease before it says Ready: the node lifecycle
                    # controller would otherwise see Ready next to a Lease from before the outage,
                    # mark the node Unknown again and keep it tainted until the next status post.
                    await self.renew_lease()
                    current["status"] = self.status()
                    current = await self.client.update_status(current)
                    log.info("node %s already registered; updated it", name)
                    self.registered.set()
                    return current
            except ApiError as exc:
                log.warning("registering node %s failed: %s; retrying in %.1fs", name, exc.message, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def run(self) -> None:
        if not self.registered.is_set():
            await self.register()
        await asyncio.gather(self._lease_loop(), self._status_loop())

    async def _lease_loop(self) -> None:
        while True:
            await self.renew_lease()
            await asyncio.sleep(self.config.lease_renew_seconds)

    async def renew_lease(self) -> None:
        """Renew this node's Lease once (creating it if missing); a failure waits for the next beat."""
        name = self.config.node_name
        try:
            if self._lease is None:
                try:
                    self._lease = await self.client.get("leases", name, LEASE_NAMESPACE)
                except NotFound:
                    self._lease = await self.client.create({
                        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                        "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
                        "spec": {"holderIdentity": name, "renewTime": now_micro(), "acquireTime": now_micro(),
                                 "leaseDurationSeconds": max(1, int(self.config.lease_renew_seconds * 4))}})
            lease = self._lease
            lease["spec"]["renewTime"] = now_micro()
            lease["spec"]["holderIdentity"] = name
            self._lease = await self.client.update(lease)
        except ApiError as exc:
            log.debug("lease renewal failed: %s", exc.message)
            self._lease = None  # re-read next time (conflict, or the control plane was away)

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.status_update_seconds)
            try:
                node = await self.client.get("nodes", self.config.node_name)
                node["status"] = {**(node.get("status") or {}), **self.status()}
                await self.client.update_status(node)
            except NotFound:
                log.warning("node %s was deleted; registering again", self.config.node_name)
                await self.register()
            except ApiError as exc:
                log.debug("node status update failed: %s", exc.message)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""
