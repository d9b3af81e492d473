#!/usr/bin/env bash
# Install what the tests need, then run them all (README's test command; CI runs it too).
#
# Node tests need root (namespaces, cgroups, netns) and skip with a reason otherwise.
# Extra arguments go to pytest, e.g. deploy/test.sh tests/unit -x
set -uo pipefail
cd "$(dirname "$0")/.."
bash deploy/install.sh --test || exit 1

# Static checks first (pyproject.toml configures each; deploy/lint.sh says what they hold).
bash deploy/lint.sh || exit 1

# pytest exits 5 when it collected no tests: that is a failure here, not a pass.
.venv/bin/python -m pytest -q -p no:cacheprovider --durations=25 "${@:-tests}"
code=$?
if [ "$code" = 5 ]; then
  echo "error: no tests were collected" >&2
  exit 1
fi
exit "$code"
