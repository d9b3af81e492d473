"""Client config files shaped like kubeconfig: clusters, users, contexts, current-context.

    apiVersion: v1
    kind: Config
    clusters:
    - name: skiff
      cluster:
        server: 127.0.0.1:6443                 # http://host:port: a server run with --insecure
        certificate-authority-data: <base64 PEM>   # or certificate-authority: /path/ca.crt
    users:
    - name: kubernetes-admin
      user:
        client-certificate-data: <base64 PEM>      # or client-certificate: /path
        client-key-data: <base64 PEM>              # or client-key: /path
        token: <bearer token>                      # or token-file: /path
    contexts:
    - name: kubernetes-admin@skiff
      context: {cluster: skiff, user: kubernetes-admin, namespace: default}
    current-context: kubernetes-admin@skiff

`ctl` reads it (cli/config.py), `skiff-controlplane` writes `admin.conf` and
`controlplane.conf` in its state directory, and the standalone scheduler and controller
manager take one with `--kubeconfig`. Relative paths are relative to the file. Errors name
the file and the field. An older file with only top-level `server:` / `namespace:` still works.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from controlplane.client.credentials import Credentials, split_target
from controlplane.client.privatefile import write_private


class ConfigError(Exception):
    """A client config that cannot be used; the message names the file and field."""


@dataclass(frozen=True)
class Resolved:
    server: str
    credentials: Credentials
    namespace: str | None
    context: str | None


def read(path: Path) -> dict[str, Any]:
    """The file's mapping; {} when it does not exist."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read client config {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" line {line + 1}:" if line is not None else ""
        raise ConfigError(f"cannot parse client config {path}:{where} {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"client config {path} must be a mapping, got {type(data).__name__}")
    return data


def write(path: Path, data: dict[str, Any]) -> None:
    """Atomically, mode 0600 from the start (it holds keys)."""
    write_private(path, yaml.safe_dump(data, default_flow_style=False, sort_keys=False).encode())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def build(*, cluster: str, server: str, ca: bytes | None, user: str, cert: bytes | None = None,
          key: bytes | None = None, token: str | None = None, namespace: str | None = None) -> dict[str, Any]:
    """A config with one cluster, one user and their context, which is current."""
    cluster_entry: dict[str, Any] = {"server": server}
    if ca:
        cluster_entry["certificate-authority-data"] = _b64(ca)
    user_entry: dict[str, Any] = {}
    if cert:
        user_entry["client-certificate-data"] = _b64(cert)
    if key:
        user_entry["client-key-data"] = _b64(key)
    if token:
        user_entry["token"] = token
    context_name = f"{user}@{cluster}"
    context: dict[str, Any] = {"cluster": cluster, "user": user}
    if namespace:
        context["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": cluster, "cluster": cluster_entry}],
            "users": [{"name": user, "user": user_entry}],
            "contexts": [{"name": context_name, "context": context}],
            "current-context": context_name}


