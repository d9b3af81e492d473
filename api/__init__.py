"""The object model shared by every Skiff component.

Pydantic v2 models of the Kubernetes-shaped kinds (Pod, Deployment, Node, ...),
their defaults and validation, label selectors and quantities. The API server
validates with these models, `ctl` validates early with them, and `ctl explain`
is generated from their schema. This package imports no component.

Adding a kind is one module that defines the model and calls
`registry.register(...)`, plus its import in `api/kinds.py`.
"""

from api.errors import FieldError, ValidationFailed
from api.registry import ResourceInfo, all_resources, lookup, parse_object

__all__ = ["FieldError", "ValidationFailed", "ResourceInfo", "all_resources", "lookup", "parse_object"]
