"""Registry credentials and the token dance of the OCI Distribution API.

`RegistryAuth` holds username/password pairs by registry host. It is filled
from a pod's ``imagePullSecrets`` — Secrets of type
``kubernetes.io/dockerconfigjson``, whose ``.dockerconfigjson`` key holds a
Docker ``config.json`` — or directly (mirror credentials from the node's
registry config).

A registry that wants authentication answers 401 with a ``WWW-Authenticate``
challenge. For ``Basic`` the client resends with the credentials. For
``Bearer`` it asks the named token service (``realm``) for a token for the
``service`` and ``scope`` — anonymously when it has no credentials, which is
how public images on Docker Hub are pulled — and resends with that token.
registry.py drives this; here are the parsing and the credential lookup.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from agent.images.errors import ImageError

DOCKERCONFIGJSON_TYPE = "kubernetes.io/dockerconfigjson"
DOCKERCONFIGJSON_KEY = ".dockerconfigjson"
_HUB_KEYS = {"index.docker.io", "registry-1.docker.io", "docker.io"}


class AuthConfigError(ImageError):
    """A pull secret or registry credential that cannot be used."""


@dataclass(frozen=True)
class Credential:
    username: str = ""
    password: str = ""
    identity_token: str = ""  # an OAuth2 refresh token, as `docker login` may store

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


@dataclass
class RegistryAuth:
    """Credentials by registry host ("docker.io", "127.0.0.1:5000")."""

    credentials: dict[str, Credential] = field(default_factory=dict)

    def for_host(self, host: str) -> Credential | None:
        return self.credentials.get(registry_key(host))

    def add(self, host: str, credential: Credential) -> None:
        self.credentials[registry_key(host)] = credential

    def merged(self, other: RegistryAuth | None) -> RegistryAuth:
        """A copy with `other`'s credentials added; ours win where both name a host."""
        result = RegistryAuth(dict(other.credentials) if other else {})
        result.credentials.update(self.credentials)
        return result

    @classmethod
    def from_dockerconfigjson(cls, data: bytes | str, *, where: str = DOCKERCONFIGJSON_KEY) -> RegistryAuth:
        """Parse a Docker config.json ({"auths": {host: {"auth": base64(user:pass)}}})."""
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AuthConfigError(f"{where}: not valid JSON: {exc}") from None
        auths = doc.get("auths") if isinstance(doc, dict) else None
        if not isinstance(auths, dict):
            raise AuthConfigError(f"{where}: missing the \"auths\" object")
        result = cls()
        for host, entry in auths.items():
            if not isinstance(entry, dict):
                raise AuthConfigError(f"{where}: auths[{host!r}] must be an object")
            username, password = str(entry.get("username") or ""), str(entry.get("password") or "")
            if entry.get("auth"):
                try:
                    decoded = base64.b64decode(str(entry["auth"]), validate=True).decode()
                except (binascii.Error, UnicodeDecodeError):
                    raise AuthConfigError(f"{where}: auths[{host!r}].auth is not base64 of user:password") from None
                username, sep, password = decoded.partition(":")
                if not sep:
                    raise AuthConfigError(f"{where}: auths[{host!r}].auth must decode to user:password")
            result.add(host, Credential(username, password, str(entry.get("identitytoken") or "")))
        return result

    @classmethod
    def from_secret(cls, secret: Any) -> RegistryAuth:
        """From an ``imagePullSecrets`` Secret: an api.Secret, or a dict with type and base64 data."""
        if isinstance(secret, Mapping):
            secret_type = secret.get("type", "Opaque")
            name = (secret.get("metadata") or {}).get("name", "")
            encoded = (secret.get("data") or {}).get(DOCKERCONFIGJSON_KEY)
            try:
                raw = base64.b64decode(encoded, validate=True) if encoded else None
            except (binascii.Error, ValueError):
                raise AuthConfigError(f"secret {name!r}: data[{DOCKERCONFIGJSON_KEY}] is not base64") from None
        else:
            secret_type = getattr(secret, "type", "Opaque")
            name = getattr(getattr(secret, "metadata", None), "name", "")
            raw = secret.decoded().get(DOCKERCONFIGJSON_KEY)
        if secret_type != DOCKERCONFIGJSON_TYPE:
            raise AuthConfigError(f"secret {name!r}: type is {secret_type!r}, "
                                  f"an image pull secret must be {DOCKERCONFIGJSON_TYPE!r}")
        if raw is None:
            raise AuthConfigError(f"secret {name!r}: data[{DOCKERCONFIGJSON_KEY}] missing")
        return cls.from_dockerconfigjson(raw, where=f"secret {name!r} data[{DOCKERCONFIGJSON_KEY}]")


def registry_key(host: str) -> str:
    """Normalise a config.json key or URL to a registry host: "https://index.docker.io/v1/" → "docker.io"."""
    host = host.strip()
    host = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", "", host)
    host = host.split("/", 1)[0].lower()
    return "docker.io" if host in _HUB_KEYS else host


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "bearer" or "basic"
    params: dict[str, str]


_PARAM = re.compile(r'\s*([a-zA-Z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


def parse_challenge(header: str) -> Challenge | None:
    """Parse ``Bearer realm="…",service="…",scope="…"`` (or ``Basic realm="…"``)."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        match = _PARAM.match(rest, pos)
        if not match or match.end() == pos:
            break
        quoted, bare = match.group(2), match.group(3)
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        params[match.group(1).lower()] = value
        pos = match.end()
    return Challenge(scheme=scheme.lower(), params=params)
