"""The etcd key layout: `<prefix>/<plural>/<namespace>/<name>`, or `<prefix>/<plural>/<name>`
for cluster-scoped kinds (nodes, namespaces). One prefix per resource type lets one
etcd watch cover a whole type."""

from __future__ import annotations

DEFAULT_PREFIX = "/skiff/registry"


def type_prefix(prefix: str, plural: str) -> bytes:
    return f"{prefix}/{plural}/".encode()


def namespace_prefix(prefix: str, plural: str, namespace: str) -> bytes:
    return f"{prefix}/{plural}/{namespace}/".encode()


def object_key(prefix: str, plural: str, namespace: str, name: str) -> bytes:
    if namespace:
        return f"{prefix}/{plural}/{namespace}/{name}".encode()
    return f"{prefix}/{plural}/{name}".encode()


def split_key(prefix: str, key: bytes) -> tuple[str, str, str]:
    """(plural, namespace, name) of a key; namespace is "" for cluster-scoped kinds."""
    parts = key.decode()[len(prefix) + 1:].split("/")
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    return parts[0], "", parts[1]
