"""The built-in local-path provisioner's volumes (k3s' `rancher.io/local-path`), and its StorageClass.

The PV controller (persistentvolume.py) provisions a WaitForFirstConsumer claim of a
class with this provisioner on the node its first pod was scheduled to:
`provisioned_volume` is a `hostPath` PersistentVolume (type DirectoryOrCreate) at
`<root>/pvc-<uid>_<namespace>_<claim>` (k3s' layout), `<root>` being the node's
`skiff.io/local-path-root` annotation (the agent writes its `<state-dir>/local-path` there
at registration), else the class parameter `nodePath`, else /var/lib/skiff/agent/local-path;
with a nodeAffinity on the node's `kubernetes.io/hostname`, so later pods using the claim go
there, and the claimRef already set. The agent makes the directory when a pod mounts the
volume and removes it once the volume is deleted (agent/localpath.py).
"""

from __future__ import annotations

from typing import Any, Mapping

from api.storage import DEFAULT_CLASS_ANNOTATION
from api.volumebinding import LOCAL_PATH_PROVISIONER, WAIT_FOR_FIRST_CONSUMER, pinned_node_affinity

Obj = Mapping[str, Any]
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
ROOT_ANNOTATION = "skiff.io/local-path-root"       # written by the agent (agent/localpath.py)
DEFAULT_NODE_PATH = "/var/lib/skiff/agent/local-path"


def _storage(claim: Obj) -> str:
    return str((((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage", "0"))


def provisioned_volume(claim: Obj, storage_class: Obj, node: Obj | None, node_name: str, *,
                       claim_ref: dict[str, Any]) -> dict[str, Any]:
    """The local-path PersistentVolume for a claim, on `node_name`."""
    meta = claim["metadata"]
    name = f"pvc-{meta['uid']}"
    root = (((node or {}).get("metadata") or {}).get("annotations") or {}).get(ROOT_ANNOTATION) \
        or (storage_class.get("parameters") or {}).get("nodePath") or DEFAULT_NODE_PATH
    path = f"{root.rstrip('/')}/{name}_{meta.get('namespace')}_{meta['name']}"
    return {"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name, "annotations": {PROVISIONED_BY: LOCAL_PATH_PROVISIONER,
                                                        "local.path.provisioner/selected-node": node_name}},
            "spec": {"capacity": {"storage": _storage(claim)},
                     "accessModes": list((claim.get("spec") or {}).get("accessModes") or ["ReadWriteOnce"]),
                     "persistentVolumeReclaimPolicy": storage_class.get("reclaimPolicy", "Delete"),
                     "storageClassName": storage_class["metadata"]["name"],
                     "volumeMode": "Filesystem",
                     "hostPath": {"path": path, "type": "DirectoryOrCreate"},
                     "nodeAffinity": pinned_node_affinity(node_name),
                     "claimRef": claim_ref}}


def default_storage_class() -> dict[str, Any]:
    """The built-in `local-path` StorageClass (k3s' default), made at control plane start."""
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "local-path", "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
            "provisioner": LOCAL_PATH_PROVISIONER, "reclaimPolicy": "Delete",
            "volumeBindingMode": WAIT_FOR_FIRST_CONSUMER}
