"""agent/volumes.py and agent/atomic_writer.py in temporary directories (no mounts: use_tmpfs=False).

tmpfs mounts (emptyDir medium Memory, secrets) are covered by tests/node/test_agent_volumes.py.
"""

from __future__ import annotations

import base64
import os
import socket
import stat
import threading
from pathlib import Path

import pytest

from agent.atomic_writer import AtomicWriter, FileProjection
from agent.volumes import VolumeError, VolumeManager

UID = "pod-uid-1"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def make_pod(volumes: list[dict], *, uid: str = UID, **spec) -> dict:
    return {"metadata": {"name": "web", "namespace": "default", "uid": uid,
                         "labels": {"app": "web", "tier": "front"}, "annotations": {"a": 'say "hi"'}},
            "spec": {"volumes": volumes, "nodeName": "n1",
                     "containers": [{"name": "c", "resources": {"limits": {"memory": "64Mi"}}}], **spec}}


class Objects:
    """ConfigMaps and Secrets by name, as the agent's informer cache would give them."""

    def __init__(self) -> None:
        self.configmaps: dict[str, dict] = {}
        self.secrets: dict[str, dict] = {}

    def kwargs(self) -> dict:
        return {"get_configmap": self.configmaps.get, "get_secret": self.secrets.get, "node": None}


@pytest.fixture
def manager(tmp_path: Path) -> VolumeManager:
    return VolumeManager(tmp_path / "pods", use_tmpfs=False)


@pytest.fixture
def objects() -> Objects:
    return Objects()


def tree(directory: Path) -> dict[str, str]:
    """The files a container sees: visible names (not ..-prefixed), symlinks followed."""
    out = {}
    for entry in sorted(directory.iterdir()):
        if entry.name.startswith(".."):
            continue
        if entry.is_dir():
            out.update({f"{entry.name}/{k}": v for k, v in tree(entry).items()})
        else:
            out[entry.name] = entry.read_text()
    return out


# ---- emptyDir, layout, idempotence ----

async def test_empty_dir_layout_and_idempotence(manager: VolumeManager, objects: Objects) -> None:
    pod = make_pod([{"name": "scratch", "emptyDir": {}}, {"name": "cache", "emptyDir": {"medium": ""}}])
    paths = await manager.setup(pod, **objects.kwargs())
    assert paths["scratch"] == manager.root / UID / "volumes" / "kubernetes.io~empty-dir" / "scratch"
    assert stat.S_IMODE(paths["scratch"].stat().st_mode) == 0o777
    (paths["scratch"] / "data").write_text("kept")
    assert await manager.setup(pod, **objects.kwargs()) == paths
    assert (paths["scratch"] / "data").read_text() == "kept"
    assert manager.list_pod_dirs() == [UID]


# ---- hostPath ----

@pytest.mark.parametrize("host_type, make, error", [
    ("", None, None),
    ("DirectoryOrCreate", None, None),
    ("DirectoryOrCreate", "dir", None),
    ("DirectoryOrCreate", "file", "is not a directory"),
    ("Directory", "dir", None),
    ("Directory", None, "is not a directory"),
    ("Directory", "file", "is not a directory"),
    ("FileOrCreate", None, None),
    ("FileOrCreate", "file", None),
    ("FileOrCreate", "dir", "is not a file"),
    ("File", "file", None),
    ("File", None, "is not a file"),
    ("Socket", "socket", None),
    ("Socket", "file", "is not a socket file"),
    ("CharDevice", "/dev/null", None),
    ("CharDevice", "file", "is not a character device"),
    ("BlockDevice", "file", "is not a block device"),
])
async def test_host_path_types(manager: VolumeManager, objects: Objects, tmp_path: Path,
                               host_type: str, make: str | None, error: str | None) -> None:
    target = tmp_path / "host" / "thing"
    target.parent.mkdir()
    listener = None
    if make == "dir":
        target.mkdir()
    elif make == "file":
        target.write_text("x")
    elif make == "socket":
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(target))
    elif make:
        target = Path(make)
    pod = make_pod([{"name": "h", "hostPath": {"path": str(target), "type": host_type}}])
    try:
        if error:
            with pytest.raises(VolumeError) as info:
                await manager.setup(pod, **objects.kwargs())
            assert str(info.value) == \
                f'MountVolume.SetUp failed for volume "h" : hostPath type check failed: {target} {error}'
            assert info.value.reason == "FailedMount"
        else:
            paths = await manager.setup(pod, **objects.kwargs())
            assert paths["h"] == target
            if host_type == "DirectoryOrCreate":
                assert target.is_dir() and (make or stat.S_IMODE(target.stat().st_mode) == 0o755)
            if host_type == "FileOrCreate":
                assert target.is_file()
    finally:
        if listener is not None:
            listener.close()


