"""`skiff-controlplane backup FILE` and `skiff-controlplane restore FILE`: etcd snapshots.

    skiff-controlplane backup FILE [--state-dir DIR | --etcd-endpoints a,b,c]
    skiff-controlplane restore FILE --state-dir DIR

A backup is an etcd snapshot taken through the maintenance API of a running etcd
(the embedded one of the control plane whose state directory is given, or any
member of an external cluster): every object of the cluster, consistent at one
revision. It is written to FILE.partial and renamed when complete, so FILE is
never half a snapshot.

A restore turns a snapshot into the embedded etcd's data directory of a fresh
state directory (`etcdctl snapshot restore`, from Debian's etcd-client), with
the member name and peer URL the embedded etcd will use; starting
`skiff-controlplane --state-dir DIR` then serves the restored cluster. It
refuses a state directory that already holds etcd data. Restoring an external
etcd cluster is etcd's own procedure (docs/OPERATIONS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

from controlplane.etcd import EmbeddedEtcd, EtcdMissing

COMMANDS = ("backup", "restore")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="skiff-controlplane", description="Back up or restore the cluster's etcd.")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("backup", help="write an etcd snapshot of the running cluster to FILE")
    b.add_argument("file", type=Path, metavar="FILE")
    b.add_argument("--state-dir", type=Path, default=Path(os.environ.get("SKIFF_STATE_DIR", "~/.skiff/controlplane")),
                   help="state directory of the control plane whose embedded etcd to snapshot")
    b.add_argument("--etcd-endpoints", default="", help="comma-separated host:port of an external etcd cluster")
    r = sub.add_parser("restore", help="make a fresh state directory's etcd data from a snapshot FILE")
    r.add_argument("file", type=Path, metavar="FILE")
    r.add_argument("--state-dir", type=Path, required=True, help="the fresh state directory to restore into")
    return p.parse_args(argv)


def embedded_endpoint(state_dir: Path) -> str:
    ports = state_dir / "etcd.json"
    try:
        return f"127.0.0.1:{json.loads(ports.read_text())['client']}"
    except (OSError, ValueError, KeyError):
        raise SystemExit(f"error: --state-dir: {state_dir} holds no embedded etcd ({ports} is missing); "
                         "give the control plane's state directory, or --etcd-endpoints") from None


async def backup(file: Path, endpoints: list[str]) -> tuple[int, int]:
    """Snapshot etcd into file; returns (bytes, revision)."""
    from controlplane.main import connect_etcd
    try:
        client = await connect_etcd(endpoints, timeout=10)
    except RuntimeError as exc:
        raise SystemExit(f"error: {exc}; is the control plane running?") from None
    partial = file.with_name(file.name + ".partial")
    try:
        revision = (await client.get_prefix(b"/skiff/__revision__/", keys_only=True)).header.revision
        with open(partial, "wb") as out:
            await client.snapshot(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, file)
    finally:
        partial.unlink(missing_ok=True)
        await client.close()
    return file.stat().st_size, revision


def restore(file: Path, state_dir: Path) -> Path:
    """etcdctl snapshot restore into state_dir's embedded etcd data directory."""
    if not file.is_file():
        raise SystemExit(f"error: FILE: {file} is not a file")
    etcdctl = shutil.which("etcdctl")
    if not etcdctl:
        raise SystemExit("error: etcdctl was not found on PATH; install it with `apt-get install etcd-client`")
    state_dir = state_dir.expanduser()
    try:
        etcd = EmbeddedEtcd(state_dir)
    except EtcdMissing as exc:
        raise SystemExit(f"error: {exc}") from None
    if etcd.data_dir.exists() and any(etcd.data_dir.iterdir()):
        raise SystemExit(f"error: --state-dir: {etcd.data_dir} already holds etcd data; restore into a fresh "
                         "state directory (or move that one away first)")
    if etcd.data_dir.exists():
        etcd.data_dir.rmdir()   # etcdctl creates it
    peer = f"http://127.0.0.1:{etcd.peer_port}"
    result = subprocess.run([etcdctl, "snapshot", "restore", str(file), "--data-dir", str(etcd.data_dir),
                             "--name", "skiff", "--initial-cluster", f"skiff={peer}",
                             "--initial-advertise-peer-urls", peer],
                            capture_output=True, text=True, env={**os.environ, "ETCDCTL_API": "3"})
    if result.returncode != 0:
        raise SystemExit(f"error: etcdctl snapshot restore failed: {result.stderr.strip() or result.stdout.strip()}")
    os.chmod(etcd.data_dir, 0o700)
    return etcd.data_dir


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.command == "backup":
        endpoints = ([e.strip() for e in args.etcd_endpoints.split(",") if e.strip()] if args.etcd_endpoints
                     else [embedded_endpoint(args.state_dir.expanduser())])
        size, revision = asyncio.run(backup(args.file, endpoints))
        print(f"backed up etcd at revision {revision} to {args.file} ({size} bytes)")
    else:
        data_dir = restore(args.file, args.state_dir)
        print(f"restored {args.file} into {data_dir}; start the control plane with "
              f"`skiff-controlplane --state-dir {args.state_dir}`")
    return 0
