"""The client config file: where the API server is (and, later, credentials).

    # ~/.skiff/config
    server: 127.0.0.1:6443
    namespace: default        # optional: the namespace used when -n is not given

The path is `--config`, else `$SKIFF_CONFIG`, else `~/.skiff/config`; a missing
file means the defaults. `--server` overrides the file's `server`. Keys this
version does not know are kept when `ctl cluster up` rewrites the file, so a
newer ctl's settings survive.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cli.errors import CliError

DEFAULT_SERVER = "127.0.0.1:6443"
DEFAULT_NAMESPACE = "default"
ENV_VAR = "SKIFF_CONFIG"


def config_path(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return Path("~/.skiff/config").expanduser()


@dataclass(frozen=True)
class ClientConfig:
    path: Path
    server: str = DEFAULT_SERVER
    namespace: str = DEFAULT_NAMESPACE


def read_raw(path: Path) -> dict[str, Any]:
    """The file's mapping; {} when it does not exist. Bad YAML is a CliError naming the file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise CliError(f"cannot read client config {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" line {line + 1}:" if line is not None else ""
        raise CliError(f"cannot parse client config {path}:{where} {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CliError(f"client config {path} must be a mapping (server: host:port), got {type(data).__name__}")
    return data


def load(path: Path) -> ClientConfig:
    data = read_raw(path)
    values: dict[str, str] = {}
    for key in ("server", "namespace"):
        if key in data and data[key] is not None:
            if not isinstance(data[key], str) or not data[key].strip():
                raise CliError(f"client config {path}: {key}: must be a non-empty string, got {data[key]!r}")
            values[key] = data[key].strip()
    return ClientConfig(path=path, **values)


def save_server(path: Path, server: str) -> None:
    """Set `server:` in the config file, keeping its other keys; written atomically, mode 0600."""
    data = read_raw(path)
    data["server"] = server
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config-")
    try:
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(data, f, default_flow_style=False, sort_keys=False)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
