"""The agent, assembled: node registration, pod informer, pod workers, runtime, images, volumes,
service proxy, cluster DNS.

`Agent.start()` opens every part (runtime fork server, image store, node
registration) and re-adopts what the runtime already runs; `Agent.run()` keeps
the node's Lease and status, watches this node's pods and syncs each with its
own worker. `close()` stops the agent's own tasks but leaves containers running.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from controlplane.client import Client, Credentials
from controlplane.client.events import EventRecorder
from controlplane.client.informer import Informer

from agent.cgroups import detect, open_manager
from agent.certificates import NodeCertificates, NodeIdentity
from agent.config import AgentConfig
from agent.dns.forward import parse_upstream
from agent.dns.node import ClusterDNS
from agent.ephemeral import EphemeralStorageMonitor
from agent.imagegc import ImageGarbageCollector
from agent.images import ImageStore, MirrorConfig
from agent.node import NodeAgent
from agent.podnetwork import PodNetwork
from agent.podsync import PodSyncer
from agent.podworkers import PodWorkers
from agent.proxy import ServiceProxy
from agent.envs import ConfigError
from agent.runtime import Runtime
from agent.service import AgentServer, AgentService
from agent.volumes import VolumeManager
from api.tasks import cancel_and_wait
from agent import localpath

log = logging.getLogger(__name__)


class Agent:
    def __init__(self, config: AgentConfig, *, identity: NodeIdentity | None = None,
                 certificates: NodeCertificates | None = None):
        """identity: the node's certificates (agent/certificates.py); None only with --insecure."""
        self.config = config
        self.identity = identity
        self.certificates = certificates
        self.client = Client(config.server, credentials=identity.client_credentials() if identity
                             else Credentials.plaintext())
        self.cgroups = open_manager(parent=config.cgroup_parent, root=config.cgroup_root)
        self.runtime = Runtime(config.runtime_dir, cgroups=self.cgroups)
        mirrors = MirrorConfig.load(config.registries_config) if config.registries_config else None
        self.images = ImageStore(config.images_dir, mirrors=mirrors)
        self.image_gc = ImageGarbageCollector(self.images, lambda: self.pods.list(),
                                              interval=config.image_gc_interval_seconds,
                                              high_percent=config.image_gc_high_percent,
                                              low_percent=config.image_gc_low_percent)
        self.volumes = VolumeManager(config.pods_dir, claims=localpath.getter(self.client))
        self.local_path = localpath.LocalPathSweeper(config.local_path_dir, localpath.getter(self.client))
        self.node = NodeAgent(self.client, config, cgroup_version=detect(config.cgroup_root),
                              images=lambda: self.images.node_images())
        # Events are deduplicated per (pod, reason, message) so a repeat bumps `count`; only this
        # node's pods repeat here, about 4-6 keys each (Pulled, Created, Started, Killing, ...), so
        # 8 keys per pod the node may run is plenty, and bounds what the recorder keeps.
        self.recorder = EventRecorder(self.client, component="skiff-agent", host=config.node_name,
                                      max_entries=max(256, 8 * config.max_pods))
        self.pods = Informer(self.client, "pods", field_selector=f"spec.nodeName={config.node_name}")
        # uid -> (namespace, name) of every pod the informer has, to find a pod from its uid
        # (containers, workers and probes know pods by uid). Entries go when the pod is deleted.
        self.uid_to_key: dict[str, tuple[str, str]] = {}
        self.network: PodNetwork | None = None
        if config.network:
            self.nodes = Informer(self.client, "nodes")
            self.network = PodNetwork(nodes=self.nodes, node_name=config.node_name, node_ip=self.node.node_ip,
                                      state_dir=config.network_dir, cluster_cidr=config.cluster_cidr,
                                      bridge=config.bridge, on_ready=self._retry_all_pods)
        # Services: for containers' environment variables; with the slices, for the service proxy
        # and cluster DNS. One informer per kind, shared by all three.
        self.services = Informer(self.client, "services")
        self.endpoint_slices = Informer(self.client, "endpointslices")
        self.proxy: ServiceProxy | None = None
        if config.network and config.service_proxy:
            self.proxy = ServiceProxy(node_name=config.node_name, cluster_cidr=config.cluster_cidr)
            self.proxy.watch(self.services, self.endpoint_slices)
        # Cluster DNS for this node's pods (agent/dns/node.py); it serves only with a pod network,
        # but pods' resolv.conf (dnsPolicy, dnsConfig) is always written from it.
        upstreams = ([parse_upstream(u) for u in config.dns_upstreams]
                     if config.dns_upstreams is not None else None)
        self.cluster_dns = ClusterDNS(self.client, cluster_domain=config.cluster_domain, upstreams=upstreams,
                                      port=config.dns_port, services=self.services,
                                      endpoint_slices=self.endpoint_slices)
        self.workers: PodWorkers | None = None
        self.syncer: PodSyncer | None = None
        self.storage: EphemeralStorageMonitor | None = None
        self.service: Any = None
        self._adopted: set[str] = set()

    def _pod(self, uid: str) -> dict[str, Any] | None:
        key = self.uid_to_key.get(uid)
        pod = self.pods.get(*key) if key else None
        if pod is not None and pod["metadata"].get("uid") != uid:
            return None
        return pod

    async def start(self) -> None:
        for path in (self.config.state_dir, self.config.runtime_dir, self.config.images_dir, self.config.pods_dir,
                     self.config.logs_dir):
            path.mkdir(parents=True, exist_ok=True)
        # The node's cgroup parent carries the node's pids limit (no fork bomb takes the host's pid_max).
        await asyncio.to_thread(self.cgroups.create, "", self.node.node_cgroup_resources())
        await self.runtime.start()
        self.workers = PodWorkers(self._sync)
        self.syncer = PodSyncer(client=self.client, config=self.config, runtime=self.runtime, images=self.images,
                                volumes=self.volumes, recorder=self.recorder, node_ip=self.node.node_ip,
                                pod_lookup=self._pod, trigger=self.workers.trigger,
                                network=self.network, probes=self._probes(), services=self._services,
                                cluster_ca=lambda: self.identity.ca if self.identity else None,
                                resolv_conf=self.cluster_dns.resolv_conf)
        self.storage = EphemeralStorageMonitor(pods=self.syncer.storage_targets, evict=self.syncer.request_eviction,
                                               interval=self.config.eviction_interval_seconds)
        self.service = AgentServer(AgentService(runtime=self.runtime, find_pod=self.pods.get,
                                                states=lambda: self.syncer.states, images=self.images,
                                                node_name=self.config.node_name, pods=self.pods.list),
                                   self.config.listen,
                                   credentials=(self.certificates.serving_credentials(self.identity)
                                                if self.identity and self.certificates else None),
                                   ca=self.identity.ca if self.identity else None)
        node = await self.node.register()
        self.syncer.node = node
        self._adopted = await self.syncer.adopt()

    def _probes(self) -> Any:
        try:
            from agent.probing import ProbeManager
        except ImportError:
            return None
        return ProbeManager(runtime=self.runtime, recorder=self.recorder, trigger=lambda uid: self.workers.trigger(uid))

    def _services(self) -> list[dict[str, Any]]:
        if not self.services.synced.is_set():     # the kubelet's rule: no environment from half a list
            raise ConfigError("services have not yet been read at least once, cannot construct envvars")
        return self.services.list()

    async def _after_services_listed(self) -> None:
        """Containers that could not start before the Services were known get another look."""
        await self.services.wait_synced(timeout=None)
        self._retry_all_pods()

    async def _proxy_ready(self) -> None:
        await self.services.wait_synced(timeout=None)
        await self.endpoint_slices.wait_synced(timeout=None)

    def _retry_all_pods(self) -> None:
        """The pod network came up: pods waiting for it get another look."""
        if self.workers is not None:
            for uid in list(self.uid_to_key):
                self.workers.trigger(uid)

    async def _sync(self, uid: str) -> Any:
        assert self.syncer is not None
        return await self.syncer.sync(uid)

    def _on_pod(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        self.uid_to_key[meta["uid"]] = (meta["namespace"], meta["name"])
        assert self.workers is not None
        self.workers.trigger(meta["uid"])

    def _on_pod_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        # After a relist the informer may report a pod deleted and re-created under the same
        # name as an update from one uid to another: the old uid is gone as well.
        if old["metadata"].get("uid") != new["metadata"].get("uid"):
            self._on_pod_deleted(old)
        self._on_pod(new)

    def _on_pod_deleted(self, pod: dict[str, Any]) -> None:
        """The pod is gone from the API: forget its uid, then let its worker clean up. The worker's
        next sync finds no pod for the uid (as it would without the entry: the informer no longer
        holds it) and stops and removes what is left on the node."""
        uid = pod["metadata"]["uid"]
        self.uid_to_key.pop(uid, None)
        assert self.workers is not None
        self.workers.trigger(uid)

    async def run(self) -> None:
        self.pods.add_handlers(on_add=self._on_pod, on_update=self._on_pod_updated,
                               on_delete=self._on_pod_deleted)
        tasks = [asyncio.create_task(self.node.run(), name="node"),
                 asyncio.create_task(self.pods.run(), name="pods-informer"),
                 asyncio.create_task(self.image_gc.run(), name="image-gc"),
                 asyncio.create_task(self.storage.run(), name="ephemeral-storage"),
                 asyncio.create_task(self.local_path.run(), name="local-path-sweep"),
                 asyncio.create_task(self.services.run(), name="services-informer"),
                 asyncio.create_task(self._after_services_listed(), name="services-listed")]
        if self.proxy is not None or self.network is not None:    # the proxy or cluster DNS reads slices
            tasks.append(asyncio.create_task(self.endpoint_slices.run(), name="endpointslices-informer"))
        if self.proxy is not None:
            tasks.append(asyncio.create_task(self.proxy.run(ready=self._proxy_ready), name="service-proxy"))
        if self.network is not None:
            tasks += [asyncio.create_task(self.nodes.run(), name="nodes-informer"),
                      asyncio.create_task(self.network.run(), name="pod-network"),
                      asyncio.create_task(self.cluster_dns.run(self.network), name="cluster-dns")]
        if self.service is not None:
            tasks.append(asyncio.create_task(self.service.run(), name="agent-service"))
        if self.identity is not None and self.certificates is not None:
            tasks.append(asyncio.create_task(self.certificates.keep_renewed(self.identity, self._renewed),
                                             name="certificate-renewal"))
        try:
            # Only once we know which pods should exist may re-adopted ones be judged:
            # a pod deleted while the agent was down is cleaned up; the rest are kept.
            await self.pods.wait_synced(timeout=None)
            for uid in self._adopted:
                self.workers.trigger(uid)
            self._adopted = set()
            await asyncio.gather(*tasks)
        finally:
            await cancel_and_wait(tasks)

    async def _renewed(self, identity: NodeIdentity) -> None:
        self.identity = identity
        await self.client.renew_credentials(identity.client_credentials())

    async def close(self) -> None:
        if self.workers is not None:
            await self.workers.stop()
        await self.recorder.flush(timeout=2)
        await self.runtime.close()
        if self.proxy is not None:
            await self.proxy.close()       # the table stays: Services keep working until the next agent
        await self.client.close()