# ---- configMap / secret / downwardAPI content ----

async def test_config_map_all_keys_items_modes(manager: VolumeManager, objects: Objects) -> None:
    objects.configmaps["cfg"] = {"metadata": {"name": "cfg"}, "data": {"app.conf": "a=1", "log.conf": "l"},
                                 "binaryData": {"logo.bin": b64("\x00\x01")}}
    pod = make_pod([
        {"name": "all", "configMap": {"name": "cfg", "defaultMode": 0o600}},
        {"name": "some", "configMap": {"name": "cfg", "defaultMode": 0o644,
                                       "items": [{"key": "app.conf", "path": "conf/app.conf", "mode": 0o400},
                                                 {"key": "log.conf", "path": "log"}]}},
    ])
    paths = await manager.setup(pod, **objects.kwargs())
    assert paths["all"].parent.name == "kubernetes.io~configmap"
    assert tree(paths["all"]) == {"app.conf": "a=1", "log.conf": "l", "logo.bin": "\x00\x01"}
    assert stat.S_IMODE((paths["all"] / "app.conf").stat().st_mode) == 0o600
    assert tree(paths["some"]) == {"conf/app.conf": "a=1", "log": "l"}
    assert stat.S_IMODE((paths["some"] / "conf" / "app.conf").stat().st_mode) == 0o400
    assert stat.S_IMODE((paths["some"] / "log").stat().st_mode) == 0o644
    # Kubernetes' layout: visible names are symlinks into ..data.
    assert os.readlink(paths["some"] / "conf") == "..data/conf"
    assert os.readlink(paths["some"] / "..data").startswith("..")


async def test_secret_volume_decodes(manager: VolumeManager, objects: Objects) -> None:
    objects.secrets["creds"] = {"metadata": {"name": "creds"}, "data": {"user": b64("admin"), "pw": b64("pw")}}
    pod = make_pod([{"name": "s", "secret": {"secretName": "creds", "defaultMode": 0o400}}])
    paths = await manager.setup(pod, **objects.kwargs())
    assert paths["s"].parent.name == "kubernetes.io~secret"
    assert tree(paths["s"]) == {"user": "admin", "pw": "pw"}
    assert stat.S_IMODE((paths["s"] / "user").stat().st_mode) == 0o400


async def test_downward_api_volume(manager: VolumeManager, objects: Objects) -> None:
    pod = make_pod([{"name": "info", "downwardAPI": {"items": [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}, "mode": 0o600},
        {"path": "sub/app", "fieldRef": {"fieldPath": "metadata.labels['app']"}},
        {"path": "mem", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory",
                                             "divisor": "1Mi"}},
    ]}}])
    paths = await manager.setup(pod, **objects.kwargs())
    assert tree(paths["info"]) == {"labels": 'app="web"\ntier="front"', "annotations": 'a="say \\"hi\\""',
                                   "name": "web", "sub/app": "web", "mem": "64"}
    assert stat.S_IMODE((paths["info"] / "name").stat().st_mode) == 0o600
    # Labels change -> the file changes on the next sync.
    pod["metadata"]["labels"]["tier"] = "back"
    await manager.setup(pod, **objects.kwargs())
    assert (paths["info"] / "labels").read_text() == 'app="web"\ntier="back"'


@pytest.mark.parametrize("volume, message", [
    ({"configMap": {"name": "nope"}}, 'configmap "nope" not found'),
    ({"secret": {"secretName": "nope"}}, 'secret "nope" not found'),
    ({"configMap": {"name": "cfg", "items": [{"key": "missing", "path": "m"}]}},
     "configmap references non-existent config key: missing"),
    ({"secret": {"secretName": "creds", "items": [{"key": "missing", "path": "m"}]}},
     "secret references non-existent secret key: missing"),
])
async def test_missing_objects_and_keys(manager: VolumeManager, objects: Objects, volume: dict,
                                        message: str) -> None:
    objects.configmaps["cfg"] = {"data": {"k": "v"}}
    objects.secrets["creds"] = {"data": {"k": b64("v")}}
    pod = make_pod([{"name": "ok", "emptyDir": {}}, {"name": "x", **volume}])
    with pytest.raises(VolumeError) as info:
        await manager.setup(pod, **objects.kwargs())
    assert str(info.value) == f'MountVolume.SetUp failed for volume "x" : {message}'
    # The other volumes were still set up.
    assert (manager.root / UID / "volumes" / "kubernetes.io~empty-dir" / "ok").is_dir()


