"""The object model shared by every Skiff component.

Pydantic v2 models of the Kubernetes-shaped kinds (Pod, Deployment, Node, ...),
their defaults and validation, label selectors and quantities. The API server
validates with these models, `ctl` validates early with them, and `ctl explain`
is generated from their schema. This package imports no component.

Adding a kind is one module that defines the model and calls
`registry.register(...)`, plus its import in `api/kinds.py`.
"""


from __future__ import annotations

import importlib
from typing import Any

# The shortcuts below are resolved on first use (PEP 562 module __getattr__), not here:
# importing a leaf module such as api.quantity or api.selectors first imports this
# package, and building every kind's pydantic model at that point costs about 12 MiB
# and 0.1 s in processes that never validate an object (the node agent handles pods as
# dicts). `from api import parse_object` still works: it calls __getattr__.
_LAZY = {"FieldError": "api.errors", "ValidationFailed": "api.errors", "ResourceInfo": "api.registry",
         "all_resources": "api.registry", "lookup": "api.registry", "parse_object": "api.registry"}

__all__ = ["FieldError", "ValidationFailed", "ResourceInfo", "all_resources", "lookup", "parse_object"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'api' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value
