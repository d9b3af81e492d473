"""ImageLocality: prefer nodes that already hold the pod's images (node.status.images), so the
pod starts without a pull. Big images count more; images present on nearly every node
count less (they would not make a difference anywhere).

Per image on the node: size * (nodes holding it / all nodes); the sum is clamped
between 23 MiB and 1000 MiB per container and scaled to 0..100.
Kubernetes: plugins/imagelocality.
"""

from __future__ import annotations

from controlplane.scheduler.framework import MAX_NODE_SCORE, CycleState
from controlplane.scheduler.nodeinfo import NodeInfo, PodInfo

NAME = "ImageLocality"
MB = 1024 * 1024
MIN_THRESHOLD = 23 * MB
MAX_CONTAINER_THRESHOLD = 1000 * MB


class ImageLocality:
    name = NAME

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        if not node.images or not pod.images:
            return 0
        snapshot = state.snapshot
        total_nodes = len(snapshot.node_list()) or 1
        total = 0
        for image in pod.images:
            size = node.images.get(image)
            if size is not None:
                total += int(size * snapshot.image_nodes.get(image, 0) / total_nodes)
        high = MAX_CONTAINER_THRESHOLD * len(pod.images)
        total = min(max(total, MIN_THRESHOLD), high)
        return MAX_NODE_SCORE * (total - MIN_THRESHOLD) // (high - MIN_THRESHOLD)
