"""The static checks deploy/lint.sh runs (and so .ci/run) fail on a violation, each on a deliberate one.

A copy of the source packages in a temp dir gets one offending module; the check run there
with this repository's pyproject.toml must fail naming it. The real tree is checked by
deploy/lint.sh itself before the tests run.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PACKAGES = ("api", "controlplane", "agent", "cli", "protos")


def copy_tree(tmp: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(REPO / "pyproject.toml", tmp / "pyproject.toml")
    return tmp


def run(tool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / tool), *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(cwd)})


def test_lint_imports_fails_when_api_imports_a_component(tmp_path: Path) -> None:
    tree = copy_tree(tmp_path)
    clean = run("lint-imports", "--no-cache", cwd=tree)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    (tree / "api" / "violation.py").write_text('"""A deliberate layering violation."""\nimport agent.podsync\n')
    broken = run("lint-imports", "--no-cache", cwd=tree)
    assert broken.returncode == 1
    assert "api/ imports no component (the shared vocabulary) BROKEN" in " ".join(broken.stdout.split())
    assert "api.violation -> agent.podsync" in broken.stdout


def test_lint_imports_fails_when_network_imports_images(tmp_path: Path) -> None:
    tree = copy_tree(tmp_path)
    (tree / "agent" / "network" / "violation.py").write_text('"""Deliberate."""\nimport agent.images.store\n')
    broken = run("lint-imports", "--no-cache", cwd=tree)
    assert broken.returncode == 1
    assert "agent.network.violation -> agent.images.store" in broken.stdout


def test_ruff_fails_on_an_undefined_name(tmp_path: Path) -> None:
    shutil.copy2(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "violation.py").write_text('"""Deliberate."""\n\n\ndef f() -> int:\n    return undefined_name\n')
    broken = run("ruff", "check", "--no-cache", "violation.py", cwd=tmp_path)
    assert broken.returncode == 1
    assert "F821" in broken.stdout and "undefined_name" in broken.stdout


def test_mypy_is_strict_in_api(tmp_path: Path) -> None:
    shutil.copy2(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "__init__.py").write_text("")
    (tmp_path / "api" / "violation.py").write_text('"""Deliberate."""\n\n\ndef f(x):\n    return x\n')
    broken = run("mypy", "--no-incremental", "api/violation.py", cwd=tmp_path)
    assert broken.returncode == 1
    assert "Function is missing a type annotation  [no-untyped-def]" in broken.stdout
