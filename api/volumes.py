"""Pod volumes: named storage a pod's containers mount (see VolumeMount in api/container.py).

Each `Volume` has a name and exactly one source: an empty scratch directory
(`emptyDir`), a directory of the node (`hostPath`), the keys of a ConfigMap or
Secret as files, pod facts as files (`downwardAPI`), or the PersistentVolume bound
to a claim (`persistentVolumeClaim`, api/storage.py). As in Kubernetes, a
volume that names no source becomes an emptyDir. The agent's volumes.py makes
them real.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from api.base import ApiModel
from api.downward import (VOLUME_FIELD_PATHS, ObjectFieldSelector, ResourceFieldSelector, check_field_ref,
                          check_resource_field_ref)
from api.errors import FieldError, duplicate, invalid, required
from api.fieldtypes import Quantity
from api.names import check_dns1123_label, check_dns1123_subdomain

DEFAULT_MODE = 0o644  # 420, as Kubernetes writes it in JSON


class KeyToPath(ApiModel):
    """Puts one key of a ConfigMap or Secret at a relative path in the volume."""

    key: str = Field(description="The key to project.")
    path: str = Field(description="Relative path of the file to write the key to; may not contain '..'.")
    mode: Optional[int] = Field(None, description="File mode bits (0-0777); defaults to the volume's defaultMode.")


class EmptyDirVolumeSource(ApiModel):
    """A directory that starts empty and lives as long as the pod."""

    medium: Optional[Literal["", "Memory"]] = Field(None, description='Storage medium: "" (node disk) or '
                                                                      '"Memory" (tmpfs).')
    size_limit: Optional[Quantity] = Field(None, description="Largest amount of storage the volume may use.")


class HostPathVolumeSource(ApiModel):
    """A file or directory of the node, mounted into the pod."""

    path: str = Field(description="Path on the node; a symlink is followed.")
    type: Optional[Literal["", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket",
                           "CharDevice", "BlockDevice"]] = Field(None, description='What must exist at path; '
                                                                 '"" checks nothing.')


class ConfigMapVolumeSource(ApiModel):
    """The keys of a ConfigMap as files."""

    name: str = Field(description="Name of the ConfigMap in the pod's namespace.")
    items: Optional[list[KeyToPath]] = Field(None, description="Keys to project; all keys when empty.")
    default_mode: int = Field(DEFAULT_MODE, description="Mode bits of the files (0-0777), default 0644.")
    optional: Optional[bool] = Field(None, description="Whether the ConfigMap or its keys may be missing.")


# The types below mirror Kubernetes' own, one per kind: their field declarations look like other
# kinds' (the `duplicates` tool pairs them by shape), but each is a separate API type; no logic to share.
class SecretVolumeSource(ApiModel):
    """The keys of a Secret as files."""

    secret_name: str = Field(description="Name of the Secret in the pod's namespace.")
    items: Optional[list[KeyToPath]] = Field(None, description="Keys to project; all keys when empty.")
    default_mode: int = Field(DEFAULT_MODE, description="Mode bits of the files (0-0777), default 0644.")
    optional: Optional[bool] = Field(None, description="Whether the Secret or its keys may be missing.")


class PersistentVolumeClaimVolumeSource(ApiModel):
    """The volume bound to a PersistentVolumeClaim of the pod's namespace (api/storage.py)."""

    claim_name: str = Field(description="Name of the PersistentVolumeClaim.")
    read_only: Optional[bool] = Field(None, description="Mount read-only.")


class DownwardAPIVolumeFile(ApiModel):
    """One file holding a pod field or a container resource value."""

    path: str = Field(description="Relative path of the file; may not contain '..'.")
    field_ref: Optional[ObjectFieldSelector] = Field(None, description="Pod field to write, e.g. metadata.labels.")
    resource_field_ref: Optional[ResourceFieldSelector] = Field(None, description="Container resource to write.")
    mode: Optional[int] = Field(None, description="File mode bits (0-0777); defaults to the volume's defaultMode.")


class DownwardAPIVolumeSource(ApiModel):
    """Pod facts as files."""

    items: Optional[list[DownwardAPIVolumeFile]] = Field(None, description="Files to write.")
    default_mode: int = Field(DEFAULT_MODE, description="Mode bits of the files (0-0777), default 0644.")


_SOURCES = (("emptyDir", "empty_dir"), ("hostPath", "host_path"), ("configMap", "config_map"),
            ("secret", "secret"), ("downwardAPI", "downward_api"),
            ("persistentVolumeClaim", "persistent_volume_claim"))


