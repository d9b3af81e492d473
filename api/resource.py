"""`Resource`: the base model of every kind (apiVersion, kind, metadata, ...).

A kind's model subclasses Resource and adds its own top-level fields (`spec`
and `status` for most, `data` for ConfigMap). Checks that span several fields,
or that want an exact field path, go in `validate_semantics()`, which returns a
list of FieldError — the same idea as Kubernetes' validation.go functions.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from api.base import ApiModel
from api.errors import FieldError
from api.meta import ObjectMeta


class Resource(ApiModel):
    api_version: str = Field(alias="apiVersion")
    kind: str
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    # Set by registry.register for each concrete kind.
    KIND: ClassVar[str] = ""

    def validate_semantics(self) -> list[FieldError]:
        """Cross-field checks; empty when the object is valid. Kinds override this."""
        return []

    @property
    def name(self) -> str:
        return self.metadata.name or ""

    @property
    def namespace(self) -> str:
        return self.metadata.namespace or ""
