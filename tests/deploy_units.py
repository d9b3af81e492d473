"""Helpers for tests of deploy/: run install.sh's roles and start a unit's service without
systemd (this machine, and the VM bed's guests, run no systemd).

`exec_start(unit)` is the unit's ExecStart as argv, with its EnvironmentFile's variables
expanded the way systemd does for `$VAR` (split into words) and `${VAR}` (one word).
The VM bed uses it too: install the agent role in a guest (`install.sh --role agent
--server ... --no-start`), then start `exec_start(<guest>/etc/systemd/system/skiff-agent.service)`.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def install(*args: str, env: dict[str, str] | None = None, timeout: float = 600,
            netns: str | None = None) -> subprocess.CompletedProcess:
    """bash deploy/install.sh ARGS (inside a network namespace if given)."""
    argv = ["bash", str(REPO / "deploy" / "install.sh"), *args]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    return subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **(env or {})},
                          timeout=timeout)


def unit_settings(unit: Path) -> dict[str, list[str]]:
    """The [Service] section's settings, each key with every value it was given."""
    out: dict[str, list[str]] = {}
    section = ""
    for line in unit.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line:
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def environment(unit: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    settings = unit_settings(unit)
    for assignment in settings.get("Environment", []):
        for word in shlex.split(assignment):
            key, _, value = word.partition("=")
            env[key] = value
    for name in settings.get("EnvironmentFile", []):
        path = Path(name.lstrip("-"))
        if not path.exists():
            if name.startswith("-"):
                continue
            raise FileNotFoundError(path)
        for line in path.read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                key, _, value = line.partition("=")
                env[key.strip()] = " ".join(shlex.split(value))
    return env


def exec_start(unit: Path) -> list[str]:
    env = environment(unit)
    (command,) = unit_settings(unit)["ExecStart"]
    argv: list[str] = []
    for word in command.split():
        if m := re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word):
            argv += env.get(m.group(1), "").split()
        else:
            argv.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), word))
    return argv
