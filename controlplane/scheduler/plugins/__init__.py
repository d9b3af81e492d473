"""The scheduler's plugins, one module each, named like Kubernetes'; and the default lists.

FILTERS run in this order (Kubernetes' default order), and a node's first
rejection is the reason counted in a Pending pod's message. SCORES carry
Kubernetes' default weights; config.py lets a YAML file change them.
"""

from __future__ import annotations

from controlplane.scheduler.plugins.balanced_allocation import NodeResourcesBalancedAllocation
from controlplane.scheduler.plugins.image_locality import ImageLocality
from controlplane.scheduler.plugins.inter_pod_affinity import InterPodAffinity
from controlplane.scheduler.plugins.least_allocated import NodeResourcesLeastAllocated
from controlplane.scheduler.plugins.node_affinity import NodeAffinity
from controlplane.scheduler.plugins.node_name import NodeName
from controlplane.scheduler.plugins.node_ports import NodePorts
from controlplane.scheduler.plugins.node_resources_fit import NodeResourcesFit
from controlplane.scheduler.plugins.node_unschedulable import NodeUnschedulable
from controlplane.scheduler.plugins.pod_topology_spread import PodTopologySpread
from controlplane.scheduler.plugins.selector_spread import SelectorSpread
from controlplane.scheduler.plugins.taint_toleration import TaintToleration
from controlplane.scheduler.plugins.volume_binding import VolumeBinding

# One instance per plugin; a plugin that both filters and scores is the same object at both points.
PLUGIN_CLASSES = (NodeUnschedulable, NodeName, TaintToleration, NodeAffinity, NodePorts, NodeResourcesFit,
                  PodTopologySpread, InterPodAffinity, NodeResourcesLeastAllocated,
                  NodeResourcesBalancedAllocation, SelectorSpread, ImageLocality, VolumeBinding)

FILTERS = ("NodeUnschedulable", "NodeName", "TaintToleration", "NodeAffinity", "NodePorts", "NodeResourcesFit",
           "VolumeBinding", "PodTopologySpread", "InterPodAffinity")

DEFAULT_SCORE_WEIGHTS = {
    "NodeResourcesLeastAllocated": 1,
    "NodeResourcesBalancedAllocation": 1,
    "NodeAffinity": 2,
    "TaintToleration": 3,
    "InterPodAffinity": 2,
    "SelectorSpread": 1,
    "ImageLocality": 1,
}

ALL_PLUGINS = tuple(cls.name for cls in PLUGIN_CLASSES)
