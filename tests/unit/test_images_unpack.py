"""Unpacking one layer into overlayfs form: file types, whiteouts, compression, limits."""

import gzip
import io
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from agent.images.errors import LayerError
from agent.images.unpack import OVERLAY_OPAQUE_XATTR, UnpackLimits, unpack_layer
from fake_registry import digest_of
from image_helpers import Entry, builder, tar_layer

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: overlay whiteouts, device nodes, chown")


def unpack(tar: bytes, dest: Path, **kwargs):  # type: ignore[no-untyped-def]
    dest.mkdir(parents=True, exist_ok=True)
    return unpack_layer(io.BytesIO(tar), dest, **kwargs)


def test_files_dirs_links_and_missing_parents(tmp_path: Path) -> None:
    tar = tar_layer([
        Entry("bin", "dir", mode=0o755),
        Entry("bin/busybox", data=b"\x7fELF...", mode=0o4755),
        Entry("bin/sh", "symlink", target="/bin/busybox"),  # absolute, as busybox images have
        Entry("bin/ls", "hardlink", target="bin/busybox"),
        Entry("usr/share/doc/readme", data=b"parents were never listed\n", mode=0o600),
        Entry("etc", "dir", mode=0o555),  # read-only directory, written into afterwards
        Entry("etc/passwd", data=b"root:x:0:0::/root:/bin/sh\n"),
    ])
    result = unpack(tar, tmp_path / "fs", whiteout_format="sidecar")
    fs = tmp_path / "fs"
    assert result.diff_id == digest_of(tar)
    assert result.compression == "none" and result.entries == 7
    assert (fs / "bin/busybox").read_bytes() == b"\x7fELF..."
    assert stat.S_IMODE((fs / "bin/busybox").stat().st_mode) == 0o4755
    assert os.readlink(fs / "bin/sh") == "/bin/busybox"
    assert (fs / "bin/ls").stat().st_ino == (fs / "bin/busybox").stat().st_ino
    assert stat.S_IMODE((fs / "usr/share/doc").stat().st_mode) == 0o755
    assert stat.S_IMODE((fs / "usr/share/doc/readme").stat().st_mode) == 0o600
    assert stat.S_IMODE((fs / "etc").stat().st_mode) == 0o555
    assert (fs / "etc/passwd").read_bytes().startswith(b"root")
    assert int((fs / "bin/busybox").stat().st_mtime) == builder.EPOCH
    assert int((fs / "bin").stat().st_mtime) == builder.EPOCH  # set after its children were written
    assert stat.S_IMODE(fs.stat().st_mode) == 0o755


def test_gzip_and_plain_give_the_same_diff_id(tmp_path: Path) -> None:
    tar = tar_layer([Entry("a.txt", data=b"a" * 100_000)])
    plain = unpack(tar, tmp_path / "plain")
    zipped = unpack(gzip.compress(tar), tmp_path / "gz")
    assert plain.diff_id == zipped.diff_id == digest_of(tar)
    assert zipped.compression == "gzip"
    assert (tmp_path / "gz/a.txt").read_bytes() == b"a" * 100_000


def test_concatenated_gzip_members(tmp_path: Path) -> None:
    tar = tar_layer([Entry("a.txt", data=os.urandom(50_000))])
    two_members = gzip.compress(tar[:30_000]) + gzip.compress(tar[30_000:])
    assert unpack(two_members, tmp_path / "fs").diff_id == digest_of(tar)


@pytest.mark.skipif(shutil.which("zstd") is None, reason="zstd command not installed")
def test_zstd(tmp_path: Path) -> None:
    tar = tar_layer([Entry("z.txt", data=b"zstd layer\n")])
    compressed = subprocess.run(["zstd", "-q", "-c"], input=tar, capture_output=True, check=True).stdout
    result = unpack(compressed, tmp_path / "fs")
    assert result.compression == "zstd" and result.diff_id == digest_of(tar)
    assert (tmp_path / "fs/z.txt").read_text() == "zstd layer\n"


