"""Regenerate the committed gRPC stubs from protos/*.proto.

Usage: python -m protos.generate [--out DIR]

Stubs are written next to the sources by default. The import line that
grpcio-tools writes (`import skiff_pb2`) is rewritten to a package import
(`from protos import skiff_pb2`) so the stubs work from an installed package.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent


def generate(out_dir: Path) -> list[Path]:
    """Compile every .proto in protos/ into out_dir; return the files written."""
    from grpc_tools import protoc  # imported here: only needed by developers and tests

    out_dir.mkdir(parents=True, exist_ok=True)
    protos = sorted(PROTO_DIR.glob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    args = ["grpc_tools.protoc", f"-I{PROTO_DIR}", f"-I{include}",
            f"--python_out={out_dir}", f"--pyi_out={out_dir}", f"--grpc_python_out={out_dir}",
            *[str(p) for p in protos]]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed")
    written = []
    for proto in protos:
        stem = proto.stem
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            path = out_dir / f"{stem}{suffix}"
            text = path.read_text()
            text = re.sub(rf"^import {stem}_pb2 as", f"from protos import {stem}_pb2 as", text, flags=re.M)
            path.write_text(text)
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PROTO_DIR)
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
