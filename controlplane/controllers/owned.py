"""Pods a controller owns: finding them, reading their state, and expecting its own writes.

Shared by the DaemonSet and Job controllers (daemonset.py, job.py):

- Indexes on the shared pods informer: `by node` (spec.nodeName) and `by
  controller` (uid of the ownerReference with controller: true), so a reconcile
  looks at its own pods, not at every pod in the cluster.
- Small predicates on pod dicts: active, finished, ready, available.
- `owner_reference` builds the reference a controller stamps on what it creates.
- `Expectations` (kube-controller-manager's ControllerExpectations): after a
  controller creates or deletes pods, its informer lags behind its own writes for
  a moment; until the informer has seen them (or a timeout passes) the controller
  must not act on the stale picture, or it would create the same pods twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Mapping

from api.nodelease import parse_time

Obj = Mapping[str, Any]
POD_BY_NODE = "pod-by-node"
POD_BY_CONTROLLER = "pod-by-controller-uid"


def pod_node(pod: Obj) -> list[str]:
    node = (pod.get("spec") or {}).get("nodeName")
    return [node] if node else []


def controller_of(obj: Obj) -> dict[str, Any] | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def pod_controller_uid(pod: Obj) -> list[str]:
    ref = controller_of(pod)
    return [ref["uid"]] if ref and ref.get("uid") else []


def add_pod_indexes(informer: Any) -> None:
    """Register both indexes on a pods informer (idempotent: same names, same functions)."""
    informer.add_index(POD_BY_NODE, pod_node)
    informer.add_index(POD_BY_CONTROLLER, pod_controller_uid)


def owner_reference(owner: Obj) -> dict[str, Any]:
    meta = owner.get("metadata") or {}
    return {"apiVersion": owner.get("apiVersion"), "kind": owner.get("kind"), "name": meta.get("name"),
            "uid": meta.get("uid"), "controller": True, "blockOwnerDeletion": True}


def phase(pod: Obj) -> str:
    return (pod.get("status") or {}).get("phase") or "Pending"


def is_finished(pod: Obj) -> bool:
    return phase(pod) in ("Succeeded", "Failed")


def is_terminating(pod: Obj) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def is_active(pod: Obj) -> bool:
    """Pending or Running, and not on its way out."""
    return not is_finished(pod) and not is_terminating(pod)


def ready_since(pod: Obj) -> float | None:
    """When the pod's Ready condition last became True (clock seconds), or None if not ready."""
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            if c.get("status") != "True":
                return None
            return parse_time(c.get("lastTransitionTime")) or 0.0
    return None


def is_ready(pod: Obj) -> bool:
    return ready_since(pod) is not None


def is_available(pod: Obj, min_ready_seconds: float, now: float) -> bool:
    """Ready for at least min_ready_seconds."""
    since = ready_since(pod)
    return since is not None and (min_ready_seconds <= 0 or since + min_ready_seconds <= now)


@dataclass
class _Expected:
    adds: int = 0
    deletes: set[str] = field(default_factory=set)   # uids
    since: float = 0.0


class Expectations:
    """Per controller key: how many pod creations and which deletions are still unseen."""

    TIMEOUT = 30.0  # kube-controller-manager's ExpectationsTimeout is 5 min; small clusters move faster

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._by_key: dict[Hashable, _Expected] = {}

    def expect_creations(self, key: Hashable, count: int) -> None:
        entry = self._by_key.setdefault(key, _Expected())
        entry.adds += count
        entry.since = self.clock()

    def expect_deletion(self, key: Hashable, uid: str) -> None:
        entry = self._by_key.setdefault(key, _Expected())
        entry.deletes.add(uid)
        entry.since = self.clock()

    def creation_observed(self, key: Hashable) -> None:
        entry = self._by_key.get(key)
        if entry is not None and entry.adds > 0:
            entry.adds -= 1

    def creation_failed(self, key: Hashable) -> None:
        """A create did not happen after all: stop waiting for it."""
        self.creation_observed(key)

    def deletion_observed(self, key: Hashable, uid: str) -> None:
        entry = self._by_key.get(key)
        if entry is not None:
            entry.deletes.discard(uid)

    def satisfied(self, key: Hashable) -> bool:
        entry = self._by_key.get(key)
        if entry is None:
            return True
        if (entry.adds <= 0 and not entry.deletes) or self.clock() - entry.since > self.TIMEOUT:
            del self._by_key[key]
            return True
        return False

    def forget(self, key: Hashable) -> None:
        self._by_key.pop(key, None)


class OwnedPodEvents:
    """A controller's pod event handlers: a pod whose controller reference names `kind` wakes its
    owner's key (namespace, name), and its creation or deletion is noted in `expectations`.
    Shared by the DaemonSet and StatefulSet controllers."""

    def __init__(self, kind: str, wake: Callable[[tuple[str, str]], None], expectations: Expectations):
        self.kind, self.wake, self.expectations = kind, wake, expectations

    def owner_key(self, obj: Obj) -> tuple[str, str] | None:
        ref = controller_of(obj)
        if ref is None or ref.get("kind") != self.kind:
            return None
        return (obj.get("metadata") or {}).get("namespace", ""), ref.get("name", "")

    def added(self, pod: Obj) -> None:
        if (key := self.owner_key(pod)) is not None:
            self.expectations.creation_observed(key)
            self.wake(key)

    def updated(self, old: Obj, new: Obj) -> None:
        if (key := self.owner_key(new)) is not None:
            if is_terminating(new):
                self.expectations.deletion_observed(key, new["metadata"].get("uid", ""))
            self.wake(key)

    def deleted(self, pod: Obj) -> None:
        if (key := self.owner_key(pod)) is not None:
            self.expectations.deletion_observed(key, pod["metadata"].get("uid", ""))
            self.wake(key)

    def register(self, informer: Any) -> None:
        informer.add_handlers(on_add=self.added, on_update=self.updated, on_delete=self.deleted)