async def test_optional_missing_objects_and_keys(manager: VolumeManager, objects: Objects) -> None:
    objects.configmaps["cfg"] = {"data": {"k": "v"}}
    pod = make_pod([
        {"name": "a", "configMap": {"name": "nope", "optional": True}},
        {"name": "b", "secret": {"secretName": "nope", "optional": True}},
        {"name": "c", "configMap": {"name": "cfg", "optional": True,
                                    "items": [{"key": "k", "path": "k"}, {"key": "gone", "path": "g"}]}},
    ])
    paths = await manager.setup(pod, **objects.kwargs())
    assert tree(paths["a"]) == {} and tree(paths["b"]) == {}
    assert tree(paths["c"]) == {"k": "v"}


# ---- atomic updates ----

async def test_update_is_atomic_and_removes_keys(manager: VolumeManager, objects: Objects) -> None:
    keys = [f"key{i}" for i in range(8)]
    objects.configmaps["cfg"] = {"data": {k: "v0" for k in keys}}
    pod = make_pod([{"name": "cfg", "configMap": {"name": "cfg"}}])
    path = (await manager.setup(pod, **objects.kwargs()))["cfg"]
    first_version = os.readlink(path / "..data")
    # Unchanged content: nothing is rewritten.
    await manager.setup(pod, **objects.kwargs())
    assert os.readlink(path / "..data") == first_version

    stop = threading.Event()
    seen: set[str] = set()
    mixes: list[dict] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                version = path / os.readlink(path / "..data")      # resolve once, then read the set
                values = {k: (version / k).read_text() for k in keys}
            except FileNotFoundError:
                continue        # that version was deleted under us; a real reader retries too
            if len(set(values.values())) != 1:
                mixes.append(values)
            seen.update(values.values())

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for n in range(1, 40):
            objects.configmaps["cfg"] = {"data": {k: f"v{n}" for k in keys}}
            await manager.setup(pod, **objects.kwargs())
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not mixes
    assert len(seen) > 1
    assert tree(path) == {k: "v39" for k in keys}
    # Only one version directory is left.
    assert [p.name for p in path.iterdir() if p.name.startswith("..2")] == [os.readlink(path / "..data")]

    # A key removed from the ConfigMap: its file is gone.
    objects.configmaps["cfg"] = {"data": {"key0": "last"}}
    await manager.setup(pod, **objects.kwargs())
    assert tree(path) == {"key0": "last"}
    assert not os.path.lexists(path / "key1")


def test_atomic_writer_nested_paths_and_bad_paths(tmp_path: Path) -> None:
    writer = AtomicWriter(tmp_path / "v")
    assert writer.write({"a/b/c": FileProjection(b"1"), "a/d": FileProjection(b"2"), "e": FileProjection(b"3")})
    assert writer.write({"a/d": FileProjection(b"2")})
    assert tree(tmp_path / "v") == {"a/d": "2"}
    assert not writer.write({"a/d": FileProjection(b"2")})
    assert writer.write({"a/d": FileProjection(b"2", mode=0o600)})      # a mode change is a change
    for bad in ("../x", "/abs", "..data", "a/../b", ""):
        with pytest.raises(ValueError):
            writer.write({bad: FileProjection(b"")})


# ---- mounts_for ----

async def test_mounts_for(manager: VolumeManager, objects: Objects, tmp_path: Path) -> None:
    objects.configmaps["cfg"] = {"data": {"app.conf": "x"}}
    host = tmp_path / "host"
    host.mkdir()
    pod = make_pod([{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "cfg"}},
                    {"name": "h", "hostPath": {"path": str(host)}}])
    paths = await manager.setup(pod, **objects.kwargs())
    container = {"name": "c", "volumeMounts": [
        {"name": "data", "mountPath": "/data"},
        {"name": "data", "mountPath": "/ro", "readOnly": True},
        {"name": "cfg", "mountPath": "/etc/app"},
        {"name": "cfg", "mountPath": "/etc/app.conf", "subPath": "app.conf"},
        {"name": "data", "mountPath": "/logs", "subPath": "logs/c"},
        {"name": "h", "mountPath": "/host"},
    ]}
    mounts = manager.mounts_for(container, paths)
    got = [(m.destination, m.source, m.readonly) for m in mounts]
    data = paths["data"].resolve()
    assert got[0] == ("/data", paths["data"], False)
    assert got[1] == ("/ro", paths["data"], True)
    assert got[2] == ("/etc/app", paths["cfg"], True)            # configMap: always read-only
    assert got[3][0] == "/etc/app.conf" and got[3][2] is True
    assert got[3][1].read_text() == "x" and got[3][1].parent.name.startswith("..")
    assert got[4] == ("/logs", data / "logs" / "c", False)
    assert (data / "logs" / "c").is_dir()                        # missing subPath dirs are created
    assert got[5] == ("/host", host, False)