def merge(into: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """`into` with `new`'s clusters, users and contexts added (replacing same names) and
    `new`'s current-context made current; other keys of `into` are kept."""
    out = dict(into)
    out.setdefault("apiVersion", "v1")
    out.setdefault("kind", "Config")
    for section in ("clusters", "users", "contexts"):
        fresh = {e["name"]: e for e in new.get(section) or []}
        kept = [e for e in out.get(section) or [] if not (isinstance(e, dict) and e.get("name") in fresh)]
        out[section] = kept + list(fresh.values())
    if new.get("current-context"):
        out["current-context"] = new["current-context"]
    out.pop("server", None)   # the legacy single-server form is replaced by the context
    return out


def _named(data: dict[str, Any], section: str, name: str, path: Path) -> dict[str, Any]:
    entries = data.get(section) or []
    if not isinstance(entries, list):
        raise ConfigError(f"client config {path}: {section}: must be a list")
    for entry in entries:
        if isinstance(entry, dict) and entry.get("name") == name:
            body = entry.get(section[:-1])
            if not isinstance(body, dict):
                raise ConfigError(f"client config {path}: {section}[{name}].{section[:-1]}: must be a mapping")
            return body
    raise ConfigError(f"client config {path}: {section[:-1]} {name!r} not found")


def _pem(body: dict[str, Any], field: str, path: Path, where: str) -> bytes | None:
    """field-data (base64) or field (a file path) of an entry."""
    if body.get(f"{field}-data"):
        try:
            return base64.b64decode(body[f"{field}-data"], validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise ConfigError(f"client config {path}: {where}.{field}-data: not valid base64") from None
    if body.get(field):
        file = Path(str(body[field])).expanduser()
        file = file if file.is_absolute() else path.parent / file
        try:
            return file.read_bytes()
        except OSError as exc:
            raise ConfigError(f"client config {path}: {where}.{field}: cannot read {file}: {exc.strerror}") from None
    return None


def context_names(data: dict[str, Any]) -> list[str]:
    return [e["name"] for e in data.get("contexts") or [] if isinstance(e, dict) and "name" in e]


def resolve(data: dict[str, Any], path: Path, *, context: str | None = None) -> Resolved | None:
    """Server, credentials and namespace of `context` (else the current one); None when the
    file names no context (legacy form or empty: the caller uses its defaults)."""
    name = context or data.get("current-context")
    if not name:
        if context_names(data):
            raise ConfigError(f"client config {path}: current-context is not set; "
                              f"choose one with `ctl config use-context NAME`")
        return None
    ctx = _named(data, "contexts", name, path)
    cluster = _named(data, "clusters", str(ctx.get("cluster", "")), path)
    user = _named(data, "users", str(ctx.get("user", "")), path) if ctx.get("user") else {}
    server = cluster.get("server")
    if not isinstance(server, str) or not server.strip():
        raise ConfigError(f"client config {path}: clusters[{ctx.get('cluster')}].cluster.server: "
                          f"must be host:port")
    server = server.strip()
    if split_target(server)[1]:
        credentials = Credentials.plaintext()
    else:
        token = user.get("token")
        if not token and user.get("token-file"):
            try:
                token = Path(str(user["token-file"])).expanduser().read_text().strip()
            except OSError as exc:
                raise ConfigError(f"client config {path}: users[{ctx.get('user')}].user.token-file: "
                                  f"{exc.strerror}") from None
        where = f"users[{ctx.get('user')}].user"
        credentials = Credentials(ca=_pem(cluster, "certificate-authority", path, f"clusters[{ctx.get('cluster')}].cluster"),
                                  cert=_pem(user, "client-certificate", path, where),
                                  key=_pem(user, "client-key", path, where), token=token or None)
        if not credentials.ca:
            raise ConfigError(f"client config {path}: clusters[{ctx.get('cluster')}].cluster: "
                              f"certificate-authority(-data) is required for TLS (or write the server as http://...)")
    namespace = ctx.get("namespace")
    return Resolved(server, credentials, str(namespace) if namespace else None, name)


def load(path: Path, *, context: str | None = None) -> Resolved:
    """For components (`--kubeconfig`): the file must exist and name a context."""
    resolved = resolve(read(path), path, context=context)
    if resolved is None:
        raise ConfigError(f"client config {path} does not exist or names no context")
    return resolved


# ---- for components run on their own (scheduler, controller manager, hollow nodes) ----

def add_arguments(parser: Any) -> None:
    """`--kubeconfig FILE` (server and credential) and `--server` to override its server."""
    parser.add_argument("--kubeconfig", type=Path, default=os.environ.get("SKIFF_KUBECONFIG") or None,
                        help="client config with the server and credential, e.g. the control plane's "
                             "controlplane.conf (default: $SKIFF_KUBECONFIG)")
    parser.add_argument("--server", default=os.environ.get("SKIFF_SERVER", ""),
                        help="API server address host:port (default: the kubeconfig's; "
                             "http://host:port for a server run with --insecure)")


def from_arguments(args: Any) -> Resolved:
    """The server and credentials `add_arguments` describe; ConfigError names what is missing."""
    if args.kubeconfig:
        resolved = load(Path(args.kubeconfig).expanduser())
        if args.server:
            resolved = Resolved(args.server, resolved.credentials, resolved.namespace, resolved.context)
        return resolved
    if args.server and split_target(args.server)[1]:
        return Resolved(args.server, Credentials.plaintext(), None, None)
    raise ConfigError("no credentials: give --kubeconfig FILE (the control plane writes controlplane.conf and "
                      "admin.conf in its state directory), or --server http://HOST:PORT for an --insecure server")


def from_arguments_or_exit(args: Any) -> Resolved:
    """`from_arguments`, or the reason on stderr and exit status 2 (a component's bad command line)."""
    try:
        return from_arguments(args)
    except ConfigError as exc:
        import sys
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
