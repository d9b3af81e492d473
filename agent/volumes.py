"""A pod's volumes made real on the node, and the bind mounts that put them into containers.

`VolumeManager.setup` runs on every sync of a pod (agent pod worker) and is
idempotent. Each volume of the pod (api/volumes.py) becomes a host path:

    <root>/<pod-uid>/volumes/kubernetes.io~empty-dir/<name>     emptyDir (tmpfs for medium: Memory)
    <root>/<pod-uid>/volumes/kubernetes.io~configmap/<name>     the ConfigMap's keys as files
    <root>/<pod-uid>/volumes/kubernetes.io~secret/<name>        the Secret's keys, on a tmpfs
    <root>/<pod-uid>/volumes/kubernetes.io~downward-api/<name>  pod fields as files
    hostPath                                                    the node's own path, after its type check
    persistentVolumeClaim                                       its PersistentVolume's path (agent/localpath.py),
                                                                then as a hostPath of the volume's type

(the directory names are kubelet's). ConfigMap, Secret and downwardAPI content
is (re)written with agent/atomic_writer.py whenever it changed, so running
containers see an update all at once. Lookups of ConfigMaps and Secrets happen
on the event loop; all file work runs in a thread.

`mounts_for` turns a container's volumeMounts into runtime `Mount`s
(agent/runtime/specs.py): subPath resolved and kept inside its volume,
ConfigMap/Secret/downwardAPI mounts always read-only, as in Kubernetes.

`teardown` unmounts the tmpfs mounts it finds in the kernel's mount table
(agent/tmpfs.py) and deletes the pod's volume directories; it needs nothing but
the directory on disk, so it works after an agent restart. `list_pod_dirs`
finds pods whose directories are still there.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from api.quantity import QuantityError, memory_bytes

from agent.atomic_writer import AtomicWriter, FileProjection
from agent.containerspec import pod_memory_limit
from agent.downward import DownwardError, field_value, find_container, resource_value
from agent.runtime.specs import Mount
from agent.tmpfs import is_mount_point, mount_tmpfs, mounts_under, unmount
from agent.localpath import Getter, claim_volume
from controlplane.client import ApiError

log = logging.getLogger(__name__)

ObjectGetter = Callable[[str], dict[str, Any] | None]

EMPTY_DIR = "kubernetes.io~empty-dir"
CONFIG_MAP = "kubernetes.io~configmap"
SECRET = "kubernetes.io~secret"
DOWNWARD_API = "kubernetes.io~downward-api"
SERVICE_ACCOUNT = "kubernetes.io~serviceaccount"   # the token mount (agent/serviceaccount.py)
_DIR_OF = {"emptyDir": EMPTY_DIR, "configMap": CONFIG_MAP, "secret": SECRET, "downwardAPI": DOWNWARD_API}
# Kubernetes mounts these read-only whatever the volumeMount says.
_READ_ONLY_TYPES = (CONFIG_MAP, SECRET, DOWNWARD_API, SERVICE_ACCOUNT)
DEFAULT_MODE = 0o644


class VolumeError(Exception):
    """A volume could not be set up or mounted; the message is fit for a FailedMount event."""

    reason = "FailedMount"


@dataclass
class _Plan:
    """What one volume needs, decided on the event loop; carried out in a thread."""

    name: str
    kind: str                                   # emptyDir | hostPath | configMap | secret | downwardAPI
    path: Path
    tmpfs: bool = False
    size_bytes: int | None = None
    host_type: str = ""
    payload: dict[str, FileProjection] = field(default_factory=dict)
    fs_group: int | None = None


def _setup_failed(volume: str, message: str) -> VolumeError:
    return VolumeError(f'MountVolume.SetUp failed for volume "{volume}" : {message}')


# ---- payloads: what a ConfigMap / Secret / downwardAPI volume holds ----

def _key_payload(data: dict[str, bytes], source: dict[str, Any], *, what: str,
                 fs_group: int | None) -> dict[str, FileProjection]:
    """Files for the keys of a ConfigMap or Secret: all keys, or `items` (key -> path, mode)."""
    default_mode = source.get("defaultMode", DEFAULT_MODE)

    def projection(value: bytes, mode: int) -> FileProjection:
        return FileProjection(value, mode | 0o440 if fs_group is not None else mode, fs_group)

    if not source.get("items"):
        return {key: projection(value, default_mode) for key, value in data.items()}
    payload = {}
    for item in source["items"]:
        if item["key"] not in data:
            if source.get("optional"):
                continue
            raise ValueError(f"{what} references non-existent {'config' if what == 'configmap' else 'secret'} "
                             f"key: {item['key']}")
        mode = item["mode"] if item.get("mode") is not None else default_mode
        payload[item["path"]] = projection(data[item["key"]], mode)
    return payload


def _b64(values: dict[str, str], what: str) -> dict[str, bytes]:
    try:
        return {key: base64.b64decode(value, validate=True) for key, value in values.items()}
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} holds data that is not valid base64") from None


def _downward_payload(pod: dict[str, Any], source: dict[str, Any], *, node: dict[str, Any] | None,
                      fs_group: int | None) -> dict[str, FileProjection]:
    default_mode = source.get("defaultMode", DEFAULT_MODE)
    payload = {}
    for item in source.get("items") or []:
        if item.get("fieldRef") is not None:
            text = field_value(pod, item["fieldRef"]["fieldPath"], node=node)
        else:
            ref = item["resourceFieldRef"]
            container = find_container(pod, ref.get("containerName") or "")
            if container is None:
                raise ValueError(f"resourceFieldRef: container {ref.get('containerName')!r} not found in pod")
            text = resource_value(container, ref["resource"], divisor=ref.get("divisor"), node=node)
        mode = item["mode"] if item.get("mode") is not None else default_mode
        payload[os.path.normpath(item["path"])] = FileProjection(
            text.encode(), mode | 0o440 if fs_group is not None else mode, fs_group)
    return payload


# ---- hostPath ----

def check_host_path(path: str, host_type: str) -> None:
    """Kubernetes' hostPath type check (and the creation *OrCreate asks for); raises ValueError."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    if host_type == "DirectoryOrCreate" and mode is None:
        os.makedirs(path, mode=0o755, exist_ok=True)
        return
    if host_type == "FileOrCreate" and mode is None:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))  # the parent must exist
        return
    wanted = {"DirectoryOrCreate": (stat.S_ISDIR, "a directory"), "Directory": (stat.S_ISDIR, "a directory"),
              "FileOrCreate": (stat.S_ISREG, "a file"), "File": (stat.S_ISREG, "a file"),
              "Socket": (stat.S_ISSOCK, "a socket file"), "CharDevice": (stat.S_ISCHR, "a character device"),
              "BlockDevice": (stat.S_ISBLK, "a block device")}
    if not host_type:
        return
    if host_type not in wanted:
        raise ValueError(f"{host_type} is an invalid volume type")
    test, noun = wanted[host_type]
    if mode is None or not test(mode):
        raise ValueError(f"hostPath type check failed: {path} is not {noun}")