def test_truncated_gzip(tmp_path: Path) -> None:
    data = gzip.compress(tar_layer([Entry("a.bin", data=os.urandom(200_000))]))
    with pytest.raises(LayerError, match="truncated gzip"):
        unpack(data[: len(data) // 2], tmp_path / "fs")


def test_corrupt_gzip(tmp_path: Path) -> None:
    data = bytearray(gzip.compress(tar_layer([Entry("a.bin", data=os.urandom(20_000))])))
    data[100:120] = b"\0" * 20
    with pytest.raises(LayerError, match="gzip"):
        unpack(bytes(data), tmp_path / "fs")


def test_truncated_tar(tmp_path: Path) -> None:
    tar = tar_layer([Entry("a.bin", data=os.urandom(20_000))])
    with pytest.raises(LayerError, match="truncated|unexpected end"):
        unpack(tar[:5000], tmp_path / "fs")


def test_empty_layer(tmp_path: Path) -> None:
    assert unpack(gzip.compress(tar_layer([])), tmp_path / "fs").entries == 0
    assert unpack(b"", tmp_path / "fs2").entries == 0


def test_later_entries_replace_earlier(tmp_path: Path) -> None:
    tar = tar_layer([Entry("x", data=b"file"), Entry("x", "dir"), Entry("x/inner", data=b"1"),
                     Entry("y", "dir"), Entry("y/inner", data=b"2"), Entry("y", data=b"now a file")])
    unpack(tar, tmp_path / "fs")
    assert (tmp_path / "fs/x/inner").read_bytes() == b"1"
    assert (tmp_path / "fs/y").read_bytes() == b"now a file"


def test_xattrs_user_kept_trusted_dropped(tmp_path: Path) -> None:
    tar = tar_layer([Entry("f", data=b"x", xattrs={"user.color": "blue", "trusted.overlay.redirect": "/x"})])
    result = unpack(tar, tmp_path / "fs")
    try:
        assert os.getxattr(tmp_path / "fs/f", "user.color") == b"blue"
    except OSError:
        pytest.skip("filesystem without user xattrs")
    with pytest.raises(OSError):
        os.getxattr(tmp_path / "fs/f", "trusted.overlay.redirect")
    assert any("trusted.overlay.redirect dropped" in w for w in result.warnings)


WHITEOUT_TAR = [
    Entry("etc", "dir", mode=0o755),
    Entry("etc/.wh.motd"),  # delete /etc/motd of lower layers
    Entry("var/cache/.wh..wh..opq"),  # opaque marker before its directory's own entry
    Entry("var/cache", "dir", mode=0o750),
    Entry("var/cache/fresh", data=b"new\n"),
    Entry("opt/.wh..wh.plnk", "dir"),  # AUFS hardlink dir: ignored
]


@root_only
def test_whiteouts_in_overlay_form(tmp_path: Path) -> None:
    result = unpack(tar_layer(WHITEOUT_TAR), tmp_path / "fs", whiteout_format="overlay")
    fs = tmp_path / "fs"
    st = os.lstat(fs / "etc/motd")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)
    assert not (fs / "etc/.wh.motd").exists()
    assert os.getxattr(fs / "var/cache", OVERLAY_OPAQUE_XATTR) == b"y"
    assert stat.S_IMODE((fs / "var/cache").stat().st_mode) == 0o750
    assert (fs / "var/cache/fresh").read_text() == "new\n"
    assert not (fs / "opt/.wh..wh.plnk").exists()
    assert result.whiteouts == [] and result.opaque_dirs == []


def test_whiteouts_in_sidecar_form(tmp_path: Path) -> None:
    result = unpack(tar_layer(WHITEOUT_TAR), tmp_path / "fs", whiteout_format="sidecar")
    assert result.whiteouts == ["etc/motd"] and result.opaque_dirs == ["var/cache"]
    assert not os.path.lexists(tmp_path / "fs/etc/motd")
    assert not any(name.startswith(".wh.") for _, _, files in os.walk(tmp_path / "fs") for name in files)


@root_only
def test_devices_owners(tmp_path: Path) -> None:
    tar = tar_layer([Entry("dev", "dir"), Entry("dev/null", "char", mode=0o666), Entry("dev/pipe", "fifo"),
                     Entry("home/www", "dir", uid=33, gid=33), Entry("home/www/f", data=b"x", uid=33, gid=44),
                     Entry("home/www/l", "symlink", target="f", uid=33, gid=33)])
    unpack(tar, tmp_path / "fs")
    fs = tmp_path / "fs"
    assert stat.S_ISCHR(os.lstat(fs / "dev/null").st_mode) and os.lstat(fs / "dev/null").st_rdev == os.makedev(1, 3)
    assert stat.S_ISFIFO(os.lstat(fs / "dev/pipe").st_mode)
    assert (os.lstat(fs / "home/www/f").st_uid, os.lstat(fs / "home/www/f").st_gid) == (33, 44)
    assert os.lstat(fs / "home/www").st_uid == 33 and os.lstat(fs / "home/www/l").st_uid == 33


def test_uncompressed_size_limit(tmp_path: Path) -> None:
    tar = gzip.compress(tar_layer([Entry("zeros", data=b"\0" * 5_000_000)]))  # compresses to ~5 kB
    with pytest.raises(LayerError, match="larger than the limit|declares"):
        unpack(tar, tmp_path / "fs", limits=UnpackLimits(max_bytes=1_000_000))


def test_entry_count_limit(tmp_path: Path) -> None:
    tar = tar_layer([Entry(f"f{i}") for i in range(20)])
    with pytest.raises(LayerError, match="more than 10 entries"):
        unpack(tar, tmp_path / "fs", limits=UnpackLimits(max_entries=10))
