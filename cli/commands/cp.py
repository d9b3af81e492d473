"""`ctl cp`: copy files and directories to and from containers, through exec and tar (as kubectl cp).

    ctl cp ./app.conf web-0:/etc/app/app.conf
    ctl cp ./site web:/usr/share/www            (a directory, copied as /usr/share/www)
    ctl cp -n dev web:/var/log/app.log ./app.log
    ctl cp web:/tmp/out ./out -c sidecar

To a container: the local file or directory is packed into a tar archive here and
unpacked by `tar -xf - -C DIR` run in the container (exec with stdin), named as the
destination says. From a container: `tar -cf - -C DIR NAME` runs there and its output
is unpacked here; members that would land outside the destination (absolute paths,
`..`, links pointing out) are refused, as kubectl refuses them. The container's image
needs `tar` (kubectl's rule too); a failure there is reported with tar's own message.
"""

from __future__ import annotations

import io
import posixpath
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

import click

from cli.errors import CliError
from cli.session import Session, global_options, run_async, session


def split_remote(spec: str) -> tuple[str, str] | None:
    """`POD:PATH` → (pod, path); None for a local path (`./a:b` and `/x:y` stay local)."""
    if spec.startswith(("/", ".")) or ":" not in spec:
        return None
    pod, _, path = spec.partition(":")
    if "/" in pod and not pod.startswith(("pod/", "pods/", "po/")):
        return None
    return pod.split("/", 1)[-1], path


async def run_in(s: Session, pod: str, container: str, command: list[str], stdin: bytes | None) -> bytes:
    """Run `command` in the container; its stdout, or CliError with its stderr."""
    out, err = bytearray(), bytearray()
    code = 0
    async with s.client() as c:
        stream = c.exec_session(namespace=s.namespace, pod=pod, container=container, command=command,
                                stdin=stdin is not None)
        if stdin is not None:
            for i in range(0, len(stdin), 256 * 1024):
                stream.send_stdin(stdin[i:i + 256 * 1024])
            stream.close_stdin()
        async for kind, data in stream.outputs():
            if kind == "stdout":
                out += data
            elif kind == "stderr":
                err += data
            else:
                code = int(data)
    if code != 0:
        raise CliError(f"{' '.join(command[:2])} in {pod} failed (exit {code}): "
                       f"{err.decode(errors='replace').strip()}")
    return bytes(out)


def pack(source: Path, name: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(str(source), arcname=name)
    return buf.getvalue()


def unpack(data: bytes, name: str, dest: Path) -> None:
    """Unpack the archive of `name` as `dest`, refusing members that would leave it."""
    with tempfile.TemporaryDirectory(prefix="ctl-cp-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
            for member in tar.getmembers():
                parts = Path(member.name).parts
                if member.name.startswith("/") or ".." in parts:
                    raise CliError(f"refusing to copy {member.name!r}: it would be written outside {dest}")
            try:
                tar.extractall(tmp, filter="data")
            except tarfile.FilterError as exc:
                raise CliError(f"refusing to copy: {exc}") from None
        got = Path(tmp) / name
        if not got.exists() and not got.is_symlink():
            raise CliError(f"{name}: nothing was copied")
        if dest.is_dir() and not got.is_dir():
            dest = dest / name
        if got.is_dir():
            shutil.copytree(got, dest, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(got, dest, follow_symlinks=False)


@click.command()
@click.argument("source")
@click.argument("destination")
@click.option("-c", "--container", default="", help="Container name (needed when the pod has several).")
@global_options
def cp(source: str, destination: str, container: str) -> int:
    """Copy files and directories to and from containers (POD:PATH)."""
    src, dst = split_remote(source), split_remote(destination)
    if (src is None) == (dst is None):
        raise CliError("one of source or destination must be a remote file specification (POD:PATH), "
                       "the other a local path")
    s = session()
    if dst is not None:                                     # local → container
        local = Path(source)
        if not local.exists():
            raise CliError(f"{source} doesn't exist in local filesystem")
        pod, path = dst
        if not path:
            raise CliError("the destination path in the container must not be empty")
        path = path.rstrip("/") or "/"
        parent, name = posixpath.split(path)
        if not name:
            raise CliError(f"cannot copy onto {path} itself; give a path under it")
        archive = pack(local, name)
        run_async(run_in(s, pod, container, ["tar", "-xmf", "-", "-C", parent or "/"], archive))
        return 0
    pod, path = src                                         # container → local
    if not path:
        raise CliError("the source path in the container must not be empty")
    parent, name = posixpath.split(path.rstrip("/") or "/")
    if not name:
        raise CliError("cannot copy the container's root directory; give a path under it")
    data = run_async(run_in(s, pod, container, ["tar", "-cf", "-", "-C", parent or "/", name], None))
    unpack(data, name, Path(destination))
    sys.stdout.flush()
    return 0