# ---- the manager ----

class VolumeManager:
    def __init__(self, root: Path, *, use_tmpfs: bool | None = None, claims: Getter | None = None) -> None:
        """`root` holds one directory per pod. `use_tmpfs` (default: when running as root) mounts
        tmpfs for memory-backed volumes and secrets; without it they are plain directories.
        `claims` reads PersistentVolumeClaims and PersistentVolumes (None: such volumes fail)."""
        self.root = Path(root)
        self.use_tmpfs = os.geteuid() == 0 if use_tmpfs is None else use_tmpfs
        self.claims = claims
        self._claim_paths: dict[tuple[str, str], tuple[str, str]] = {}   # (pod uid, volume) -> (path, type)

    async def _claim_volumes(self, pod: dict[str, Any]) -> list[dict[str, Any]]:
        """The pod's volumes with each persistentVolumeClaim replaced by the hostPath of its volume
        (resolved once per pod: a bound claim keeps its volume)."""
        uid, namespace = (pod.get("metadata") or {}).get("uid", ""), (pod.get("metadata") or {}).get("namespace", "")
        out = []
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            claim = volume.get("persistentVolumeClaim")
            if claim is None:
                out.append(volume)
                continue
            key = (uid, volume["name"])
            if key not in self._claim_paths:
                if self.claims is None:
                    raise ValueError("this node cannot read PersistentVolumeClaims")
                self._claim_paths[key] = await claim_volume(namespace, claim["claimName"], self.claims)
            path, host_type = self._claim_paths[key]
            out.append({"name": volume["name"], "hostPath": {"path": path, "type": host_type}})
        return out

    def volumes_dir(self, pod_uid: str) -> Path:
        if not pod_uid or "/" in pod_uid or pod_uid in (".", ".."):
            raise ValueError(f"pod uid {pod_uid!r}: not usable as a directory name")
        return self.root / pod_uid / "volumes"

    # -- setup --

    async def setup(self, pod: dict[str, Any], *, get_configmap: ObjectGetter, get_secret: ObjectGetter,
                    node: dict[str, Any] | None = None) -> dict[str, Path]:
        """Make every volume of the pod exist and be current; return volume name -> host path.

        Raises VolumeError naming the failed volume(s); the others are still set up."""
        uid = (pod.get("metadata") or {}).get("uid", "")
        volumes_dir = self.volumes_dir(uid)
        plans, errors = [], []
        volumes = (pod.get("spec") or {}).get("volumes") or []
        if any(v.get("persistentVolumeClaim") is not None for v in volumes):
            try:
                volumes = await self._claim_volumes(pod)
            except ApiError as e:
                raise VolumeError(f"MountVolume.SetUp failed: cannot read the pod's claims: {e.message}") from None
            except ValueError as e:
                raise VolumeError(f"Unable to attach or mount volumes: {e}") from None
        for volume in volumes:
            try:
                plans.append(self._plan(pod, volume, volumes_dir, get_configmap=get_configmap,
                                        get_secret=get_secret, node=node))
            except (ValueError, DownwardError) as e:
                errors.append(_setup_failed(volume["name"], str(e)))
        paths, apply_errors = await asyncio.to_thread(self._apply, plans)
        errors += apply_errors
        if errors:
            raise VolumeError("; ".join(str(e) for e in errors))
        return paths

    async def setup_files(self, pod: dict[str, Any], name: str, files: dict[str, bytes]) -> Path:
        """A read-only volume of the agent's own making (the ServiceAccount token mount): `files`
        written atomically on a tmpfs, as a Secret volume's keys are. Its host path."""
        uid = (pod.get("metadata") or {}).get("uid", "")
        fs_group = ((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup")
        plan = _Plan(name, "secret", self.volumes_dir(uid) / SERVICE_ACCOUNT / name, tmpfs=True, fs_group=fs_group,
                     payload=_key_payload(files, {}, what="secret", fs_group=fs_group))
        paths, errors = await asyncio.to_thread(self._apply, [plan])
        if errors:
            raise errors[0]
        return paths[name]

    def _plan(self, pod: dict[str, Any], volume: dict[str, Any], volumes_dir: Path, *,
              get_configmap: ObjectGetter, get_secret: ObjectGetter, node: dict[str, Any] | None) -> _Plan:
        name = volume["name"]
        fs_group = ((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup")
        if volume.get("hostPath") is not None:
            source = volume["hostPath"]
            return _Plan(name, "hostPath", Path(source["path"]), host_type=source.get("type") or "")
        kind = next((k for k in ("configMap", "secret", "downwardAPI") if volume.get(k) is not None), "emptyDir")
        plan = _Plan(name, kind, volumes_dir / _DIR_OF[kind] / name, fs_group=fs_group)
        if kind == "emptyDir":
            source = volume.get("emptyDir") or {}
            plan.tmpfs = source.get("medium") == "Memory"
            if source.get("sizeLimit"):
                try:
                    plan.size_bytes = memory_bytes(source["sizeLimit"])
                except QuantityError as e:
                    raise ValueError(f"emptyDir.sizeLimit: {e}") from None
            if plan.tmpfs:
                # A memory-backed emptyDir is memory: its pages are charged to the memory cgroup
                # of the container writing them, and the tmpfs is no bigger than the pod's memory
                # limit (kubelet's SizeMemoryBackedVolumes) or its sizeLimit, whichever is smaller.
                pod_limit = pod_memory_limit(pod)
                if pod_limit is not None:
                    plan.size_bytes = min(plan.size_bytes or pod_limit, pod_limit)
        elif kind == "configMap":
            source = volume["configMap"]
            configmap = get_configmap(source["name"])
            if configmap is None and not source.get("optional"):
                raise ValueError(f'configmap "{source["name"]}" not found')
            data = {k: v.encode() for k, v in ((configmap or {}).get("data") or {}).items()}
            data.update(_b64((configmap or {}).get("binaryData") or {}, f'configmap "{source["name"]}"'))
            plan.payload = _key_payload(data, source, what="configmap", fs_group=fs_group)
        elif kind == "secret":
            source = volume["secret"]
            secret = get_secret(source["secretName"])
            if secret is None and not source.get("optional"):
                raise ValueError(f'secret "{source["secretName"]}" not found')
            data = _b64((secret or {}).get("data") or {}, f'secret "{source["secretName"]}"')
            plan.payload = _key_payload(data, source, what="secret", fs_group=fs_group)
            plan.tmpfs = True
        else:
            plan.payload = _downward_payload(pod, volume["downwardAPI"], node=node, fs_group=fs_group)
        return plan

    def _apply(self, plans: list[_Plan]) -> tuple[dict[str, Path], list[VolumeError]]:
        """The file work of setup (runs in a thread)."""
        paths, errors = {}, []
        for plan in plans:
            try:
                if plan.kind == "hostPath":
                    check_host_path(str(plan.path), plan.host_type)
                else:
                    self._make_dir(plan)
                    if plan.kind != "emptyDir":
                        AtomicWriter(plan.path).write(plan.payload)
                paths[plan.name] = plan.path
            except OSError as e:
                message = f"{e.filename}: {e.strerror}" if e.filename else (e.strerror or str(e))
                errors.append(_setup_failed(plan.name, message))
            except ValueError as e:
                errors.append(_setup_failed(plan.name, str(e)))
        return paths, errors

    def _make_dir(self, plan: _Plan) -> None:
        """The volume's directory, a tmpfs mount point if it should be one."""
        created = not plan.path.is_dir()
        # emptyDir is world-writable (0777) in Kubernetes; projected volumes are 0755.
        mode = 0o777 if plan.kind == "emptyDir" else 0o755
        plan.path.mkdir(parents=True, exist_ok=True)
        if plan.tmpfs and not self.use_tmpfs:
            if created:
                log.warning("volume %s at %s: not on a tmpfs (needs root); using a plain directory",
                            plan.name, plan.path)
        elif plan.tmpfs and not is_mount_point(plan.path):
            mount_tmpfs(plan.path, size_bytes=plan.size_bytes, mode=mode)
            created = True
        if created:
            os.chmod(plan.path, mode)
            if plan.fs_group is not None and plan.kind == "emptyDir":
                os.chown(plan.path, -1, plan.fs_group)
                os.chmod(plan.path, mode | stat.S_ISGID)

    # -- container mounts --

    def mounts_for(self, container: dict[str, Any], volume_paths: dict[str, Path]) -> list[Mount]:
        """The bind mounts for a container's volumeMounts. Raises VolumeError for a bad subPath."""
        mounts = []
        for i, volume_mount in enumerate(container.get("volumeMounts") or []):
            name = volume_mount["name"]
            if name not in volume_paths:
                raise VolumeError(f'volumeMounts[{i}]: volume "{name}" is not set up')
            source = volume_paths[name]
            read_only = bool(volume_mount.get("readOnly")) or self._always_read_only(source)
            if volume_mount.get("subPath"):
                where = f"volumeMounts[{i}].subPath"
                try:
                    source = self._sub_path(source, volume_mount["subPath"], where=where)
                except OSError as e:
                    raise VolumeError(f"{where} {volume_mount['subPath']!r}: {e.strerror or e}") from None
            mounts.append(Mount(source=source, destination=volume_mount["mountPath"], readonly=read_only))
        return mounts

    def _always_read_only(self, path: Path) -> bool:
        return path.parent.name in _READ_ONLY_TYPES and path.parent.parent.name == "volumes" and \
            path.parent.parent.parent.parent == self.root

    @staticmethod
    def _sub_path(volume: Path, sub_path: str, *, where: str) -> Path:
        """`volume/sub_path`, resolved, made (as directories) when missing, never outside `volume`."""
        parts = sub_path.split("/")
        if sub_path.startswith("/") or ".." in parts:
            raise VolumeError(f"{where} {sub_path!r}: must be a relative path without '..'")
        base = Path(os.path.realpath(volume))
        current = base
        for part in (p for p in parts if p not in ("", ".")):
            current = Path(os.path.realpath(current / part))
            if current != base and base not in current.parents:
                raise VolumeError(f"{where} {sub_path!r}: resolves to {current}, outside the volume {base}")
            if not os.path.lexists(current):
                current.mkdir(mode=stat.S_IMODE(base.stat().st_mode))
        return current

    # -- teardown --

    async def teardown(self, pod_uid: str) -> None:
        """Unmount and delete the pod's volume directories (hostPath content is never touched)."""
        self._claim_paths = {k: v for k, v in self._claim_paths.items() if k[0] != pod_uid}
        await asyncio.to_thread(self._teardown, pod_uid)

    def _teardown(self, pod_uid: str) -> None:
        volumes_dir = self.volumes_dir(pod_uid)
        if volumes_dir.is_dir():
            for mount_point in mounts_under(volumes_dir):
                unmount(mount_point)
            left = mounts_under(volumes_dir)
            if left:   # deleting now would delete what is mounted there
                raise VolumeError(f"pod {pod_uid}: volumes still mounted after unmount: {', '.join(left)}")
            # rmtree removes symlinks without following them (configMap links, subPath dirs).
            shutil.rmtree(volumes_dir)
        try:
            (self.root / pod_uid).rmdir()
        except (FileNotFoundError, OSError):
            pass   # gone already, or holds more than volumes

    def list_pod_dirs(self) -> list[str]:
        """UIDs of pods with a directory under root (for cleaning up pods deleted while we were down)."""
        try:
            return sorted(entry.name for entry in os.scandir(self.root) if entry.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            return []
