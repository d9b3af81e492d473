"""Objects as YAML, JSON or names: `-o yaml`, `-o json`, `-o name`.

Keys are sorted at every level and JSON is indented by four spaces, as
kubectl prints them. Several objects print as one `kind: List`.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from api.registry import ResourceInfo


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as `|` blocks, so scripts and configs stay readable."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


def to_yaml(obj: Any) -> str:
    return yaml.dump(obj, Dumper=_Dumper, default_flow_style=False, sort_keys=True, width=1 << 16,
                     allow_unicode=True)


def to_json(obj: Any) -> str:
    return json.dumps(obj, indent=4, sort_keys=True, ensure_ascii=False) + "\n"


def to_name(info: ResourceInfo, obj: dict[str, Any]) -> str:
    """`pod/web`, `deployment.apps/web`."""
    return f"{info.qualified}/{(obj.get('metadata') or {}).get('name', '')}"


def without_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without `metadata.managedFields`, which kubectl too hides unless --show-managed-fields."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or "managedFields" not in meta:
        return obj
    return {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}


def as_list(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}