@pytest.mark.parametrize("sub_path", ["../escape", "a/../../b", "/etc", "link/x", "link"])
async def test_sub_path_cannot_escape(manager: VolumeManager, objects: Objects, tmp_path: Path,
                                      sub_path: str) -> None:
    paths = await manager.setup(make_pod([{"name": "data", "emptyDir": {}}]), **objects.kwargs())
    outside = tmp_path / "outside"
    outside.mkdir()
    (paths["data"] / "link").symlink_to(outside)                   # a container could make this
    container = {"name": "c", "volumeMounts": [{"name": "data", "mountPath": "/d", "subPath": sub_path}]}
    with pytest.raises(VolumeError, match="volumeMounts\\[0\\].subPath"):
        manager.mounts_for(container, paths)
    assert list(outside.iterdir()) == []


# ---- teardown ----

async def test_teardown_after_restart_keeps_host_paths(manager: VolumeManager, objects: Objects,
                                                       tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "precious").write_text("keep me")
    objects.configmaps["cfg"] = {"data": {"k": "v"}}
    pod = make_pod([{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "cfg"}},
                    {"name": "h", "hostPath": {"path": str(host)}}])
    paths = await manager.setup(pod, **objects.kwargs())
    (paths["data"] / "to-host").symlink_to(host)                  # must not be followed
    (paths["data"] / "file").write_text("x")
    await manager.setup(make_pod([{"name": "x", "emptyDir": {}}], uid="other"), **objects.kwargs())

    restarted = VolumeManager(manager.root, use_tmpfs=False)     # a new agent process
    assert restarted.list_pod_dirs() == ["other", UID]
    await restarted.teardown(UID)
    assert not (manager.root / UID).exists()
    assert (host / "precious").read_text() == "keep me"
    assert restarted.list_pod_dirs() == ["other"]
    await restarted.teardown(UID)                                 # again: nothing to do
    await restarted.teardown("never-existed")


async def test_bad_uid_is_refused(manager: VolumeManager) -> None:
    with pytest.raises(ValueError):
        await manager.teardown("..")


async def test_claim_volumes_resolve_to_their_volumes_path(tmp_path):
    """A persistentVolumeClaim volume is its bound PersistentVolume's directory (agent/localpath.py),
    made when the type asks for it; an unbound claim fails with the claim named."""
    from agent.localpath import LocalPathSweeper, claim_volume
    from agent.volumes import VolumeError, VolumeManager
    path = tmp_path / "lp" / "pvc-11111111-2222-3333-4444-555555555555_default_www-web-0"
    objects = {("persistentvolumeclaims", "default", "www-web-0"): {"spec": {"volumeName": "pv1"},
                                                                     "status": {"phase": "Bound"}},
               ("persistentvolumeclaims", "default", "pending"): {"spec": {}, "status": {"phase": "Pending"}},
               ("persistentvolumes", "", "pv1"): {"spec": {"hostPath": {"path": str(path),
                                                                        "type": "DirectoryOrCreate"}}}}

    async def get(plural, ns, name):
        return objects.get((plural, ns, name))
    manager = VolumeManager(tmp_path / "pods", use_tmpfs=False, claims=get)
    pod = {"metadata": {"uid": "u1", "namespace": "default", "name": "web-0"},
           "spec": {"volumes": [{"name": "www", "persistentVolumeClaim": {"claimName": "www-web-0"}}]}}
    assert await manager.setup(pod, get_configmap=lambda n: None, get_secret=lambda n: None) == {"www": path}
    assert path.is_dir()
    with pytest.raises(ValueError, match='persistentvolumeclaim "pending" is not bound'):
        await claim_volume("default", "pending", get, wait_seconds=0.3)
    pending = {**pod, "metadata": {**pod["metadata"], "uid": "u2"},
               "spec": {"volumes": [{"name": "www", "persistentVolumeClaim": {"claimName": "nope"}}]}}
    with pytest.raises(VolumeError, match='persistentvolumeclaim "nope" not found'):
        await manager.setup(pending, get_configmap=lambda n: None, get_secret=lambda n: None)
    # The sweep removes a directory only once its volume is gone.
    sweeper = LocalPathSweeper(tmp_path / "lp", get)
    (tmp_path / "lp" / "unrelated").mkdir()
    objects[("persistentvolumes", "", "pvc-11111111-2222-3333-4444-555555555555")] = {"spec": {}}
    assert await sweeper.sweep() == [] and path.is_dir()
    del objects[("persistentvolumes", "", "pvc-11111111-2222-3333-4444-555555555555")]
    assert await sweeper.sweep() == [path.name]
    assert not path.exists() and (tmp_path / "lp" / "unrelated").is_dir()
