"""The layering rules of the codebase, checked on every run (see docs/ARCHITECTURE.md §6):

- `api/` imports no component (it is the shared vocabulary);
- `cli/` uses only the client and `api/` (no storage, no components, no wire messages);
- scheduler plugins never touch storage or the client: a snapshot in, a verdict out;
- the agent reaches the control plane only through the client — and the libraries both ends of
  mutual TLS share: certificates (`controlplane.pki.certs`, `.anonymous`) and the authenticator
  that reads a peer's certificate (`controlplane.auth.authn`, `.identity`). Never the CA itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def imports(directory: str) -> list[tuple[str, str]]:
    """(file, imported module) for every import in the package, including function-level ones."""
    out = []
    for path in sorted((REPO / directory).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                out += [(str(path.relative_to(REPO)), alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                out.append((str(path.relative_to(REPO)), node.module))
    return out


def offenders(directory: str, forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    return [f"{file}: {module}" for file, module in imports(directory)
            if module.startswith(forbidden) and not module.startswith(allowed)]


@pytest.mark.parametrize("directory, forbidden, allowed", [
    ("api", ("controlplane", "agent", "cli", "protos"), ()),
    ("cli", ("controlplane", "agent", "protos"), ("controlplane.client",)),
    ("controlplane/scheduler/plugins", ("controlplane.storage", "controlplane.client", "controlplane.apiserver"), ()),
    ("agent", ("controlplane",), ("controlplane.client", "controlplane.pki.certs", "controlplane.pki.anonymous",
                                  "controlplane.auth.authn", "controlplane.auth.identity")),
])
def test_layering(directory: str, forbidden: tuple[str, ...], allowed: tuple[str, ...]):
    assert offenders(directory, forbidden, allowed) == []
