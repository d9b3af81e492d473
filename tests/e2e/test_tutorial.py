"""docs/TUTORIAL.md, run as written: its commands are the test's commands.

The tutorial's convention (stated at its top), which this module reads:

- every ```sh block is run, in order, by one bash (so `POD=$(...)` set in one
  block is there in the next), from the repository's root, stopping at the first
  command that fails; blocks fenced otherwise (```text, ```yaml) are shown only;
- a command followed by `# ⇒ TEXT` is what the reader waits for: it is run again
  every half second until it succeeds and its output contains TEXT (a deadline,
  never a fixed sleep); other comments are explanations; a line ending in `\\`
  continues on the next.

What the test changes, so it never touches a cluster of the machine's own user:
HOME is the test's temp directory (the cluster's state ~/.skiff/cluster and the
client config ~/.skiff/config land there), `ctl` on PATH is this checkout's,
and `ctl cluster up` gets `--port` with a free port instead of the default 6443.
At the end the cluster is taken down whatever happened, and nothing may be left.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from procs import REPO, free_port

pytestmark = [pytest.mark.root, pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root: node network namespaces, containers")]

TUTORIAL = REPO / "docs" / "TUTORIAL.md"
EXPECT = re.compile(r"\s+#\s*⇒\s*(.+?)\s*$")
STEP_TIMEOUT = 240          # seconds a `# ⇒` step may take (generous: the machine is shared)

RUNNER = r"""
set -euo pipefail
wait_for_output() {  # WANT COMMAND: rerun COMMAND until it succeeds and prints WANT
  local want=$1 cmd=$2 out end=$((SECONDS + STEP_TIMEOUT))
  while :; do
    if out=$(eval "$cmd" 2>&1) && [[ $out == *"$want"* ]]; then printf '%s\n' "$out"; return 0; fi
    if (( SECONDS >= end )); then
      printf '%s\n' "$out"
      echo "TUTORIAL FAILED: no '$want' in the output of: $cmd (after ${STEP_TIMEOUT}s)" >&2
      return 1
    fi
    sleep 0.5
  done
}
"""


def commands(markdown: str) -> list[tuple[str, str | None]]:
    """The ```sh blocks' commands in order, each with the text its `# ⇒` comment waits for (or None)."""
    out: list[tuple[str, str | None]] = []
    for block in re.findall(r"^```sh\n(.*?)^```", markdown, flags=re.S | re.M):
        pending = ""
        for line in block.splitlines():
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            line, pending = pending + line, ""
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            want = EXPECT.search(line)
            command = line[:want.start()] if want else re.sub(r"\s+#\s.*$", "", line)
            out.append((command.strip(), want.group(1) if want else None))
    return out


def script(steps: list[tuple[str, str | None]], port: int) -> str:
    lines = [RUNNER]
    for command, want in steps:
        command = re.sub(r"\bctl cluster up\b", f"ctl cluster up --port {port}", command)
        lines.append(f"printf '\\n[%ss] $ %s\\n' \"$SECONDS\" {shlex.quote(command + (f'   # ⇒ {want}' if want else ''))}")
        lines.append(f"wait_for_output {shlex.quote(want)} {shlex.quote(command)}" if want else command)
    return "\n".join(lines) + "\n"


def test_the_tutorial_convention_is_read_as_documented() -> None:
    steps = commands("text\n```sh\nctl get pods   # ⇒ Running\nA=$(echo \\\n  x)  # why\n# only a comment\n```\n"
                     "```text\nnot run\n```\n")
    assert steps == [("ctl get pods", "Running"), ("A=$(echo    x)", None)]


def test_tutorial(tmp_path: Path) -> None:
    from e2e.test_multinode_network import leftovers
    steps = commands(TUTORIAL.read_text())
    assert any(c.startswith("ctl cluster up") for c, _ in steps), "the tutorial starts a cluster"
    home = tmp_path / "home"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    (home / ".skiff").mkdir(parents=True)
    shim = bin_dir / "ctl"
    shim.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m cli.main \"$@\"\n")
    shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKIFF_")}
    env.update(HOME=str(home), PATH=f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}", PYTHONPATH=str(REPO),
               STEP_TIMEOUT=str(STEP_TIMEOUT))
    cluster_dir = home / ".skiff" / "cluster"
    tag = hashlib.sha256(str(cluster_dir.resolve()).encode()).hexdigest()
    try:
        r = subprocess.run(["bash", "-c", script(steps, free_port())], cwd=REPO, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=1500)
        transcript = r.stdout
        print(transcript[-60000:])
        assert r.returncode == 0, f"the tutorial stopped:\n{transcript[-6000:]}"
        assert "Traceback" not in transcript, "a command printed a traceback where the reader would see it"
    finally:
        down = subprocess.run([str(shim), "cluster", "down"], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=240)
    assert down.returncode == 0, down.stderr
    assert leftovers(cluster_dir, [f"skiff-{tag[:6]}-", f"skb{tag[:6]}", f"skv{tag[:6]}"],
                     f"skiff-{tag[:8]}") == []
