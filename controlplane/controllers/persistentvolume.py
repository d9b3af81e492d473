"""The PersistentVolume controller: binds claims to volumes, provisions local-path volumes, reclaims.

Kubernetes splits this into the PV controller and external provisioners; here it is one
controller (k3s ships its local-path provisioner built in too). Keys are ("claim", ns,
name) and ("volume", "", name). Events: a claim or volume changed; a pod using a claim
was bound to a node (a WaitForFirstConsumer claim may now be bound); a StorageClass
appeared (claims waiting for it look again).

A claim (reconcile_claim):
1. without `storageClassName` gets the default class's name (the DefaultStorageClass
   admission of Kubernetes; none: the claim wants a volume without a class);
2. a class that does not exist → Pending, a `ProvisioningFailed` Warning event naming it;
3. with `volumeName` set: bound when that volume is (claimRef) — else it binds it;
4. otherwise the smallest fitting volume (api/volumebinding.py) is bound. For a class with
   `volumeBindingMode: WaitForFirstConsumer` this waits until a pod using the claim is
   scheduled (the scheduler's VolumeBinding plugin picked a node its volumes can reach),
   and only volumes that node can reach count; when none fits and the class's
   provisioner is `rancher.io/local-path`, a volume is provisioned on that node: a
   `hostPath` (type DirectoryOrCreate) at `<root>/pvc-<uid>_<ns>_<claim>`, `<root>` from
   the node's `skiff.io/local-path-root` annotation (the agent's `<state-dir>/local-path`;
   the class parameter `nodePath` otherwise), with a nodeAffinity pinning later pods to
   that node. The agent makes the directory when the pod mounts it (agent/localpath.py).
Binding writes the volume's claimRef and phase Bound first, then the claim's volumeName
and phase Bound, so a volume is never given to two claims.

A volume (reconcile_volume): Available without claimRef; Bound while its claim (same uid)
exists; Released when the claim is gone. A Released volume with `Delete` is deleted if
this controller provisioned it (the agent's sweep then removes its directory); a user's
volume with Delete becomes Failed (Skiff cannot delete a user's directory); `Retain`
keeps it Released, data and all, until an administrator deletes it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from api.volumebinding import (LOCAL_PATH_PROVISIONER, SELECTED_NODE, WAIT_FOR_FIRST_CONSUMER, best_volume,
                               claim_names, default_class, is_bound_to)
from controlplane.client import AlreadyExists, ApiError, Conflict, NotFound
from controlplane.client.events import NORMAL, WARNING
from controlplane.controllers.localpath import PROVISIONED_BY, provisioned_volume
from controlplane.controllers.manager import Context, QueueController
from controlplane.controllers.settings import ControllerSettings

log = logging.getLogger(__name__)
Obj = dict[str, Any]
Key = tuple[str, str, str]
POD_BY_CLAIM = "pod-by-claim"
BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
CONFLICT_RETRY_SECONDS = 0.1


def _pod_claims(pod: Obj) -> list[str]:
    ns = pod["metadata"].get("namespace", "")
    return [f"{ns}/{name}" for name in claim_names(pod)]


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def claim_ref(claim: Obj) -> dict[str, Any]:
    meta = claim["metadata"]
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": meta.get("namespace"),
            "name": meta["name"], "uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion")}


# The controller pattern (informers in setup, events -> keys, reconcile a key, retry on Conflict):
# alike in shape across controllers by design (the `duplicates` tool pairs them); the rules differ.
class PersistentVolumeController(QueueController):
    def __init__(self, settings: ControllerSettings | None = None):
        super().__init__(name="persistentvolume")
        self.settings = settings or ControllerSettings()
        self.workers = 1          # one worker: two claims never race for one volume
        self._said: dict[Key, str] = {}      # the last event per claim, so a waiting claim says it once

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        self.claims = ctx.informers.get("PersistentVolumeClaim")
        self.volumes = ctx.informers.get("PersistentVolume")
        self.classes = ctx.informers.get("StorageClass")
        self.nodes = ctx.informers.get("Node")
        self.pods = ctx.informers.get("Pod")
        self.pods.add_index(POD_BY_CLAIM, _pod_claims)
        self.claims.add_handlers(on_add=self._claim_event, on_update=lambda _o, new: self._claim_event(new),
                                 on_delete=self._claim_deleted)
        self.volumes.add_handlers(on_add=self._volume_event, on_update=lambda _o, new: self._volume_event(new),
                                  on_delete=self._volume_deleted)
        self.classes.add_handlers(on_add=lambda _c: self._all_pending(),
                                  on_update=lambda _o, _n: self._all_pending())
        self.pods.add_handlers(on_add=self._pod_event, on_update=self._pod_updated)

    # -- events -> keys --------------------------------------------------------------------

    def _claim_event(self, claim: Obj) -> None:
        self.queue.add(("claim", claim["metadata"].get("namespace", ""), claim["metadata"]["name"]))

    def _claim_deleted(self, claim: Obj) -> None:
        self._said.pop(("claim", claim["metadata"].get("namespace", ""), claim["metadata"]["name"]), None)
        name = (claim.get("spec") or {}).get("volumeName")
        if name:
            self.queue.add(("volume", "", name))
        for volume in self.volumes.store.values():      # a volume bound to it by claimRef only
            if is_bound_to(volume, claim):
                self._volume_event(volume)

    def _volume_event(self, volume: Obj) -> None:
        self.queue.add(("volume", "", volume["metadata"]["name"]))
        ref = (volume.get("spec") or {}).get("claimRef")
        if ref:
            self.queue.add(("claim", ref.get("namespace") or "", ref.get("name") or ""))
        else:
            self._all_pending()                          # a new free volume may fit a waiting claim

    def _volume_deleted(self, volume: Obj) -> None:
        ref = (volume.get("spec") or {}).get("claimRef")
        if ref:
            self.queue.add(("claim", ref.get("namespace") or "", ref.get("name") or ""))

    def _all_pending(self) -> None:
        for claim in self.claims.store.values():
            if (claim.get("status") or {}).get("phase") != "Bound":
                self._claim_event(claim)

    def _pod_event(self, pod: Obj) -> None:
        if (pod.get("spec") or {}).get("nodeName"):
            ns = pod["metadata"].get("namespace", "")
            for name in claim_names(pod):
                self.queue.add(("claim", ns, name))

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if not (old.get("spec") or {}).get("nodeName"):
            self._pod_event(new)

    # -- reconcile ----------------------------------------------------------------------------

    async def reconcile(self, key: Key) -> float | None:
        try:
            if key[0] == "claim":
                return await self.reconcile_claim(key[1], key[2])
            return await self.reconcile_volume(key[2])
        except Conflict:
            return CONFLICT_RETRY_SECONDS

    def _say(self, claim: Obj, kind: str, reason: str, message: str) -> None:
        key = ("claim", claim["metadata"].get("namespace", ""), claim["metadata"]["name"])
        if self._said.get(key) != message:
            self._said[key] = message
            self.ctx.recorder.event(claim, kind, reason, message)

    async def reconcile_claim(self, namespace: str, name: str) -> float | None:
        claim = self.claims.get(namespace, name)
        if claim is None or claim["metadata"].get("deletionTimestamp"):
            return None
        spec = claim.get("spec") or {}
        if spec.get("storageClassName") is None and not spec.get("volumeName"):
            default = default_class(self.classes.store.values())
            if default is not None:
                await self.ctx.client.update({**claim, "spec": {**spec, "storageClassName": default}})
                return None                              # the update comes back as an event
        class_name = spec.get("storageClassName") or ""
        storage_class = self.classes.get("", class_name) if class_name else None
        if spec.get("volumeName"):
            volume = self.volumes.get("", spec["volumeName"])
            if volume is None:
                if (claim.get("status") or {}).get("phase") == "Bound":
                    await self._claim_status(claim, {"phase": "Lost"})
                    self._say(claim, WARNING, "ClaimLost", "Bound claim has lost its PersistentVolume. Data on "
                                                            "the volume is lost!")
                return None
            if (volume.get("spec") or {}).get("claimRef") and not is_bound_to(volume, claim):
                self._say(claim, WARNING, "FailedBinding", f'volume "{spec["volumeName"]}" already bound to a '
                                                            f"different claim.")
                return None
            await self._bind(claim, volume)
            return None
        if class_name and storage_class is None:
            await self._claim_status(claim, {"phase": "Pending"})
            self._say(claim, WARNING, "ProvisioningFailed",
                      f'storageclass.storage.k8s.io "{class_name}" not found')
            return None
        await self._claim_status(claim, {"phase": "Pending"})
        waits = storage_class is not None and storage_class.get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER
        node_name = ""
        if waits:
            node_name = self._consumer_node(claim)
            if not node_name:
                self._say(claim, NORMAL, "WaitForFirstConsumer",
                          "waiting for first consumer to be created before binding")
                return None
        node = self.nodes.get("", node_name) if node_name else None
        where = ((node or {}).get("metadata", {}).get("labels") or {"kubernetes.io/hostname": node_name},
                 node_name) if node_name else None
        volume = best_volume(claim, self.volumes.store.values(), node=where)
        if volume is not None:
            await self._bind(claim, volume)
            return None
        if storage_class is not None and storage_class.get("provisioner") == LOCAL_PATH_PROVISIONER:
            if not node_name:
                node_name = self._consumer_node(claim)
                if not node_name:
                    self._say(claim, NORMAL, "WaitForFirstConsumer",
                              "waiting for first consumer to be created before binding")
                    return None
                node = self.nodes.get("", node_name)
            await self._provision(claim, storage_class, node, node_name)
            return None
        if class_name:
            self._say(claim, NORMAL, "ExternalProvisioning",
                      f'Waiting for a volume to be created either by the external provisioner '
                      f'"{(storage_class or {}).get("provisioner")}" or manually by the system administrator.')
        else:
            self._say(claim, NORMAL, "FailedBinding",
                      "no persistent volumes available for this claim and no storage class is set")
        return None

    def _consumer_node(self, claim: Obj) -> str:
        """The node of a scheduled pod that uses the claim ("" when none is scheduled yet)."""
        meta = claim["metadata"]
        selected = (meta.get("annotations") or {}).get(SELECTED_NODE)
        if selected:
            return selected
        for pod in self.pods.by_index(POD_BY_CLAIM, f"{meta.get('namespace', '')}/{meta['name']}"):
            node = (pod.get("spec") or {}).get("nodeName")
            if node and not pod["metadata"].get("deletionTimestamp"):
                return node
        return ""

    async def _provision(self, claim: Obj, storage_class: Obj, node: Obj | None, node_name: str) -> None:
        volume = provisioned_volume(claim, storage_class, node, node_name, claim_ref=claim_ref(claim))
        self._say(claim, NORMAL, "Provisioning", f'External provisioner is provisioning volume for claim '
                                                 f'"{claim["metadata"].get("namespace")}/{claim["metadata"]["name"]}"')
        try:
            created = await self.ctx.client.create(volume)
        except AlreadyExists:
            created = await self.ctx.client.get("persistentvolumes", volume["metadata"]["name"])
        except ApiError as exc:
            self._say(claim, WARNING, "ProvisioningFailed", f"failed to provision volume with StorageClass "
                                                            f'"{storage_class["metadata"]["name"]}": {exc.message}')
            raise
        self._say(claim, NORMAL, "ProvisioningSucceeded",
                  f'Successfully provisioned volume {created["metadata"]["name"]}')
        await self._bind(claim, created)

    async def _bind(self, claim: Obj, volume: Obj) -> None:
        """Volume first (claimRef, Bound), then the claim (volumeName, Bound)."""
        vspec = volume.get("spec") or {}
        if not is_bound_to(volume, claim) or not (vspec.get("claimRef") or {}).get("uid"):
            annotations = {**(volume["metadata"].get("annotations") or {}), BOUND_BY_CONTROLLER: "yes"}
            volume = await self.ctx.client.update({**volume, "metadata": {**volume["metadata"],
                                                                          "annotations": annotations},
                                                   "spec": {**vspec, "claimRef": claim_ref(claim)}})
        await self._volume_status(volume, "Bound")
        spec = claim.get("spec") or {}
        if spec.get("volumeName") != volume["metadata"]["name"]:
            claim = await self.ctx.client.update({**claim, "spec": {**spec,
                                                                    "volumeName": volume["metadata"]["name"]}})
        await self._claim_status(claim, {"phase": "Bound", "accessModes": list(volume["spec"].get("accessModes") or []),
                                         "capacity": dict(volume["spec"].get("capacity") or {})})

    async def _claim_status(self, claim: Obj, status: dict[str, Any]) -> None:
        current = claim.get("status") or {}
        if all(current.get(k) == v for k, v in status.items()):
            return
        try:
            await self.ctx.client.update_status({**claim, "status": {**current, **status}})
        except NotFound:
            pass

    async def _volume_status(self, volume: Obj, phase: str, message: str = "") -> None:
        current = volume.get("status") or {}
        if current.get("phase") == phase and (current.get("message") or "") == message:
            return
        status = {"phase": phase, "lastPhaseTransitionTime": _now()}
        if message:
            status["message"] = message
        try:
            await self.ctx.client.update_status({**volume, "status": status})
        except NotFound:
            pass

    async def reconcile_volume(self, name: str) -> float | None:
        volume = self.volumes.get("", name)
        if volume is None or volume["metadata"].get("deletionTimestamp"):
            return None
        spec = volume.get("spec") or {}
        ref = spec.get("claimRef")
        if not ref:
            await self._volume_status(volume, "Available")
            return None
        claim = self.claims.get(ref.get("namespace") or "", ref.get("name") or "")
        if claim is None:                                  # the cache may lag: ask the server
            try:
                claim = await self.ctx.client.get("persistentvolumeclaims", ref.get("name") or "",
                                                  ref.get("namespace") or "")
            except NotFound:
                claim = None
        if claim is not None and (not ref.get("uid") or ref.get("uid") == claim["metadata"].get("uid")):
            if (volume.get("status") or {}).get("phase") != "Bound":
                self.queue.add(("claim", ref.get("namespace") or "", ref.get("name") or ""))
            return None
        if not ref.get("uid"):
            return None                                    # pre-bound by the user to a claim not made yet
        # Its claim is gone.
        policy = spec.get("persistentVolumeReclaimPolicy", "Retain")
        if policy == "Delete":
            if (volume["metadata"].get("annotations") or {}).get(PROVISIONED_BY) == LOCAL_PATH_PROVISIONER:
                await self._volume_status(volume, "Released")
                try:
                    await self.ctx.client.delete("persistentvolumes", name)
                    log.info("deleted volume %s: its claim is gone and its reclaim policy is Delete", name)
                except NotFound:
                    pass
                return None
            await self._volume_status(volume, "Failed", "error getting deleter volume plugin for volume "
                                                        f'"{name}": no deletable volume plugin matched')
            return None
        await self._volume_status(volume, "Released")
        return None
