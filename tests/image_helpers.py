"""Helpers for image tests: the deploy/ image builder as a module, and tree snapshots.

deploy/build-test-image.py writes OCI layouts with nothing but the standard
library; tests reuse its `tar_layer`, `Entry` and `LayoutWriter` to build the
images they need (several platforms, whiteouts, hostile layers).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def load_builder():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("build_test_image", REPO / "deploy" / "build-test-image.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_test_image"] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


builder = load_builder()
Entry = builder.Entry
tar_layer = builder.tar_layer
LayoutWriter = builder.LayoutWriter


def snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every path under `root` (not following symlinks) with its mode, size and link target."""
    result = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            target = os.readlink(path) if os.path.islink(path) else ""
            result[os.path.relpath(path, root)] = (st.st_mode, st.st_size, target)
    return result
