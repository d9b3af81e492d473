"""The client config file: clusters, users and contexts, shaped like kubeconfig.

    # ~/.skiff/config (written by `ctl cluster up`; the format: controlplane/client/kubeconfig.py)
    apiVersion: v1
    kind: Config
    clusters: [{name: skiff-local, cluster: {server: 127.0.0.1:6443, certificate-authority-data: ...}}]
    users: [{name: kubernetes-admin, user: {client-certificate-data: ..., client-key-data: ...}}]
    contexts: [{name: kubernetes-admin@skiff-local, context: {cluster: skiff-local, user: kubernetes-admin}}]
    current-context: kubernetes-admin@skiff-local

The path is `--config`, else `$SKIFF_CONFIG`, else `~/.skiff/config`; a missing file means
the defaults (127.0.0.1:6443, no credential). `--context` picks a context for one command,
`--server` overrides its server (the CA and user stay), and `ctl config use-context` changes
the current one. An older file with top-level `server:` / `namespace:` still works; keys
this version does not know are kept when ctl rewrites the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cli.errors import CliError
from controlplane.client import kubeconfig
from controlplane.client.credentials import Credentials

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
    credentials: Credentials | None = None
    context: str | None = None


def read_raw(path: Path) -> dict[str, Any]:
    """The file's mapping; {} when it does not exist. Bad YAML is a CliError naming the file."""
    try:
        return kubeconfig.read(path)
    except kubeconfig.ConfigError as exc:
        raise CliError(str(exc)) from None


def load(path: Path, *, context: str | None = None) -> ClientConfig:
    data = read_raw(path)
    try:
        resolved = kubeconfig.resolve(data, path, context=context)
    except kubeconfig.ConfigError as exc:
        raise CliError(str(exc)) from None
    if resolved is not None:
        return ClientConfig(path=path, server=resolved.server, namespace=resolved.namespace or DEFAULT_NAMESPACE,
                            credentials=resolved.credentials, context=resolved.context)
    values: dict[str, str] = {}
    for key in ("server", "namespace"):
        if key in data and data[key] is not None:
            if not isinstance(data[key], str) or not data[key].strip():
                raise CliError(f"client config {path}: {key}: must be a non-empty string, got {data[key]!r}")
            values[key] = data[key].strip()
    return ClientConfig(path=path, **values)


def save(path: Path, data: dict[str, Any]) -> None:
    """Write the whole file atomically, mode 0600 (it holds keys)."""
    kubeconfig.write(path, data)


def add_cluster(path: Path, entry: dict[str, Any]) -> None:
    """Merge a one-cluster config (e.g. a control plane's admin.conf) into the file and make
    its context current, keeping every other cluster, user, context and key."""
    save(path, kubeconfig.merge(read_raw(path), entry))


def use_context(path: Path, name: str) -> None:
    data = read_raw(path)
    names = kubeconfig.context_names(data)
    if name not in names:
        raise CliError(f'no context exists with the name: "{name}" in {path}'
                       + (f" (contexts: {', '.join(names)})" if names else " (it has no contexts)"))
    data["current-context"] = name
    save(path, data)


def redacted(data: dict[str, Any]) -> dict[str, Any]:
    """The file as `ctl config view` shows it: key material and tokens replaced, as kubectl does."""
    out = dict(data)
    for section, field in (("clusters", "cluster"), ("users", "user")):
        entries = []
        for entry in data.get(section) or []:
            if isinstance(entry, dict) and isinstance(entry.get(field), dict):
                body = {k: ("DATA+OMITTED" if k.endswith("-data") and k.startswith("certificate-authority")
                            else "REDACTED" if k.endswith("-data") or k == "token" else v)
                        for k, v in entry[field].items()}
                entry = {**entry, field: body}
            entries.append(entry)
        if section in data:
            out[section] = entries
    return out
