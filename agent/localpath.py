"""PersistentVolumes on the node: a pod's `persistentVolumeClaim` volumes, and the local-path sweep.

A claim's volume (api/storage.py) is a directory of the node: `spec.hostPath.path` or
`spec.local.path` of the PersistentVolume the claim is bound to. `claim_volume` resolves
claim → volume → host path for agent/volumes.py, which then treats it as a hostPath
(with the volume's type: the built-in local-path provisioner writes `DirectoryOrCreate`,
so the directory is made on the node when the first pod mounts it).

The provisioner (controlplane/controllers/persistentvolume.py) puts each volume it makes
at `<root>/pvc-<uid>_<namespace>_<claim>` (k3s' layout), `<root>` being what this node
announces in its `skiff.io/local-path-root` annotation (agent/node.py; the agent's
`<state-dir>/local-path`). With `reclaimPolicy: Delete` the controller deletes the
PersistentVolume once its claim is gone; `LocalPathSweeper` then removes the directory:
every `interval` it asks the API server for the volume of each directory under the root,
and removes those whose volume no longer exists. Only names of that shape directly under
the root are ever touched.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
from pathlib import Path
from typing import Any, Awaitable, Callable

from controlplane.client import ApiError, NotFound

log = logging.getLogger(__name__)
ROOT_ANNOTATION = "skiff.io/local-path-root"
_DIR_NAME = re.compile(r"(pvc-[0-9a-f-]{36})_[a-z0-9-]+_[a-z0-9.-]+")

Getter = Callable[[str, str, str], Awaitable[dict[str, Any] | None]]   # (plural, namespace, name)


def volume_dir_name(volume_name: str, namespace: str, claim: str) -> str:
    return f"{volume_name}_{namespace}_{claim}"


async def claim_volume(namespace: str, claim_name: str, get: Getter, *,
                       wait_seconds: float = 5.0) -> tuple[str, str]:
    """(host path, hostPath type) of the volume bound to a claim; ValueError says why not.

    A WaitForFirstConsumer claim is bound moments after its pod is scheduled, often just after
    the agent first sees the pod: an unbound claim is looked at again for up to `wait_seconds`
    (only this pod's worker waits) before the pod's sync gives up until its next round."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    while True:
        claim = await get("persistentvolumeclaims", namespace, claim_name)
        if claim is None:
            raise ValueError(f'persistentvolumeclaim "{claim_name}" not found')
        volume_name = (claim.get("spec") or {}).get("volumeName")
        if volume_name and (claim.get("status") or {}).get("phase") == "Bound":
            break
        if loop.time() >= deadline:
            raise ValueError(f'persistentvolumeclaim "{claim_name}" is not bound')
        await asyncio.sleep(0.25)
    volume = await get("persistentvolumes", "", volume_name)
    if volume is None:
        raise ValueError(f'persistentvolume "{volume_name}" of claim "{claim_name}" not found')
    spec = volume.get("spec") or {}
    if spec.get("hostPath"):
        return spec["hostPath"]["path"], spec["hostPath"].get("type") or ""
    if spec.get("local"):
        return spec["local"]["path"], "Directory"
    raise ValueError(f'persistentvolume "{volume_name}" has no volume source this node can mount')


class LocalPathSweeper:
    """Removes local-path directories whose PersistentVolume is gone."""

    def __init__(self, root: Path, get: Getter, *, interval: float = 10.0):
        self.root, self.get, self.interval = Path(root), get, interval

    async def sweep(self) -> list[str]:
        """One pass; the directories removed."""
        removed = []
        try:
            entries = await asyncio.to_thread(lambda: sorted(p.name for p in self.root.iterdir() if p.is_dir()))
        except FileNotFoundError:
            return removed
        for name in entries:
            match = _DIR_NAME.fullmatch(name)
            if match is None:
                continue
            try:
                if await self.get("persistentvolumes", "", match.group(1)) is not None:
                    continue
            except ApiError as exc:
                log.warning("local-path: cannot tell whether volume %s still exists: %s", match.group(1), exc)
                continue
            await asyncio.to_thread(shutil.rmtree, self.root / name, True)
            log.info("local-path: removed %s (its PersistentVolume was deleted)", self.root / name)
            removed.append(name)
        return removed

    async def run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:   # noqa: BLE001 - a sweep must not end the loop
                log.exception("local-path sweep failed")
            await asyncio.sleep(self.interval)


def getter(client: Any) -> Getter:
    """A Getter on a Client: the object, or None when it does not exist."""
    async def get(plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await client.get(plural, name, namespace)
        except NotFound:
            return None
    return get
