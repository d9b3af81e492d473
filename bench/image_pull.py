#!/usr/bin/env python3
"""Benchmark: pull + unpack of a multi-layer image from a local registry, Skiff vs skopeo + umoci.

Starts Debian's docker-registry on 127.0.0.1, pushes a generated multi-layer
image (busybox layers from deploy/build-test-image.py, a layer of many small
files, a layer with one large file, a layer with whiteouts), then times, in
the same run and alternating:

* skiff:    ImageStore.pull() into an empty store (download, verify, unpack)
* baseline: `skopeo copy docker://… oci:DIR` then `umoci unpack` of that image

Each side starts from empty storage every round. The goal is skiff ≤ 1.0× the
baseline. Prints JSON on stdout and a short human summary on stderr.

    .venv/bin/python bench/image_pull.py [--rounds 5] [--small-files 3000] [--big-mb 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from agent.images import ImageStore  # noqa: E402
from image_helpers import Entry, LayoutWriter, builder, tar_layer  # noqa: E402
from registry_fixture import LocalRegistry, registry_available  # noqa: E402


def build_image(layout: Path, *, small_files: int, big_mb: int) -> dict:
    rng = __import__("random").Random(42)
    small = [Entry("usr", "dir"), Entry("usr/share", "dir")]
    for i in range(small_files):
        if i % 100 == 0:
            small.append(Entry(f"usr/share/d{i // 100}", "dir"))
        small.append(Entry(f"usr/share/d{i // 100}/f{i}.txt", data=rng.randbytes(rng.randint(100, 4000))))
    # Compressible but not trivially so: repeated random blocks.
    block = rng.randbytes(64 * 1024)
    big = [Entry("opt", "dir"), Entry("opt/big.bin", data=(block + rng.randbytes(4096)) * (big_mb * 15))]
    whiteouts = [Entry("usr/share/d0/.wh.f0.txt"), Entry("usr/share/d1/.wh..wh..opq"),
                 Entry("usr/share/d1/only.txt", data=b"only\n")]
    layers = builder.busybox_layers(Path("/bin/busybox")) + [tar_layer(small), tar_layer(big), tar_layer(whiteouts)]
    writer = LayoutWriter(layout)
    desc = writer.image(layers, config=builder.BUSYBOX_CONFIG)
    writer.tag(desc, "bench")
    writer.finish()
    return {"layers": len(layers), "uncompressed_bytes": sum(len(t) for t in layers),
            "compressed_bytes": sum(p.stat().st_size for p in (layout / "blobs/sha256").iterdir())}


def time_skiff(ref: str, work: Path) -> float:
    store_root = work / "skiff-store"
    started = time.perf_counter()

    async def pull() -> None:
        store = ImageStore(store_root)
        await store.pull(ref, policy="Always")

    asyncio.run(pull())
    elapsed = time.perf_counter() - started
    shutil.rmtree(store_root)
    return elapsed


def time_baseline(ref: str, work: Path) -> float:
    layout, bundle = work / "skopeo-oci", work / "umoci-bundle"
    unpack = ["umoci", "unpack"] + ([] if os.geteuid() == 0 else ["--rootless"])
    started = time.perf_counter()
    subprocess.run(["skopeo", "--insecure-policy", "copy", "--quiet", "--src-tls-verify=false",
                    f"docker://{ref}", f"oci:{layout}:bench"], check=True, capture_output=True)
    subprocess.run(unpack + ["--image", f"{layout}:bench", str(bundle)], check=True, capture_output=True)
    elapsed = time.perf_counter() - started
    shutil.rmtree(layout)
    shutil.rmtree(bundle)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description="pull + unpack: Skiff vs skopeo copy + umoci unpack")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--small-files", type=int, default=3000)
    parser.add_argument("--big-mb", type=int, default=32)
    args = parser.parse_args()
    reason = registry_available() or (None if shutil.which("umoci") else "umoci not installed")
    if reason:
        print(json.dumps({"benchmark": "image_pull", "skipped": reason}))
        return 1
    with tempfile.TemporaryDirectory(prefix="skiff-bench-") as tmp:
        work = Path(tmp)
        image = build_image(work / "layout", small_files=args.small_files, big_mb=args.big_mb)
        registry = LocalRegistry(work / "registry").start()
        try:
            registry.push(f"oci:{work / 'layout'}:bench", "bench/image:1")
            ref = f"{registry.host}/bench/image:1"
            time_skiff(ref, work)  # warm-up: page cache, imports, registry
            time_baseline(ref, work)
            skiff, baseline = [], []
            for _ in range(args.rounds):
                skiff.append(time_skiff(ref, work))
                baseline.append(time_baseline(ref, work))
        finally:
            registry.stop()
    result = {
        "benchmark": "image_pull",
        "image": image,
        "rounds": args.rounds,
        "skiff_seconds": {"median": statistics.median(skiff), "min": min(skiff), "all": skiff},
        "baseline_seconds": {"median": statistics.median(baseline), "min": min(baseline), "all": baseline},
        "baseline": "skopeo copy docker://… oci:… && umoci unpack",
        "ratio": statistics.median(skiff) / statistics.median(baseline),
        "goal_ratio": 1.0,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release()},
    }
    result["goal_met"] = result["ratio"] <= result["goal_ratio"]
    print(json.dumps(result, indent=1))
    print(f"image_pull: {image['layers']} layers, {image['compressed_bytes'] / 1e6:.1f} MB compressed, "
          f"{image['uncompressed_bytes'] / 1e6:.1f} MB unpacked", file=sys.stderr)
    print(f"  skiff pull+unpack       median {result['skiff_seconds']['median']:.3f}s", file=sys.stderr)
    print(f"  skopeo copy + umoci     median {result['baseline_seconds']['median']:.3f}s", file=sys.stderr)
    print(f"  ratio {result['ratio']:.2f}x (goal <= 1.0x): {'met' if result['goal_met'] else 'NOT met'}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