class Volume(ApiModel):
    """A named volume that containers of the pod can mount. Exactly one source."""

    name: str = Field(description="Volume name, a DNS-1123 label unique in the pod.")
    empty_dir: Optional[EmptyDirVolumeSource] = Field(None, description="A scratch directory for the pod's lifetime.")
    host_path: Optional[HostPathVolumeSource] = Field(None, description="A file or directory of the node.")
    config_map: Optional[ConfigMapVolumeSource] = Field(None, description="The keys of a ConfigMap as files.")
    secret: Optional[SecretVolumeSource] = Field(None, description="The keys of a Secret as files.")
    downward_api: Optional[DownwardAPIVolumeSource] = Field(None, alias="downwardAPI",
                                                            description="Pod fields as files.")
    persistent_volume_claim: Optional[PersistentVolumeClaimVolumeSource] = Field(
        None, description="The PersistentVolume bound to a claim.")

    @model_validator(mode="after")
    def _default_source(self) -> "Volume":
        if all(getattr(self, attr) is None for _, attr in _SOURCES):
            self.empty_dir = EmptyDirVolumeSource()
        return self

    def source(self) -> tuple[str, ApiModel]:
        """The volume's one source, as (JSON name, object)."""
        for name, attr in _SOURCES:
            value = getattr(self, attr)
            if value is not None:
                return name, value
        raise ValueError(f"volume {self.name!r} has no source")


def _check_mode(mode: int | None, path: str) -> list[FieldError]:
    if mode is not None and not 0 <= mode <= 0o777:
        return [invalid(path, mode, "must be a number between 0 and 0777 (octal), both inclusive")]
    return []


def _check_relative_path(path_value: str, path: str) -> list[FieldError]:
    if not path_value:
        return [required(path)]
    if path_value.startswith("/"):
        return [invalid(path, path_value, "must be a relative path")]
    if ".." in path_value.split("/"):
        return [invalid(path, path_value, "must not contain '..'")]
    return []


def _check_items(items: list[KeyToPath] | None, path: str) -> list[FieldError]:
    errors = []
    for i, item in enumerate(items or []):
        if not item.key:
            errors.append(required(f"{path}[{i}].key"))
        errors += _check_relative_path(item.path, f"{path}[{i}].path")
        errors += _check_mode(item.mode, f"{path}[{i}].mode")
    return errors


def check_volume(volume: Volume, path: str) -> list[FieldError]:
    errors = []
    if msg := check_dns1123_label(volume.name):
        errors.append(invalid(f"{path}.name", volume.name, msg))
    present = [name for name, attr in _SOURCES if getattr(volume, attr) is not None]
    if len(present) > 1:
        errors.append(FieldError(f"{path}.{present[1]}", "Forbidden: may not specify more than 1 volume type"))
        return errors
    if volume.host_path is not None:
        if not volume.host_path.path:
            errors.append(required(f"{path}.hostPath.path"))
    elif volume.config_map is not None:
        if msg := check_dns1123_subdomain(volume.config_map.name):
            errors.append(invalid(f"{path}.configMap.name", volume.config_map.name, msg))
        errors += _check_items(volume.config_map.items, f"{path}.configMap.items")
        errors += _check_mode(volume.config_map.default_mode, f"{path}.configMap.defaultMode")
    elif volume.secret is not None:
        if msg := check_dns1123_subdomain(volume.secret.secret_name):
            errors.append(invalid(f"{path}.secret.secretName", volume.secret.secret_name, msg))
        errors += _check_items(volume.secret.items, f"{path}.secret.items")
        errors += _check_mode(volume.secret.default_mode, f"{path}.secret.defaultMode")
    elif volume.downward_api is not None:
        errors += _check_downward_api(volume.downward_api, f"{path}.downwardAPI")
    elif volume.persistent_volume_claim is not None:
        claim = volume.persistent_volume_claim.claim_name
        if msg := check_dns1123_subdomain(claim):
            errors.append(invalid(f"{path}.persistentVolumeClaim.claimName", claim, msg))
    return errors


def _check_downward_api(source: DownwardAPIVolumeSource, path: str) -> list[FieldError]:
    errors = _check_mode(source.default_mode, f"{path}.defaultMode")
    for i, item in enumerate(source.items or []):
        item_path = f"{path}.items[{i}]"
        errors += _check_relative_path(item.path, f"{item_path}.path")
        errors += _check_mode(item.mode, f"{item_path}.mode")
        if (item.field_ref is None) == (item.resource_field_ref is None):
            errors.append(invalid(item_path, item.path, "exactly one of fieldRef and resourceFieldRef "
                                                        "must be specified"))
        elif item.field_ref is not None:
            errors += check_field_ref(item.field_ref, f"{item_path}.fieldRef", allowed=VOLUME_FIELD_PATHS)
        elif item.resource_field_ref is not None:
            errors += check_resource_field_ref(item.resource_field_ref, f"{item_path}.resourceFieldRef",
                                               need_container=True)
    return errors


def check_volumes(volumes: list[Volume] | None, path: str) -> tuple[list[FieldError], set[str]]:
    """Check each volume and that names are unique; also return the set of names."""
    errors, names = [], set()
    for i, volume in enumerate(volumes or []):
        errors += check_volume(volume, f"{path}[{i}]")
        if volume.name in names:
            errors.append(duplicate(f"{path}[{i}].name", volume.name))
        names.add(volume.name)
    return errors, names
