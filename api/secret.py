"""Secret: small sensitive values, base64 in `data`; `stringData` is a write-only convenience
merged into `data` on write, as in Kubernetes."""

from __future__ import annotations

import base64
import binascii
from typing import Literal, Optional

from pydantic import model_validator

from api.configmap import check_data_keys
from api.errors import FieldError
from api.registry import ResourceInfo, register
from api.resource import Resource


class Secret(Resource):
    api_version: Literal["v1"] = "v1"  # type: ignore[assignment]
    kind: Literal["Secret"] = "Secret"
    type: str = "Opaque"
    data: Optional[dict[str, str]] = None
    string_data: Optional[dict[str, str]] = None
    immutable: Optional[bool] = None

    @model_validator(mode="after")
    def _merge_string_data(self) -> "Secret":
        if self.string_data:
            data = dict(self.data or {})
            for key, value in self.string_data.items():
                data[key] = base64.b64encode(value.encode()).decode()
            self.data = data
            self.string_data = None
        return self

    def validate_semantics(self) -> list[FieldError]:
        errors = check_data_keys(self.data, "data")
        for key, value in (self.data or {}).items():
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                errors.append(FieldError(f"data[{key}]", "illegal base64 data"))
        if self.type == "kubernetes.io/dockerconfigjson" and ".dockerconfigjson" not in (self.data or {}):
            errors.append(FieldError("data[.dockerconfigjson]", "field required for type kubernetes.io/dockerconfigjson"))
        return errors

    def decoded(self) -> dict[str, bytes]:
        return {k: base64.b64decode(v) for k, v in (self.data or {}).items()}


register(ResourceInfo(kind="Secret", plural="secrets", model=Secret, short_names=("secret",),
                      has_status=False, spec_fields=()))
