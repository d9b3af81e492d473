"""Safe unpacking of one layer tarball into its own directory, in overlayfs form.

Each layer is unpacked on its own (not on top of its parents), so the same
layer serves every image that contains it; the runtime stacks the layer
directories with overlayfs. OCI whiteouts are therefore converted to what
overlayfs understands, as containerd's overlay snapshotter does:

* ``dir/.wh.name``   → a character device 0/0 at ``dir/name``
* ``dir/.wh..wh..opq`` → the xattr ``trusted.overlay.opaque=y`` on ``dir``
  (the marker may come before the directory's own entry; the directory is
  created then and keeps the mark when its entry arrives)

Both need root (CAP_MKNOD, CAP_SYS_ADMIN). Without it (`whiteout_format=
"sidecar"`) no whiteout is written into the tree; they are returned in the
result instead, and the store keeps them beside the layer.

Safety is by construction, not by checking paths afterwards. The extractor is
our own because tarfile's ``data`` filter refuses the absolute symlinks real
images contain (busybox's do). The destination starts empty and only this code
writes into it, so `_Unpacker.kinds` knows the type of every path in it:

* names are split into components; ``..`` is refused, a leading ``/`` dropped;
* every parent component must be a directory this layer made — a parent that
  is a symlink (the "symlink then file through it" escape) is refused;
* the last component is never followed: old entries are unlinked first and
  files are opened with O_EXCL|O_NOFOLLOW; symlink targets are stored, never
  resolved;
* a hardlink must point at a non-directory entry made earlier in this layer;
* uncompressed bytes, declared sizes and entry counts are capped, and sizes
  are checked against free disk space before anything is written.

Unpacking is blocking, file-heavy work: callers run it in a thread.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from agent.images.decompress import open_decompressed
from agent.images.errors import LayerError

log = logging.getLogger(__name__)

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
_META_HEADER_LIMIT = 1 << 20  # pax / GNU long-name headers larger than this are refused
_COPY_CHUNK = 1 << 20

_DIR, _FILE, _SYMLINK, _OTHER, _WHITEOUT = "dir", "file", "symlink", "other", "whiteout"


@dataclass(frozen=True)
class UnpackLimits:
    """Caps that stop hostile or absurd layers before they fill the disk."""

    max_bytes: int = 64 << 30  # uncompressed tar bytes
    max_entries: int = 2_000_000
    min_free_bytes: int = 64 << 20  # keep this much free on the store's filesystem


@dataclass
class UnpackResult:
    diff_id: str  # sha256 of the uncompressed tar stream
    size: int  # bytes of regular-file content written
    entries: int
    compression: str
    whiteout_format: str  # "overlay" or "sidecar"
    whiteouts: list[str] = field(default_factory=list)  # sidecar form only
    opaque_dirs: list[str] = field(default_factory=list)  # sidecar form only
    warnings: list[str] = field(default_factory=list)


def overlay_whiteouts_supported(directory: Path) -> bool:
    """Can this process write overlay whiteouts (0/0 devices, trusted.* xattrs) in `directory`?"""
    probe = directory / f".whiteout-probe-{os.getpid()}"
    try:
        os.mknod(probe, stat.S_IFCHR | 0o600, os.makedev(0, 0))
        os.setxattr(probe, OVERLAY_OPAQUE_XATTR, b"y", follow_symlinks=False)
        return True
    except OSError:
        return False
    finally:
        try:
            os.unlink(probe)
        except FileNotFoundError:
            pass


def unpack_layer(stream: BinaryIO, dest: Path, *, whiteout_format: str = "overlay",
                 limits: UnpackLimits = UnpackLimits(), preserve_owner: bool | None = None) -> UnpackResult:
    """Unpack the (compressed) layer tarball `stream` into the empty directory `dest`.

    Reads `stream` to its end. Raises LayerError for corrupt, truncated or unsafe
    input; `dest` is then left partly written and the caller removes it.
    """
    if whiteout_format not in ("overlay", "sidecar"):
        raise ValueError(f"whiteout_format must be 'overlay' or 'sidecar', not {whiteout_format!r}")
    if preserve_owner is None:
        preserve_owner = os.geteuid() == 0
    reader, compression = open_decompressed(stream)
    counted = _CountingReader(reader, limits.max_bytes)
    unpacker = _Unpacker(str(dest), whiteout_format=whiteout_format, preserve_owner=preserve_owner,
                         limits=limits, counted=counted)
    try:
        try:
            tar = tarfile.open(fileobj=counted, mode="r|", bufsize=16 * 1024, tarinfo=_BoundedTarInfo)
        except tarfile.ReadError as exc:
            if counted.count == 0 or "empty file" in str(exc):
                tar = None  # an empty stream is an empty layer
            else:
                raise LayerError(f"not a tar archive: {exc}") from None
        if tar is not None:
            with tar:
                while (member := tar.next()) is not None:
                    tar.members.clear()  # streaming: do not keep every header in memory
                    try:
                        unpacker.apply(tar, member)
                    except OSError as exc:
                        raise LayerError(f"entry {member.name!r}: {exc.strerror or exc}") from None
        counted.drain()
        unpacker.finish()
    except tarfile.TarError as exc:
        raise LayerError(f"corrupt or truncated tar: {exc}") from None
    finally:
        reader.close()
    return UnpackResult(
        diff_id="sha256:" + counted.hash.hexdigest(), size=unpacker.size, entries=unpacker.entries,
        compression=compression, whiteout_format=whiteout_format,
        whiteouts=sorted("/".join(p) for p in unpacker.sidecar_whiteouts),
        opaque_dirs=sorted("/".join(p) or "." for p in unpacker.sidecar_opaque), warnings=unpacker.warnings)


class _BoundedTarInfo(tarfile.TarInfo):
    """TarInfo that refuses huge meta headers, which tarfile would read into memory whole."""

    def _proc_member(self, tarfile_):  # type: ignore[no-untyped-def]
        meta = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE,
                tarfile.SOLARIS_XHDTYPE)
        if self.type in meta and self.size > _META_HEADER_LIMIT:
            raise LayerError(f"tar meta header of {self.size} bytes (limit {_META_HEADER_LIMIT}): refusing")
        return super()._proc_member(tarfile_)


class _CountingReader:
    """Hashes the uncompressed stream (giving the diff_id) and caps its length."""

    def __init__(self, raw, max_bytes: int) -> None:  # type: ignore[no-untyped-def]
        self._raw = raw
        self.max_bytes = max_bytes
        self.hash = hashlib.sha256()
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size if size is not None and size >= 0 else _COPY_CHUNK)
        self.count += len(data)
        if self.count > self.max_bytes:
            raise LayerError(f"layer is larger than the limit of {self.max_bytes} uncompressed bytes")
        self.hash.update(data)
        return data

    def drain(self) -> None:
        while self.read(_COPY_CHUNK):
            pass


def _split(name: str, *, entry: str) -> tuple[str, ...]:
    """Path components of an archive name; '.' and a leading '/' vanish, '..' is refused."""
    if "\0" in name:
        raise LayerError(f"entry {entry!r}: NUL byte in path")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise LayerError(f"entry {entry!r}: path {name!r} contains '..'; refusing to write outside the layer")
    return parts


class _Unpacker:
    def __init__(self, root: str, *, whiteout_format: str, preserve_owner: bool, limits: UnpackLimits,
                 counted: _CountingReader) -> None:
        self.root = root
        self.overlay = whiteout_format == "overlay"
        self.preserve_owner = preserve_owner
        self.limits = limits
        self.counted = counted
        self.kinds: dict[tuple[str, ...], str] = {(): _DIR}
        self.dir_meta: dict[tuple[str, ...], tarfile.TarInfo] = {}
        self.sidecar_whiteouts: set[tuple[str, ...]] = set()
        self.sidecar_opaque: set[tuple[str, ...]] = set()
        self.warnings: list[str] = []
        self.size = 0
        self.entries = 0
        self._last_parent: tuple[str, ...] = ()

    def path(self, rel: tuple[str, ...]) -> str:
        return os.path.join(self.root, *rel)

    # -- one tar entry ---------------------------------------------------------------------

    def apply(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise LayerError(f"layer has more than {self.limits.max_entries} entries")
        rel = _split(member.name, entry=member.name)
        if not rel:
            if member.isdir():
                self.dir_meta[()] = member  # the layer root's own metadata
            return
        base = rel[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout_entry(rel, member)
            return
        self._ensure_parents(rel, member.name)
        self.sidecar_whiteouts.discard(rel)
        if member.isdir():
            if self.kinds.get(rel) != _DIR:
                self._remove(rel)
                os.mkdir(self.path(rel), 0o700)
                self.kinds[rel] = _DIR
            self.dir_meta[rel] = member  # applied in finish(), after the children are written
            return
        if member.islnk():
            self._hardlink(rel, member)
            return
        self._remove(rel)
        if member.isreg():
            self._regular(tar, rel, member)
        elif member.issym():
            if "\0" in member.linkname:
                raise LayerError(f"entry {member.name!r}: NUL byte in symlink target")
            os.symlink(member.linkname, self.path(rel))
            self.kinds[rel] = _SYMLINK
            self._metadata(rel, member)
        elif member.isfifo() or member.ischr() or member.isblk():
            self._device(rel, member)
        else:
            self.warnings.append(f"{member.name}: unsupported tar entry type {member.type!r}, skipped")

    def _whiteout_entry(self, rel: tuple[str, ...], member: tarfile.TarInfo) -> None:
        parent, base = rel[:-1], rel[-1]
        self._ensure_parents(rel, member.name)
        if base == OPAQUE_MARKER:
            if self.overlay:
                os.setxattr(self.path(parent), OVERLAY_OPAQUE_XATTR, b"y", follow_symlinks=False)
            else:
                self.sidecar_opaque.add(parent)
            return
        if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            return  # other AUFS metadata (.wh..wh.plnk and friends) means nothing to overlayfs
        target = parent + (base[len(WHITEOUT_PREFIX):],)
        if target[-1] in ("", ".", ".."):
            raise LayerError(f"entry {member.name!r}: whiteout of an invalid name")
        self._remove(target)
        if self.overlay:
            os.mknod(self.path(target), stat.S_IFCHR | 0o000, os.makedev(0, 0))
            self.kinds[target] = _WHITEOUT
        else:
            self.sidecar_whiteouts.add(target)

    def _ensure_parents(self, rel: tuple[str, ...], name: str) -> None:
        parent = rel[:-1]
        if parent == self._last_parent and self.kinds.get(parent) == _DIR:
            return
        for depth in range(1, len(parent) + 1):
            prefix = parent[:depth]
            kind = self.kinds.get(prefix)
            if kind == _DIR:
                continue
            if kind is None:
                os.mkdir(self.path(prefix), 0o700)
                self.kinds[prefix] = _DIR  # an implicit directory: 0755 root:root in finish()
                continue
            shown = "/".join(prefix)
            if kind == _SYMLINK:
                raise LayerError(f"entry {name!r}: parent {shown!r} is a symlink; "
                                 "writing through it could escape the layer")
            raise LayerError(f"entry {name!r}: parent {shown!r} is not a directory")
        self._last_parent = parent

    def _remove(self, rel: tuple[str, ...]) -> None:
        kind = self.kinds.pop(rel, None)
        if kind is None:
            return
        path = self.path(rel)
        if kind == _DIR:
            _make_writable_tree(path)
            shutil.rmtree(path)
            depth = len(rel)
            for table in (self.kinds, self.dir_meta):
                for key in [k for k in table if k[:depth] == rel]:
                    del table[key]
            self.sidecar_whiteouts = {k for k in self.sidecar_whiteouts if k[:depth] != rel}
            self.sidecar_opaque = {k for k in self.sidecar_opaque if k[:depth] != rel}
            self._last_parent = ()
        else:
            os.unlink(path)

    def _regular(self, tar: tarfile.TarFile, rel: tuple[str, ...], member: tarfile.TarInfo) -> None:
        remaining = self.limits.max_bytes - self.counted.count
        if member.size > remaining:
            raise LayerError(f"entry {member.name!r} declares {member.size} bytes, "
                             f"more than the layer limit of {self.limits.max_bytes} allows")
        if member.size:
            free = _free_bytes(self.root)
            if member.size > free - self.limits.min_free_bytes:
                raise LayerError(f"entry {member.name!r} declares {member.size} bytes; "
                                 f"only {free} bytes are free on the image store's filesystem")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self.path(rel), flags, 0o600)
        self.kinds[rel] = _FILE
        try:
            if member.size:
                source = tar.extractfile(member)
                assert source is not None
                with open(fd, "wb", buffering=0, closefd=False) as target:
                    shutil.copyfileobj(source, target, _COPY_CHUNK)
                self.size += member.size
            if self.preserve_owner:
                os.fchown(fd, member.uid, member.gid)
            os.fchmod(fd, member.mode & 0o7777)
            self._xattrs(fd, member)
            os.utime(fd, ns=(int(member.mtime * 1e9),) * 2)
        finally:
            os.close(fd)

    def _hardlink(self, rel: tuple[str, ...], member: tarfile.TarInfo) -> None:
        target = _split(member.linkname, entry=member.name)
        kind = self.kinds.get(target)
        if kind is None:
            raise LayerError(f"entry {member.name!r}: hardlink target {member.linkname!r} "
                             "is not an earlier entry of this layer")
        if kind == _DIR:
            raise LayerError(f"entry {member.name!r}: hardlink to directory {member.linkname!r}")
        if target == rel:
            return
        self._remove(rel)
        os.link(self.path(target), self.path(rel), follow_symlinks=False)
        self.kinds[rel] = kind

    def _device(self, rel: tuple[str, ...], member: tarfile.TarInfo) -> None:
        path = self.path(rel)
        if member.isfifo():
            os.mkfifo(path, 0o600)
        else:
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            try:
                os.mknod(path, kind | 0o600, os.makedev(member.devmajor, member.devminor))
            except PermissionError:
                self.warnings.append(f"{member.name}: device node skipped (needs root)")
                return
        self.kinds[rel] = _OTHER
        self._metadata(rel, member)
        os.chmod(path, member.mode & 0o7777)

    def _metadata(self, rel: tuple[str, ...], member: tarfile.TarInfo) -> None:
        """Owner, xattrs and times of a non-regular entry, never following its last component."""
        path = self.path(rel)
        if self.preserve_owner:
            os.chown(path, member.uid, member.gid, follow_symlinks=False)
        self._xattrs(path, member)
        os.utime(path, ns=(int(member.mtime * 1e9),) * 2, follow_symlinks=False)

    def _xattrs(self, target: int | str, member: tarfile.TarInfo) -> None:
        for key, value in member.pax_headers.items():
            if not key.startswith("SCHILY.xattr."):
                continue
            name = key[len("SCHILY.xattr."):]
            if not (name.startswith("user.") or name == "security.capability"):
                self.warnings.append(f"{member.name}: xattr {name} dropped (only user.* and "
                                     "security.capability are kept)")
                continue
            try:
                data = value.encode("utf-8", "surrogateescape")
                if isinstance(target, int):
                    os.setxattr(target, name, data)
                else:
                    os.setxattr(target, name, data, follow_symlinks=False)
            except OSError as exc:
                self.warnings.append(f"{member.name}: xattr {name} not set: {exc.strerror}")

    # -- after the last entry --------------------------------------------------------------

    def finish(self) -> None:
        """Directory metadata, deepest first, so setting it is not undone by writing children."""
        for rel in sorted((k for k, v in self.kinds.items() if v == _DIR), key=len, reverse=True):
            path = self.path(rel)
            member = self.dir_meta.get(rel)
            if member is None:
                os.chmod(path, 0o755)  # made implicitly for an entry whose parent was missing
                continue
            if self.preserve_owner:
                os.chown(path, member.uid, member.gid, follow_symlinks=False)
            self._xattrs(path, member)
            os.chmod(path, member.mode & 0o7777)
            os.utime(path, ns=(int(member.mtime * 1e9),) * 2, follow_symlinks=False)
        for warning in self.warnings:
            log.debug("unpack: %s", warning)


def _free_bytes(path: str) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _make_writable_tree(path: str) -> None:
    """Let a non-root process remove a tree that contains read-only directories."""
    if os.geteuid() == 0:
        return
    for dirpath, dirnames, _ in os.walk(path):
        for name in dirnames:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                os.chmod(full, 0o700)
    os.chmod(path, 0o700)


def remove_tree(path: Path) -> None:
    """Remove a directory tree even if it holds read-only directories; missing is fine."""
    if not os.path.lexists(path):
        return
    if path.is_symlink() or not path.is_dir():
        path.unlink()
        return
    _make_writable_tree(str(path))
    shutil.rmtree(path)
