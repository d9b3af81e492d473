"""What differs per kind when the API server creates, updates or deletes objects.

Kubernetes calls these "strategies". The generic handlers call the hooks of
the kind's strategy; a kind without special needs uses `Strategy` as is. A
strategy may also claim keys outside the object in the object's own write
(`reserve`, `release`: a Service's cluster IP and node ports,
service_strategy.py); the handlers run whatever `Reservation` it returns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from api.errors import FieldError, ValidationFailed
from controlplane.storage.store import Claims

if TYPE_CHECKING:
    from controlplane.apiserver.service_alloc import ServiceNetwork
    from controlplane.storage import Store


class Reservation:
    """Keys one write claims and releases (`claims`), and what to do with the outcome."""

    def __init__(self, claims: Claims):
        self.claims = claims

    def lost(self, taken: dict[bytes, bytes]) -> None:
        """Some claimed keys were held (`taken`: key -> holder). Raise ValidationFailed when that
        is the user's problem (a value they asked for); return to have the write tried again."""

    def finish(self, ok: bool) -> None:
        """The write succeeded (ok) or was given up."""


class Strategy:
    """What is particular to a kind in the generic verbs of handlers.py (Kubernetes' REST strategies)."""

    # Keep a status given on create (a registering node reports its status at once).
    keep_status_on_create = False
    # The watch cache indexes the kind by this field (agents list "my pods" by spec.nodeName).
    index_field: str | None = None
    # Stored under a lease, so it expires (Events: --event-ttl).
    expires = False
    # Deletion is graceful: the object stays, with deletionGracePeriodSeconds, until whoever runs it
    # confirms with a grace-0 delete (a pod's agent); finalizers alone do not complete it.
    confirmed_deletion = False

    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        if not self.keep_status_on_create:
            obj.pop("status", None)

    def prepare_for_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        """Carry into `new` what the server set and the update may leave out (before the
        comparison that makes an apply `unchanged`)."""

    def validate_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        """Raise ValidationFailed for changes the kind forbids."""

    async def reserve(self, new: dict[str, Any], old: dict[str, Any] | None
                      ) -> tuple[dict[str, Any], Reservation | None]:
        """The object to write (new, possibly with values filled in) and what its write claims;
        old is None on create. Called again, on the same `new`, when claims were lost."""
        return new, None

    def release(self, obj: dict[str, Any]) -> Reservation | None:
        """What deleting the stored object gives back."""
        return None

    def graceful_seconds(self, obj: dict[str, Any], requested: int | None) -> int:
        """Seconds to wait before the object disappears; 0 deletes at once."""
        return 0

    def pending_finalizers(self, obj: dict[str, Any]) -> list[str]:
        """What must be finished before a deleted object may go."""
        return list((obj.get("metadata") or {}).get("finalizers") or [])

    def mark_deleting(self, obj: dict[str, Any]) -> None:
        """Change the copy of a deleted object that is kept while it terminates (beyond deletionTimestamp)."""


class PodStrategy(Strategy):
    index_field = "spec.nodeName"
    confirmed_deletion = True

    # Fields of a pod's spec that may change after creation (as in Kubernetes).
    MUTABLE = ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds")

    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        obj["status"] = {"phase": "Pending"}
        qos = _qos_class(obj.get("spec") or {})
        if qos:
            obj["status"]["qosClass"] = qos

    def validate_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        old_spec, new_spec = dict(old.get("spec") or {}), dict(new.get("spec") or {})
        for key in self.MUTABLE:
            old_spec.pop(key, None)
            new_spec.pop(key, None)
        # Images may change in place; nodeName changes only through Bind.
        for field in ("containers", "initContainers"):
            for spec in (old_spec, new_spec):
                spec[field] = [{k: v for k, v in c.items() if k != "image"} for c in spec.get(field) or []]
        if old_spec.get("nodeName") and new_spec.get("nodeName") != old_spec.get("nodeName"):
            raise ValidationFailed(FieldError("spec.nodeName", "may not be changed once the pod is bound"))
        if not old_spec.get("nodeName"):
            new_spec.pop("nodeName", None)
            old_spec.pop("nodeName", None)
        if old_spec != new_spec:
            raise ValidationFailed(FieldError("spec", "Forbidden: pod updates may not change fields other than "
                                                      "`spec.containers[*].image`, `spec.initContainers[*].image`, "
                                                      "`spec.activeDeadlineSeconds`, `spec.tolerations` (only "
                                                      "additions to existing tolerations), "
                                                      "`spec.terminationGracePeriodSeconds`"))

    def graceful_seconds(self, obj: dict[str, Any], requested: int | None) -> int:
        spec = obj.get("spec") or {}
        phase = (obj.get("status") or {}).get("phase")
        # A pod no agent runs, or one that has finished, has nothing to shut down.
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            return 0
        if requested is not None:
            return max(0, requested)
        return int(spec.get("terminationGracePeriodSeconds", 30))


def _qos_class(spec: dict[str, Any]) -> str:
    containers = (spec.get("containers") or []) + (spec.get("initContainers") or [])
    requests_any = limits_any = False
    guaranteed = bool(containers)
    for c in containers:
        res = c.get("resources") or {}
        limits, requests = res.get("limits") or {}, res.get("requests") or {}
        requests_any |= bool(requests) or bool(limits)
        limits_any |= bool(limits)
        for r in ("cpu", "memory"):
            if r not in limits or str(requests.get(r, limits.get(r))) != str(limits[r]):
                guaranteed = False
    if guaranteed:
        return "Guaranteed"
    return "Burstable" if requests_any else "BestEffort"


class NodeStrategy(Strategy):
    keep_status_on_create = True


class NamespaceStrategy(Strategy):
    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        obj["status"] = {"phase": "Active"}
        obj.setdefault("spec", {})["finalizers"] = ["kubernetes"]

    def pending_finalizers(self, obj: dict[str, Any]) -> list[str]:
        """A namespace also waits for spec.finalizers ("kubernetes": its contents deleted)."""
        return super().pending_finalizers(obj) + list((obj.get("spec") or {}).get("finalizers") or [])

    def mark_deleting(self, obj: dict[str, Any]) -> None:
        obj["status"] = {**(obj.get("status") or {}), "phase": "Terminating"}


class EventStrategy(Strategy):
    keep_status_on_create = True
    expires = True


STRATEGIES: dict[str, Strategy] = {
    "Pod": PodStrategy(),
    "Node": NodeStrategy(),
    "Namespace": NamespaceStrategy(),
    "Event": EventStrategy(),
}
DEFAULT = Strategy()


def build_strategies(store: "Store", network: "ServiceNetwork") -> dict[str, Strategy]:
    """One API server's strategies: the stateless ones, and those holding its allocators."""
    from controlplane.apiserver.service_strategy import ServiceStrategy
    from controlplane.apiserver.stateful_strategy import PersistentVolumeClaimStrategy, StatefulSetStrategy
    return {**STRATEGIES, "Service": ServiceStrategy(store, network),
            "StatefulSet": StatefulSetStrategy(), "PersistentVolumeClaim": PersistentVolumeClaimStrategy()}
