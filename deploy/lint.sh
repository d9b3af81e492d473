#!/usr/bin/env bash
# The static checks deploy/test.sh (and so .ci/run) runs before the tests; each fails the run:
#
#   lint-imports   the layering contracts of docs/ARCHITECTURE.md §6 ([tool.importlinter] in pyproject.toml)
#   ruff check     the lint rule set of [tool.ruff] (bugs and likely bugs, not style)
#   mypy           types: strict for the packages [tool.mypy] names, the rest read for their types only
#
# tests/unit/test_lint.py proves each of them fails on a deliberate violation.
set -uo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
failed=0
echo "lint-imports:"; "$bin/lint-imports" --no-cache >/tmp/skiff-lint-imports.$$ 2>&1 \
  && tail -1 /tmp/skiff-lint-imports.$$ || { cat /tmp/skiff-lint-imports.$$; failed=1; }
rm -f /tmp/skiff-lint-imports.$$
echo "ruff:"; "$bin/ruff" check --quiet . || failed=1
echo "mypy:"; "$bin/mypy" || failed=1
exit "$failed"
