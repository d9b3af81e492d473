"""Update rules of StatefulSets and PersistentVolumeClaims (Kubernetes' ValidateStatefulSetUpdate
and ValidatePersistentVolumeClaimUpdate).

- A StatefulSet's `spec.selector` never changes (its pods would be orphaned); of the
  rest of its spec only replicas, template, updateStrategy, minReadySeconds,
  revisionHistoryLimit and persistentVolumeClaimRetentionPolicy may.
- A PersistentVolumeClaim's spec is fixed once made, except what the binder fills in
  (volumeName and storageClassName, when they were unset) and a growing
  `resources.requests.storage`; shrinking is refused.

The generic handlers call `validate_update` on every update and apply (strategy.py).
"""

from __future__ import annotations

from typing import Any

from api.errors import FieldError, ValidationFailed, forbidden, invalid
from api.volumebinding import storage_size
from controlplane.apiserver.strategy import Strategy

STATEFULSET_MUTABLE = ("replicas", "template", "updateStrategy", "minReadySeconds", "revisionHistoryLimit",
                       "persistentVolumeClaimRetentionPolicy", "ordinals")


def _meta_name(obj: dict[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("name") or ""


class StatefulSetStrategy(Strategy):
    def validate_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        old_spec, spec = old.get("spec") or {}, new.get("spec") or {}
        errors: list[FieldError] = []
        if spec.get("selector") != old_spec.get("selector"):
            errors.append(invalid("spec.selector", spec.get("selector"), "field is immutable"))
        rest_old = {k: v for k, v in old_spec.items() if k not in STATEFULSET_MUTABLE + ("selector",)}
        rest_new = {k: v for k, v in spec.items() if k not in STATEFULSET_MUTABLE + ("selector",)}
        if rest_old != rest_new:
            errors.append(forbidden("spec", "updates to statefulset spec for fields other than 'replicas', "
                                            "'ordinals', 'template', 'updateStrategy', "
                                            "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are "
                                            "forbidden"))
        if errors:
            raise ValidationFailed(errors, kind="StatefulSet", name=_meta_name(new))


class PersistentVolumeClaimStrategy(Strategy):
    def validate_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        old_spec, spec = dict(old.get("spec") or {}), dict(new.get("spec") or {})
        errors: list[FieldError] = []
        for key in ("volumeName", "storageClassName"):    # filled in once by the binder
            if old_spec.get(key) is None and spec.get(key) is not None:
                old_spec[key] = spec[key]
        old_size = storage_size((old_spec.get("resources") or {}).get("requests"))
        new_size = storage_size((spec.get("resources") or {}).get("requests"))
        if new_size < old_size:
            errors.append(forbidden("spec.resources.requests.storage", "field can not be less than previous value"))
        bound = bool(old_spec.get("volumeName"))
        for s in (old_spec, spec):
            s.pop("resources", None)
        if old_spec != spec:
            errors.append(forbidden("spec", "spec is immutable after creation except resources.requests "
                                            "for bound claims"))
        elif not bound and new_size != old_size:
            errors.append(forbidden("spec.resources.requests.storage", "may only be changed once the claim is "
                                                                       "bound"))
        if errors:
            raise ValidationFailed(errors, kind="PersistentVolumeClaim", name=_meta_name(new))
