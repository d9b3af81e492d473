"""No statement follows a `return`, `raise`, `continue` or `break` in the same block.

A three-way merge once put a module-level function between two methods of a class: every method
after it became dead code nested in that function (after its `return`), the class lost them, and
neither ruff nor mypy said a word — only an end-to-end test found `kubectl exec` answering
AttributeError. This check finds that shape (and plain dead code) in a second.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "agent", "cli", "controlplane", "bench", "tests", "deploy")
ENDS = (ast.Return, ast.Raise, ast.Continue, ast.Break)


def _dead_code(tree: ast.AST) -> list[int]:
    found = []
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody", "handlers"):
            block = getattr(node, field, None)
            if not isinstance(block, list):
                continue
            for first, after in zip(block, block[1:]):
                if isinstance(first, ENDS):
                    found.append(after.lineno)
    return found


def test_no_statement_after_return_raise_continue_or_break() -> None:
    problems = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if "_pb2" in path.name:
                continue
            for line in _dead_code(ast.parse(path.read_text(), str(path))):
                problems.append(f"{path.relative_to(REPO)}:{line}: unreachable (after return/raise/continue/break)")
    assert not problems, "\n".join(problems)


def test_the_check_sees_a_method_swallowed_by_a_merge() -> None:
    swallowed = "class Verbs:\n    def get(self):\n        return 1\n\ndef helper():\n    return 2\n\n    def logs(self):\n        pass\n"
    assert _dead_code(ast.parse(swallowed)) == [8]
