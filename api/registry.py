"""The registry of kinds: names, scope, model, and parsing of raw objects.

Every kind registers one `ResourceInfo`: its kind, plural and short names, API
group and version, whether it lives in a namespace, which name rule applies,
whether it has a status subresource, and its pydantic model. Everything
generic — the API server's verbs, `ctl get`, `ctl explain`, discovery — works
from this table, so adding a kind is one module plus one `register()` call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import pydantic

from api.errors import FIELD_ERROR_TYPE, FieldError, ValidationFailed, format_loc, invalid, unsupported
from api.names import check_dns1123_label, check_dns1123_subdomain
from api.resource import Resource


@dataclass(frozen=True)
class ResourceInfo:
    kind: str
    plural: str
    model: type[Resource]
    group: str = ""            # "" is the core group ("v1"); "apps", "batch", ...
    version: str = "v1"
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    has_status: bool = True    # status changes only through UpdateStatus
    name_rule: Callable[[str], str | None] = check_dns1123_subdomain
    # Top-level fields whose change bumps metadata.generation.
    spec_fields: tuple[str, ...] = ("spec",)
    # Columns, descriptions and the like are the CLI's business, not the model's.
    verbs: tuple[str, ...] = ("apply", "create", "get", "list", "update", "delete", "watch")
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified_plural(self) -> str:
        """How API errors name the resource: `deployments.apps`, `pods`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified(self) -> str:
        """How kubectl names the resource in messages: `deployment.apps`, `pod`."""
        return f"{self.singular}.{self.group}" if self.group else self.singular


_BY_KIND: dict[str, ResourceInfo] = {}
_BY_NAME: dict[str, ResourceInfo] = {}


def register(info: ResourceInfo) -> ResourceInfo:
    if info.kind in _BY_KIND:
        raise ValueError(f"kind {info.kind} registered twice")
    info.model.KIND = info.kind
    _BY_KIND[info.kind] = info
    for name in (info.kind.lower(), info.plural, info.singular, *info.short_names,
                 f"{info.plural}.{info.group}" if info.group else info.plural,
                 f"{info.singular}.{info.group}" if info.group else info.singular):
        _BY_NAME[name.lower()] = info
    return info


def _ensure_loaded() -> None:
    # Always import api.kinds (a no-op after the first time): a single kind module
    # imported on its own must not leave the others unregistered.
    import api.kinds  # noqa: F401  (registers every built-in kind)


def all_resources() -> list[ResourceInfo]:
    _ensure_loaded()
    return sorted(_BY_KIND.values(), key=lambda i: i.plural)


def lookup(name: str) -> ResourceInfo:
    """Find a kind by kind, plural, singular or short name (`Pod`, `pods`, `po`, `deploy.apps`)."""
    _ensure_loaded()
    info = _BY_NAME.get(name.lower())
    if info is None:
        raise ValidationFailed(FieldError("", f'the server doesn\'t have a resource type "{name}"'))
    return info


def lookup_kind(api_version: str, kind: str) -> ResourceInfo:
    """Find a kind by the apiVersion and kind a manifest declares; errors list what is known."""
    _ensure_loaded()
    info = _BY_KIND.get(kind)
    if info is None:
        known = ", ".join(f"{i.api_version}/{i.kind}" for i in all_resources())
        raise ValidationFailed(FieldError("kind", f'no kind "{kind}" is registered; known kinds: {known}'))
    if api_version != info.api_version:
        raise ValidationFailed(FieldError("apiVersion", f'no kind "{kind}" is registered for version '
                                                        f'"{api_version}"; {kind} is served as "{info.api_version}"'))
    return info


_MESSAGES = {
    "missing": "field required",
    "extra_forbidden": "unknown field",
}
_BOUNDS = {
    "greater_than_equal": ("ge", "must be greater than or equal to {}"),
    "greater_than": ("gt", "must be greater than {}"),
    "less_than_equal": ("le", "must be less than or equal to {}"),
    "less_than": ("lt", "must be less than {}"),
}
_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'")


def _message(err: Mapping[str, Any]) -> str:
    """One pydantic error as a Kubernetes-style message."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    if kind == FIELD_ERROR_TYPE:
        return str(err.get("msg", "invalid value"))
    if kind == "literal_error":
        # ctx["expected"] reads "'Always', 'OnFailure' or 'Never'".
        return unsupported("", err.get("input"), _QUOTED.findall(str(ctx.get("expected", "")))).message
    if kind in _BOUNDS:
        key, text = _BOUNDS[kind]
        return invalid("", err.get("input"), text.format(ctx.get(key))).message
    message = str(err.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix):]
    if "input" in err and kind not in ("value_error",) and not isinstance(err["input"], (dict, list)):
        message = f"{message} (got {err['input']!r})"
    return message


def pydantic_errors(exc: pydantic.ValidationError) -> list[FieldError]:
    """Convert pydantic's errors to FieldErrors with Kubernetes-style paths."""
    out = [FieldError(format_loc(err.get("loc", ())), _message(err)) for err in exc.errors(include_url=False)]
    # One line per field, in a stable order.
    seen: dict[tuple[str, str], FieldError] = {}
    for e in out:
        seen.setdefault((e.path, e.message), e)
    return list(seen.values())


def parse_object(data: Any, *, require_name: bool = True) -> Resource:
    """Validate a raw object (a dict from YAML or JSON) into its kind's model.

    Raises ValidationFailed naming every bad field. Defaults are applied by the
    model; the namespace is left as given (the client or server fills it in).
    """
    if not isinstance(data, Mapping):
        raise ValidationFailed(FieldError("", f"an object must be a mapping, got {type(data).__name__}"))
    missing = [FieldError(f, "field required") for f in ("apiVersion", "kind") if not data.get(f)]
    if missing:
        raise ValidationFailed(missing)
    for f in ("apiVersion", "kind"):
        if not isinstance(data[f], str):
            raise ValidationFailed(FieldError(f, f"must be a string, got {data[f]!r}"))
    info = lookup_kind(data["apiVersion"], data["kind"])
    meta = data.get("metadata") or {}
    name = meta.get("name") if isinstance(meta, Mapping) else None
    try:
        obj = info.model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ValidationFailed(pydantic_errors(exc), kind=info.kind, name=str(name or "")) from None
    errors = check_metadata(info, obj, require_name=require_name)
    errors += obj.validate_semantics()
    if errors:
        raise ValidationFailed(errors, kind=info.kind, name=obj.name)
    return obj


def check_metadata(info: ResourceInfo, obj: Resource, *, require_name: bool = True) -> list[FieldError]:
    errors = []
    meta = obj.metadata
    if meta.name:
        if msg := info.name_rule(meta.name):
            errors.append(invalid("metadata.name", meta.name, msg))
    elif require_name and not meta.generate_name:
        errors.append(FieldError("metadata.name", "field required"))
    if meta.namespace:
        if not info.namespaced:
            pass  # kubectl ignores a namespace on cluster-scoped objects; so do we
        elif msg := check_dns1123_label(meta.namespace):
            errors.append(invalid("metadata.namespace", meta.namespace, msg))
    return errors
