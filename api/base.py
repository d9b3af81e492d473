"""The base of every model: Kubernetes field names, strict validation, JSON form.

Models use snake_case attributes with Kubernetes' camelCase names as aliases
(`restart_policy` <-> `restartPolicy`); a field whose Kubernetes name is not
plain camelCase (`hostIP`, `podCIDR`) sets its alias explicitly. Unknown fields
are errors (`extra="forbid"`), like `kubectl --validate=strict`.

`to_json()` is the stored and wire form: aliases, no None values.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=False,
        use_enum_values=True,
    )

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class FreeForm(BaseModel):
    """A nested object whose keys are not fixed (e.g. an annotation value tree)."""

    model_config = ConfigDict(extra="allow")
