"""ConfigMap: non-secret configuration as string (`data`) or base64 (`binaryData`) values."""

from __future__ import annotations

import re
from typing import Any, Literal, Optional

from api.errors import FieldError
from api.registry import ResourceInfo, register
from api.resource import Resource

_KEY_RE = re.compile(r"^[-._a-zA-Z0-9]+$")


def check_data_keys(data: dict[str, Any] | None, path: str) -> list[FieldError]:
    errors = []
    for key in data or {}:
        if not _KEY_RE.match(key) or len(key) > 253:
            errors.append(FieldError(f"{path}[{key}]", "a valid config key must consist of alphanumeric "
                                                       "characters, '-', '_' or '.'"))
    return errors


class ConfigMap(Resource):
    api_version: Literal["v1"] = "v1"  # type: ignore[assignment]
    kind: Literal["ConfigMap"] = "ConfigMap"
    data: Optional[dict[str, str]] = None
    binary_data: Optional[dict[str, str]] = None
    immutable: Optional[bool] = None

    def validate_semantics(self) -> list[FieldError]:
        return check_data_keys(self.data, "data") + check_data_keys(self.binary_data, "binaryData")


register(ResourceInfo(kind="ConfigMap", plural="configmaps", model=ConfigMap, short_names=("cm",),
                      has_status=False, spec_fields=()))
