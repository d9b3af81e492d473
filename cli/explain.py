"""`ctl explain KIND[.field.path]`: documentation of a kind's fields, read from its schema.

The schema is the JSON schema pydantic generates from the kind's model in
api/ (`model_json_schema(by_alias=True)`): field names are the manifest's
camelCase names, `$defs` hold the nested models and descriptions come from the
models' docstrings and `Field(description=...)`. So the documentation can never
drift from what the API server accepts. Output follows kubectl's layout:

    KIND:       Pod
    VERSION:    v1

    FIELD: containers <[]Container>

    DESCRIPTION:
        The pod's containers; at least one.

    FIELDS:
      args	<[]string>
        Arguments; replace the image's CMD.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any

from api.registry import ResourceInfo
from cli.errors import CliError
from cli.resources import find_kind

Schema = dict[str, Any]

# Descriptions of the fields every object has (the models leave them implicit).
COMMON = {
    "apiVersion": "APIVersion defines the versioned schema of this representation of an object: the API group "
                  "and version, e.g. v1 or apps/v1.",
    "kind": "Kind is the type of object this manifest describes, e.g. Pod or Deployment.",
    "metadata": "Standard object metadata: name, namespace, labels, annotations, owner references; the server "
                "sets uid, resourceVersion, generation and timestamps.",
}


@dataclass
class Schemas:
    root: Schema

    def resolve(self, schema: Schema) -> Schema:
        """Follow $ref, and look through `X | None` (anyOf with null) and single-element allOf."""
        for _ in range(20):
            if "$ref" in schema:
                name = schema["$ref"].rsplit("/", 1)[-1]
                schema = {**self.root.get("$defs", {}).get(name, {}),
                          **{k: v for k, v in schema.items() if k != "$ref"}}
                continue
            options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
            if "anyOf" in schema and len(options) == 1:
                schema = {**options[0], **{k: v for k, v in schema.items() if k != "anyOf"}}
                continue
            if len(schema.get("allOf", [])) == 1:
                schema = {**schema["allOf"][0], **{k: v for k, v in schema.items() if k != "allOf"}}
                continue
            break
        return schema

    def type_name(self, schema: Schema) -> str:
        """kubectl's type notation: string, integer, []Container, map[string]string, Object."""
        if "$ref" in schema:
            return schema["$ref"].rsplit("/", 1)[-1]
        options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
        if len(options) == 1:
            return self.type_name(options[0])
        if options:
            types = {self.type_name(o) for o in options}
            return "IntOrString" if types == {"integer", "string"} else "|".join(sorted(types))
        if len(schema.get("allOf", [])) == 1:
            return self.type_name(schema["allOf"][0])
        kind = schema.get("type")
        if kind == "array":
            return "[]" + self.type_name(schema.get("items", {}))
        if kind == "object":
            extra = schema.get("additionalProperties")
            return "map[string]" + self.type_name(extra) if isinstance(extra, dict) else "Object"
        if kind in ("string", "integer", "boolean", "number"):
            return kind
        if "const" in schema:
            return "string" if isinstance(schema["const"], str) else type(schema["const"]).__name__
        return "Object"

    def element(self, schema: Schema) -> Schema:
        """The schema whose fields a path continues into: an array's items, else the object itself."""
        schema = self.resolve(schema)
        while schema.get("type") == "array":
            schema = self.resolve(schema.get("items", {}))
        return schema


def _wrap(text: str, indent: int) -> list[str]:
    lines = []
    for paragraph in text.strip().split("\n"):
        lines += textwrap.wrap(paragraph, width=80 - indent) or [""]
    return [" " * indent + line for line in lines]


def _enum(schemas: Schemas, schema: Schema) -> list[str]:
    values = schemas.resolve(schema).get("enum")
    if values is None:
        options = [schemas.resolve(s) for s in schema.get("anyOf", []) if s.get("type") != "null"]
        values = next((o["enum"] for o in options if "enum" in o), None)
    return [str(v) for v in values or []]


def _description(schemas: Schemas, name: str, schema: Schema) -> str:
    return schema.get("description") or schemas.resolve(schema).get("description") or COMMON.get(name, "")


def _field_lines(schemas: Schemas, parent: Schema, *, recursive: bool, depth: int = 1,
                 seen: tuple[str, ...] = ()) -> list[str]:
    parent = schemas.element(parent)
    required = set(parent.get("required", []))
    lines: list[str] = []
    for name, schema in sorted(parent.get("properties", {}).items()):
        marker = " -required-" if name in required else ""
        lines.append(f"{'  ' * depth}{name}\t<{schemas.type_name(schema)}>{marker}")
        if recursive:
            child = schemas.element(schema)
            ref = schemas.type_name(schema)
            if child.get("properties") and ref not in seen and depth < 12:
                lines += _field_lines(schemas, schema, recursive=True, depth=depth + 1, seen=(*seen, ref))
            continue
        enum = _enum(schemas, schema)
        if enum:
            lines.append(f"{'  ' * depth}enum: {', '.join(enum)}")
        lines += _wrap(_description(schemas, name, schema), 2 * depth + 2)
        lines.append("")
    return lines


def split_path(path: str) -> tuple[ResourceInfo, list[str]]:
    """`pods.spec.containers` -> (Pod, ["spec", "containers"]); `deployments.apps.spec` also works."""
    parts = path.split(".")
    if len(parts) > 1:
        try:
            return find_kind(".".join(parts[:2])), parts[2:]
        except CliError:
            pass
    return find_kind(parts[0]), parts[1:]


def explain(path: str, *, recursive: bool = False) -> str:
    info, fields = split_path(path)
    schemas = Schemas(info.model.model_json_schema(by_alias=True))
    schema: Schema = schemas.root
    walked: list[str] = []
    for field in fields:
        properties = schemas.element(schema).get("properties", {})
        if field not in properties:
            where = ".".join([info.singular, *walked]) if walked else info.singular
            raise CliError(f'field "{field}" does not exist in {where}; see: ctl explain {where}')
        schema = properties[field]
        walked.append(field)

    out = []
    if info.group:
        out.append(f"GROUP:      {info.group}")
    out += [f"KIND:       {info.kind}", f"VERSION:    {info.version}", ""]
    if fields:
        out += [f"FIELD: {fields[-1]} <{schemas.type_name(schema)}>", ""]
        enum = _enum(schemas, schema)
        if enum:
            out += ["ENUM:", *[f"    {v}" for v in enum], ""]
    description = _description(schemas, fields[-1] if fields else "", schema)
    out += ["DESCRIPTION:", *(_wrap(description, 4) if description else ["    <empty>"]), ""]
    field_lines = _field_lines(schemas, schema, recursive=recursive)
    if field_lines:
        out += ["FIELDS:", *field_lines]
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n"
