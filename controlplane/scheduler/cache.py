"""The scheduler's cache: every node with the pods on it, including pods it has only *assumed*.

Informers (scheduler.py) feed it nodes and bound pods. After deciding where a pod
goes, the scheduler `assume_pod`s it on that node at once, so the next decisions
count its cpu and memory although the bind is still in flight and its watch event
has not arrived. A failed bind `forget_pod`s it; a successful one is confirmed by
`finish_binding` and, later, by the informer's update.

The cache is also the snapshot a scheduling cycle reads. kube-scheduler copies
changed NodeInfos into a snapshot because its informers run on other threads;
here a cycle runs on the event loop without awaiting, so no event can change the
cache in the middle of a decision, and the cache itself is the snapshot.

Besides NodeInfos it keeps the few cluster-wide facts plugins need: pods with
(anti-)affinity terms (InterPodAffinity), how many nodes hold each image
(ImageLocality), namespace labels (namespaceSelector) and a node order that
interleaves zones, so that scanning a sample of nodes covers every zone.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Iterator, Mapping

from controlplane.scheduler.nodeinfo import Key, NodeInfo, PodInfo

TERMINAL_PHASES = ("Succeeded", "Failed")


def is_terminal(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in TERMINAL_PHASES


class VolumeFacts:
    """PersistentVolumeClaims by (namespace, name), PersistentVolumes and StorageClasses by name:
    what the VolumeBinding plugin reads."""

    PLURALS = ("persistentvolumeclaims", "persistentvolumes", "storageclasses")

    def __init__(self) -> None:
        self.claims: dict[Key, dict[str, Any]] = {}
        self.volumes: dict[str, dict[str, Any]] = {}
        self.classes: dict[str, dict[str, Any]] = {}

    def _table(self, plural: str) -> dict[Any, dict[str, Any]]:
        tables: dict[str, dict[Any, dict[str, Any]]] = {"persistentvolumeclaims": self.claims, "persistentvolumes": self.volumes,
                "storageclasses": self.classes}
        return tables[plural]

    @staticmethod
    def _key(plural: str, obj: Mapping[str, Any]) -> Any:
        meta = obj.get("metadata") or {}
        return (meta.get("namespace") or "default", meta.get("name") or "") \
            if plural == "persistentvolumeclaims" else meta.get("name") or ""

    def set(self, plural: str, obj: dict[str, Any]) -> None:
        self._table(plural)[self._key(plural, obj)] = obj

    def remove(self, plural: str, obj: Mapping[str, Any]) -> None:
        self._table(plural).pop(self._key(plural, obj), None)


class Cache:
    def __init__(self) -> None:
        self.volume_facts = VolumeFacts()            # claims, volumes, classes (VolumeBinding)
        self.nodes: dict[str, NodeInfo] = {}
        self._pods: dict[Key, PodInfo] = {}          # bound or assumed; PodInfo.node_name says where
        self._assumed: set[Key] = set()
        self.with_affinity: dict[Key, PodInfo] = {}
        self.with_required_anti_affinity: dict[Key, PodInfo] = {}
        self.image_nodes: Counter = Counter()        # normalized image name -> nodes holding it
        self.namespace_labels: dict[str, dict[str, str]] = {}
        self.cordoned: set[str] = set()              # nodes with spec.unschedulable
        self.hard_tainted: set[str] = set()          # nodes with NoSchedule/NoExecute taints
        self._order: list[NodeInfo] | None = None

    # -- nodes ---------------------------------------------------------------------

    def set_node(self, node: Mapping[str, Any]) -> NodeInfo:
        """Add or update a node."""
        name = (node.get("metadata") or {}).get("name") or ""
        info = self.nodes.get(name)
        if info is None:
            info = self.nodes[name] = NodeInfo(name, node)
            self._order = None
        else:
            if info.node is None or info.zone != ((node.get("metadata") or {}).get("labels") or {}).get(
                    "topology.kubernetes.io/zone", ""):
                self._order = None
            self._count_images(info, -1)
            info.set_node(node)
        self._count_images(info, 1)
        self._note(info)
        return info

    def _note(self, info: NodeInfo) -> None:
        """Keep the cluster-wide sets plugins use to skip work when no node needs checking."""
        for members, present in ((self.cordoned, info.node is not None and info.unschedulable),
                                 (self.hard_tainted, info.node is not None and bool(info.hard_taints))):
            if present:
                members.add(info.name)
            else:
                members.discard(info.name)

    def remove_node(self, name: str) -> None:
        info = self.nodes.get(name)
        if info is None or info.node is None:
            return
        self._count_images(info, -1)
        if info.pods:  # keep the pods' accounting until they go too
            info.set_node(None)
        else:
            del self.nodes[name]
        self.cordoned.discard(name)
        self.hard_tainted.discard(name)
        self._order = None

    def _count_images(self, info: NodeInfo, sign: int) -> None:
        if info.node is None:
            return
        for name in info.images:
            self.image_nodes[name] += sign
            if self.image_nodes[name] <= 0:
                del self.image_nodes[name]

    def node_list(self) -> list[NodeInfo]:
        """Schedulable candidates (nodes with a Node object), zones interleaved, names sorted in each zone."""
        if self._order is None:
            zones: dict[str, list[NodeInfo]] = {}
            for info in self.nodes.values():
                if info.node is not None:
                    zones.setdefault(info.zone, []).append(info)
            columns = [sorted(members, key=lambda n: n.name) for _, members in sorted(zones.items())]
            order: list[NodeInfo] = []
            for i in range(max((len(c) for c in columns), default=0)):
                order.extend(column[i] for column in columns if i < len(column))
            self._order = order
        return self._order

    # -- pods ----------------------------------------------------------------------

    def set_pod(self, pod: Mapping[str, Any]) -> None:
        """A pod with spec.nodeName from the informer: count it on its node (or drop it when it
        has finished). Confirms an assumed pod."""
        meta = pod.get("metadata") or {}
        key = (meta.get("namespace") or "default", meta.get("name") or "")
        if is_terminal(pod):
            self.remove_pod(key)
            return
        node_name = (pod.get("spec") or {}).get("nodeName") or ""
        current = self._pods.get(key)
        self._assumed.discard(key)
        if (current is not None and current.node_name == node_name and current.uid == meta.get("uid")
                and current.labels == (meta.get("labels") or {})
                and current.terminating == bool(meta.get("deletionTimestamp"))):
            current.pod = pod  # nothing the scheduler counts has changed (status updates, mostly)
            return
        self._put(PodInfo(pod), node_name)

    def remove_pod(self, key: Key) -> None:
        pod = self._pods.pop(key, None)
        self._assumed.discard(key)
        if pod is None:
            return
        self.with_affinity.pop(key, None)
        self.with_required_anti_affinity.pop(key, None)
        info = self.nodes.get(pod.node_name)
        if info is not None:
            info.remove_pod(key)
            if info.node is None and not info.pods:
                del self.nodes[pod.node_name]

    def assume_pod(self, pod: PodInfo, node_name: str) -> None:
        """Count `pod` on `node_name` before the bind is confirmed."""
        self._put(pod, node_name)
        self._assumed.add(pod.key)

    def forget_pod(self, key: Key) -> None:
        """Undo assume_pod after a failed bind. A pod the informer already showed bound stays."""
        if key in self._assumed:
            self.remove_pod(key)

    def finish_binding(self, key: Key) -> None:
        """The bind succeeded: the pod is no longer just assumed."""
        self._assumed.discard(key)

    def is_assumed(self, key: Key) -> bool:
        return key in self._assumed

    def _put(self, pod: PodInfo, node_name: str) -> None:
        if pod.key in self._pods:
            self.remove_pod(pod.key)
        pod.node_name = node_name
        self._pods[pod.key] = pod
        info = self.nodes.get(node_name)
        if info is None:
            info = self.nodes[node_name] = NodeInfo(node_name)  # node not seen yet
        info.add_pod(pod)
        if pod.has_affinity:
            self.with_affinity[pod.key] = pod
        if pod.anti_affinity:
            self.with_required_anti_affinity[pod.key] = pod

    def pods(self) -> Iterator[PodInfo]:
        return iter(self._pods.values())

    def pod(self, key: Key) -> PodInfo | None:
        return self._pods.get(key)

    def __len__(self) -> int:
        return len(self._pods)

    # -- namespaces ------------------------------------------------------------------

    def set_namespace(self, namespace: Mapping[str, Any]) -> None:
        meta = namespace.get("metadata") or {}
        self.namespace_labels[meta.get("name") or ""] = meta.get("labels") or {}

    def remove_namespace(self, name: str) -> None:
        self.namespace_labels.pop(name, None)

    # -- building one from lists (preview, tests) -------------------------------------

    @classmethod
    def from_objects(cls, *, nodes: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]] = (),
                     namespaces: Iterable[Mapping[str, Any]] = ()) -> "Cache":
        cache = cls()
        for node in nodes:
            cache.set_node(node)
        for pod in pods:
            if (pod.get("spec") or {}).get("nodeName"):
                cache.set_pod(pod)
        for ns in namespaces:
            cache.set_namespace(ns)
        return cache
