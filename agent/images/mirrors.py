"""Registry mirrors: which endpoints serve a registry's images, from the node's config file.

The file looks like k3s' ``registries.yaml``::

    mirrors:
      docker.io:
        endpoint: ["http://10.0.0.5:5000", "https://mirror.example.com"]
      registry.k8s.io:
        endpoint: ["http://10.0.0.5:5000"]
      "*":                          # every other registry
        endpoint: ["https://mirror.example.com"]
    configs:
      "10.0.0.5:5000":
        insecure: true              # plain http allowed (and TLS not verified)
        auth: {username: pull, password: secret}
      "mirror.example.com":
        tls: {ca_file: /etc/skiff/mirror-ca.pem, insecure_skip_verify: false}
    disable_default_endpoint: false # true: never fall back to the registry itself

An image keeps its usual name (``busybox`` is still ``docker.io/library/busybox``);
only where its bytes come from changes. Endpoints are tried in order, then the
registry itself, so air-gapped nodes — and tests — serve images from a local
registry. Plain ``http://`` is allowed only for endpoints whose host is listed
as insecure, and for loopback hosts (as Docker and containerd allow).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agent.images.auth import Credential, RegistryAuth, registry_key
from api.ipport import is_loopback
from agent.images.errors import ImageError

DOCKER_HUB_ENDPOINT = "https://registry-1.docker.io"


class MirrorConfigError(ImageError):
    """The registry config file is malformed; the message names the field."""


@dataclass(frozen=True)
class Endpoint:
    """One place to fetch a registry's content from."""

    url: str  # scheme://host[:port][/prefix], the API is under url + "/v2/"
    host: str  # host[:port], the key for credentials and TLS settings
    is_mirror: bool = False
    verify_tls: bool = True
    ca_file: str | None = None

    def __str__(self) -> str:
        return f"{self.url} (mirror)" if self.is_mirror else self.url


@dataclass
class HostConfig:
    insecure: bool = False
    ca_file: str | None = None
    insecure_skip_verify: bool = False
    credential: Credential | None = None


@dataclass
class MirrorConfig:
    mirrors: dict[str, list[str]] = field(default_factory=dict)  # registry host → endpoint URLs
    configs: dict[str, HostConfig] = field(default_factory=dict)  # endpoint/registry host → settings
    disable_default_endpoint: bool = False

    def __post_init__(self) -> None:
        for registry, urls in self.mirrors.items():
            for i, url in enumerate(urls):
                self._check_endpoint(url, where=f"mirrors.{registry}.endpoint[{i}]")

    @classmethod
    def load(cls, path: Path) -> MirrorConfig:
        """Read the YAML file at `path`; a missing file means no mirrors."""
        if not path.exists():
            return cls()
        import yaml  # only here: most nodes have no registries file, and PyYAML costs ~1.7 MiB
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise MirrorConfigError(f"{path}: not valid YAML: {exc}") from None
        return cls.from_dict(doc, where=str(path))

    @classmethod
    def from_dict(cls, doc: Any, *, where: str = "registries config") -> MirrorConfig:
        if not isinstance(doc, dict):
            raise MirrorConfigError(f"{where}: expected a mapping at the top level")
        unknown = set(doc) - {"mirrors", "configs", "disable_default_endpoint"}
        if unknown:
            raise MirrorConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        mirrors: dict[str, list[str]] = {}
        for registry, entry in (doc.get("mirrors") or {}).items():
            endpoints = entry.get("endpoint") if isinstance(entry, dict) else None
            if isinstance(endpoints, str):
                endpoints = [endpoints]
            if not isinstance(endpoints, list) or not all(isinstance(e, str) for e in endpoints):
                raise MirrorConfigError(f"{where}: mirrors.{registry}.endpoint must be a list of URLs")
            key = "*" if registry == "*" else registry_key(registry)
            mirrors[key] = [e.rstrip("/") for e in endpoints]
        configs: dict[str, HostConfig] = {}
        for host, entry in (doc.get("configs") or {}).items():
            if not isinstance(entry, dict):
                raise MirrorConfigError(f"{where}: configs.{host} must be a mapping")
            tls = entry.get("tls") or {}
            auth = entry.get("auth") or {}
            if not isinstance(tls, dict) or not isinstance(auth, dict):
                raise MirrorConfigError(f"{where}: configs.{host}.tls and .auth must be mappings")
            credential = None
            if auth:
                if not auth.get("username"):
                    raise MirrorConfigError(f"{where}: configs.{host}.auth.username is required")
                credential = Credential(str(auth["username"]), str(auth.get("password") or ""))
            configs[registry_key(host)] = HostConfig(
                insecure=bool(entry.get("insecure", False)), ca_file=tls.get("ca_file"),
                insecure_skip_verify=bool(tls.get("insecure_skip_verify", False)), credential=credential)
        try:
            return cls(mirrors=mirrors, configs=configs,
                       disable_default_endpoint=bool(doc.get("disable_default_endpoint")))
        except MirrorConfigError as exc:
            raise MirrorConfigError(f"{where}: {exc}") from None

    def _check_endpoint(self, url: str, *, where: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise MirrorConfigError(f"{where}: {url!r} is not an http(s) URL")
        host = parts.netloc.lower()
        if parts.scheme == "http" and not self._insecure(host):
            raise MirrorConfigError(
                f"{where}: plain http endpoint {url!r} needs configs.\"{host}\".insecure: true")

    def _insecure(self, host: str) -> bool:
        config = self.configs.get(host)
        return bool(config and config.insecure) or is_loopback(host)

    def endpoints(self, registry: str) -> list[Endpoint]:
        """Where to fetch `registry`'s content from, in order: its mirrors, then itself."""
        result = []
        for url in self.mirrors.get(registry, self.mirrors.get("*", [])):
            result.append(self._endpoint(url, is_mirror=True))
        if not (self.disable_default_endpoint and result):
            result.append(self._endpoint(default_endpoint_url(registry, insecure=self._insecure(registry)),
                                         is_mirror=False))
        return result

    def _endpoint(self, url: str, *, is_mirror: bool) -> Endpoint:
        host = urlsplit(url).netloc.lower()
        config = self.configs.get(host, HostConfig())
        return Endpoint(url=url, host=host, is_mirror=is_mirror,
                        verify_tls=not (config.insecure or config.insecure_skip_verify),
                        ca_file=config.ca_file)

    def auth(self) -> RegistryAuth:
        """Credentials from ``configs.*.auth``."""
        result = RegistryAuth()
        for host, config in self.configs.items():
            if config.credential:
                result.add(host, config.credential)
        return result


def default_endpoint_url(registry: str, *, insecure: bool) -> str:
    if registry == "docker.io":
        return DOCKER_HUB_ENDPOINT
    return f"{'http' if insecure else 'https'}://{registry}"


