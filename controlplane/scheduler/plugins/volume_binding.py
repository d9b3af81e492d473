"""VolumeBinding: a pod goes only where its PersistentVolumeClaims can be satisfied.

For each `persistentVolumeClaim` volume of the pod (kube-scheduler's plugins/volumebinding,
simplified; the matching rules are api/volumebinding.py's, shared with the PV controller):

- PreFilter: a claim that does not exist, or that waits for no consumer
  (`volumeBindingMode: Immediate`, or no class) and is not bound yet, rejects every node —
  the pod waits until the claim is bound. A claim whose class does not exist rejects
  every node too.
- Filter, per node: a bound claim's volume must allow the node (its nodeAffinity: a
  local-path volume pins the node it was provisioned on). An unbound
  WaitForFirstConsumer claim fits a node when a free volume that fits it is reachable
  from the node, or its class's provisioner can make one there (`rancher.io/local-path`
  provisions on any node).

Once the pod is bound, the PV controller binds or provisions the waiting claims for that
node. Claims, volumes and classes come from the scheduler's cache (scheduler.py feeds it
from informers); the plugin reads nothing else.
"""

from __future__ import annotations

from typing import Any

from api.volumebinding import (LOCAL_PATH_PROVISIONER, WAIT_FOR_FIRST_CONSUMER, best_volume, claim_class,
                               claim_names, volume_allows_node)
from controlplane.scheduler.framework import SKIPPED, CycleState, Status, unresolvable, unschedulable
from controlplane.scheduler.nodeinfo import NodeInfo, PodInfo

# Message strings (kube-scheduler's own words): alike in shape to other modules'
# constants (the `duplicates` tool pairs them).
NAME = "VolumeBinding"
UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"
CONFLICT = "node(s) had volume node affinity conflict"
NO_VOLUME = "node(s) didn't find available persistent volumes to bind"
_STATE = "VolumeBinding/claims"


def claim_not_found(name: str) -> str:
    return f'persistentvolumeclaim "{name}" not found'


def class_not_found(name: str) -> str:
    return f'storageclass.storage.k8s.io "{name}" not found'


class VolumeBinding:
    name = NAME

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        names = claim_names(pod.pod)
        if not names:
            return SKIPPED
        facts = state.snapshot.volume_facts
        bound: list[dict[str, Any]] = []        # volumes of bound claims
        waiting: list[tuple[dict[str, Any], dict[str, Any]]] = []   # (claim, class) of WaitForFirstConsumer claims
        for name in names:
            claim = facts.claims.get((pod.namespace, name))
            if claim is None or claim["metadata"].get("deletionTimestamp"):
                return unresolvable(claim_not_found(name))
            volume_name = (claim.get("spec") or {}).get("volumeName")
            if volume_name and (claim.get("status") or {}).get("phase") == "Bound":
                volume = facts.volumes.get(volume_name)
                if volume is None:
                    return unresolvable(f'persistentvolume "{volume_name}" not found')
                bound.append(volume)
                continue
            class_name = claim_class(claim)
            storage_class = facts.classes.get(class_name) if class_name else None
            if class_name and storage_class is None:
                return unresolvable(class_not_found(class_name))
            if storage_class is None or storage_class.get("volumeBindingMode") != WAIT_FOR_FIRST_CONSUMER:
                return unschedulable(UNBOUND_IMMEDIATE)
            waiting.append((claim, storage_class))
        state.write(_STATE, (bound, waiting))
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        bound, waiting = state.read(_STATE)
        for volume in bound:
            if not volume_allows_node(volume, node.labels, node.name):
                return unresolvable(CONFLICT)
        volumes = state.snapshot.volume_facts.volumes.values()
        for claim, storage_class in waiting:
            if storage_class.get("provisioner") == LOCAL_PATH_PROVISIONER:
                continue
            if best_volume(claim, volumes, node=(node.labels, node.name)) is None:
                return unschedulable(NO_VOLUME)
        return None
