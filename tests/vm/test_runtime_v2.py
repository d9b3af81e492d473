"""The container runtime on pure cgroup v2, for real: the node tests, run inside a guest.

This machine runs cgroup v1, where tests/node/ exercises the v1 driver. Here pytest runs
inside a guest booted with `cgroup_no_v1=all` (same repo and venv, over 9p) on a selection of
those tests: the v2 driver against the kernel (limits written, controllers handed down,
`cgroup.kill` of a subtree, OOM kills and pids.max counted), and the runtime on top of it
(OOMKilled with its reason, a fork bomb held by the pids limit, exec joining the container's
cgroup, containers surviving a SIGKILLed agent and re-adopted). The whole of tests/node's
runtime tests pass there too (91 tests, ~13 min under TCG); CI runs this selection.
"""

from __future__ import annotations

import re
import time

from vm.machines import Machine

SELECTION = [
    "tests/node/test_cgroups_v2.py",
    "tests/node/test_cgroups_kernel.py",
    "tests/node/test_runtime_limits.py",
    "tests/node/test_runtime_readoption.py",
    "tests/node/test_runtime_exec.py",
]


def test_runtime_node_tests_pass_in_a_guest_on_cgroup_v2(machine: Machine) -> None:
    started = time.monotonic()
    result = machine.python("-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs", *SELECTION,
                            timeout=1200)
    took = time.monotonic() - started
    print(f"\nin {machine.name}: {result.stdout.strip().splitlines()[-1]} ({took:.0f}s with startup)")
    assert result.rc == 0, result.stdout[-6000:] + result.stderr[-3000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary) and "skipped" not in summary, summary
