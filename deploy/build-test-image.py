#!/usr/bin/env python3
"""Build a small multi-layer busybox OCI image from Debian's busybox-static, offline.

Used by the quick start (the image is loaded into the local cluster, so the
examples run without a registry) and by the tests. Nothing but the Python
standard library: the OCI layout is written directly (tar + gzip + sha256),
so no umoci or skopeo is needed to build it; skopeo can push it to a registry.

    layer 1: /bin/busybox and an applet symlink per command in /bin (absolute
             links to /bin/busybox, like real images have)
    layer 2: /etc/passwd, /etc/group, /tmp, /root, /var/www/index.html (for httpd)
    config:  Cmd ["sh"], PATH set, like the busybox image on Docker Hub

Output: an OCI layout directory (--out) and/or an OCI archive tarball
(--archive), tagged skiff.local/busybox:<version>, skiff.local/busybox:latest
and docker.io/library/busybox:<version> unless --tag is given. The output is
byte-for-byte reproducible (fixed times, owners and gzip headers).

The helpers (`tar_layer`, `LayoutWriter`) are reused by the tests to build
other images: several platforms, whiteouts, hostile layers.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import platform
import re
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

EPOCH = 1_700_000_000  # fixed mtime of every entry: reproducible digests
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}


@dataclass
class Entry:
    """One tar entry: kind is file, dir, symlink, hardlink, char, fifo."""

    path: str
    kind: str = "file"
    data: bytes = b""
    mode: int = 0o644
    target: str = ""  # symlink or hardlink target
    uid: int = 0
    gid: int = 0
    xattrs: dict[str, str] = field(default_factory=dict)
    size: int | None = None  # override the header's size (hostile tests)


def tar_layer(entries: list[Entry]) -> bytes:
    """An uncompressed tar of `entries`, in the order given."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.path)
            info.mtime, info.uid, info.gid, info.mode = EPOCH, e.uid, e.gid, e.mode
            info.uname = info.gname = "root" if e.uid == 0 else ""
            if e.xattrs:
                info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in e.xattrs.items()}
            if e.kind == "dir":
                info.type = tarfile.DIRTYPE
            elif e.kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, e.target
            elif e.kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, e.target
            elif e.kind == "char":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
            elif e.kind == "fifo":
                info.type = tarfile.FIFOTYPE
            if e.kind == "file":
                info.size = len(e.data) if e.size is None else e.size
                if e.size is not None and e.size != len(e.data):
                    tar.addfile(info)  # header only: a size the data does not back up
                    tar.fileobj.write(e.data)
                else:
                    tar.addfile(info, io.BytesIO(e.data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class LayoutWriter:
    """Writes an OCI image layout directory: blobs, then index.json on `finish()`."""

    def __init__(self, out: Path) -> None:
        self.out = out
        (out / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (out / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        self.index: list[dict] = []

    def blob(self, data: bytes, media_type: str) -> dict:
        digest = sha256(data)
        (self.out / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def image(self, layers: list[bytes], *, config: dict | None = None, arch: str | None = None,
              compress: bool = True, os_name: str = "linux", variant: str = "") -> dict:
        """Write layers (uncompressed tars), config and manifest; returns the manifest's descriptor."""
        arch = arch or ARCH.get(platform.machine(), platform.machine())
        descriptors = []
        for tar in layers:
            data = gzip.compress(tar, mtime=0) if compress else tar
            media = OCI_LAYER_GZIP if compress else "application/vnd.oci.image.layer.v1.tar"
            descriptors.append(self.blob(data, media))
        doc = {"created": "2023-11-14T22:13:20Z", "architecture": arch, "os": os_name,
               "config": config or {}, "rootfs": {"type": "layers", "diff_ids": [sha256(t) for t in layers]},
               "history": [{"created": "2023-11-14T22:13:20Z", "created_by": f"layer {i}"}
                           for i in range(len(layers))]}
        if variant:
            doc["variant"] = variant
        config_desc = self.blob(json.dumps(doc, sort_keys=True).encode(), OCI_CONFIG)
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_desc, "layers": descriptors}
        desc = self.blob(json.dumps(manifest, sort_keys=True).encode(), OCI_MANIFEST)
        desc["platform"] = {"architecture": arch, "os": os_name, **({"variant": variant} if variant else {})}
        return desc

    def multi_platform(self, manifests: list[dict]) -> dict:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
        return self.blob(json.dumps(index, sort_keys=True).encode(), OCI_INDEX)

    def tag(self, descriptor: dict, name: str) -> None:
        entry = {k: v for k, v in descriptor.items() if k != "platform"}
        annotations = {REF_NAME: name}
        if "/" in name:
            annotations[CONTAINERD_NAME] = name
        entry["annotations"] = annotations
        self.index.append(entry)

    def finish(self) -> None:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.index}
        (self.out / "index.json").write_text(json.dumps(index, indent=1, sort_keys=True))


def write_archive(layout: Path, archive: Path) -> None:
    """Tar up an OCI layout directory (an "OCI archive"), reproducibly."""
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(layout.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(layout)))
            info.mtime, info.uid, info.gid, info.uname, info.gname = EPOCH, 0, 0, "root", "root"
            if path.is_file():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)


def busybox_version(busybox: Path) -> str:
    first = subprocess.run([str(busybox)], capture_output=True, text=True).stdout.splitlines()[:1]
    match = re.search(r"v(\d+)\.(\d+)", first[0] if first else "")
    return f"{match.group(1)}.{match.group(2)}" if match else "latest"


def busybox_layers(busybox: Path) -> list[bytes]:
    applets = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True).stdout.split()
    layer1 = [Entry("bin", "dir", mode=0o755), Entry("bin/busybox", data=busybox.read_bytes(), mode=0o755)]
    layer1 += [Entry(f"bin/{name}", "symlink", target="/bin/busybox")
               for name in sorted(set(applets)) if name not in ("busybox", "") and "/" not in name]
    passwd = ("root:x:0:0:root:/root:/bin/sh\n"
              "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
              "www-data:x:33:33:www-data:/var/www:/bin/false\n"
              "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    group = "root:x:0:\ndaemon:x:1:\nwww-data:x:33:\nnogroup:x:65534:\n"
    index = "<html><body><h1>Hello from Skiff</h1><p>served by busybox httpd</p></body></html>\n"
    layer2 = [Entry("etc", "dir", mode=0o755), Entry("etc/passwd", data=passwd.encode()),
              Entry("etc/group", data=group.encode()), Entry("etc/hostname", data=b"busybox\n"),
              Entry("tmp", "dir", mode=0o1777), Entry("root", "dir", mode=0o700),
              Entry("home", "dir", mode=0o755), Entry("var", "dir", mode=0o755),
              Entry("var/www", "dir", mode=0o755), Entry("var/www/index.html", data=index.encode())]
    return [tar_layer(layer1), tar_layer(layer2)]


BUSYBOX_CONFIG = {
    "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    "Cmd": ["sh"],
    "Labels": {"org.opencontainers.image.description": "busybox from Debian busybox-static, built by Skiff"},
}


def build(*, out: Path, tags: list[str], busybox: Path = Path("/bin/busybox")) -> dict:
    """Write the busybox image into the OCI layout `out`; returns its manifest descriptor."""
    writer = LayoutWriter(out)
    desc = writer.image(busybox_layers(busybox), config=BUSYBOX_CONFIG)
    for tag in tags:
        writer.tag(desc, tag)
    writer.finish()
    return desc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write an OCI layout directory here")
    parser.add_argument("--archive", type=Path, help="write an OCI archive tarball here")
    parser.add_argument("--tag", action="append", help="image name (repeatable); default: "
                        "skiff.local/busybox:<version>, skiff.local/busybox:latest, busybox:<version>")
    parser.add_argument("--busybox", type=Path, default=Path("/bin/busybox"),
                        help="a static busybox binary (Debian package busybox-static)")
    args = parser.parse_args(argv)
    if not args.out and not args.archive:
        parser.error("give --out DIR and/or --archive FILE")
    if not args.busybox.is_file():
        parser.error(f"{args.busybox}: not found; install Debian's busybox-static")
    version = busybox_version(args.busybox)
    tags = args.tag or [f"skiff.local/busybox:{version}", "skiff.local/busybox:latest",
                        f"docker.io/library/busybox:{version}"]
    out = args.out
    if out is None:
        import tempfile
        out = Path(tempfile.mkdtemp(prefix="busybox-oci-"))
    desc = build(out=out, tags=tags, busybox=args.busybox)
    if args.archive:
        write_archive(out, args.archive)
        if args.out is None:
            import shutil
            shutil.rmtree(out)
    print(json.dumps({"digest": desc["digest"], "tags": tags, "layout": str(args.out) if args.out else None,
                      "archive": str(args.archive) if args.archive else None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
