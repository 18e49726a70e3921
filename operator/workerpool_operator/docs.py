"""Generate the field reference in ``docs/workerpool.md`` from the models.

The reference (every spec and status field with type, default, bounds and description, the
CEL rules, and the operator's environment variables) sits between two marker comments; the
prose around it is hand-written. ``make generate`` (``tools/generate.py``) rewrites the
generated part and ``make lint`` fails when it is stale, so the page cannot drift from the CRD.

Pure module: it renders text and writes no file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from workerpool_operator import crd
from workerpool_operator.settings import OperatorSettings

BEGIN = "<!-- BEGIN GENERATED: make generate -->"
END = "<!-- END GENERATED -->"


def _type_of(schema: dict[str, Any]) -> str:
    if schema.get("x-kubernetes-int-or-string"):
        return "int or string"
    kind = schema.get("type", "object")
    if kind == "array":
        return f"[]{_type_of(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema:
        return f"map[string]{_type_of(schema['additionalProperties'])}"
    if "enum" in schema:
        return " \\| ".join(f"`{value}`" for value in schema["enum"])
    return str(kind)


def _bounds(schema: dict[str, Any]) -> str:
    parts = []
    if "minimum" in schema or "maximum" in schema:
        parts.append(f"{schema.get('minimum', '')}..{schema.get('maximum', '')}")
    if "maxLength" in schema:
        parts.append(f"len ≤ {schema['maxLength']}")
    if "maxItems" in schema:
        parts.append(f"≤ {schema['maxItems']} items")
    if "pattern" in schema and len(schema["pattern"]) < 60:
        parts.append(f"`{schema['pattern']}`")
    return ", ".join(parts)


def _default(schema: dict[str, Any]) -> str:
    if "default" not in schema:
        return ""
    value = schema["default"]
    if value == {}:
        return "{} (all defaults)"
    return f"`{json.dumps(value, separators=(',', ':'))}`"


def _rows(path: str, schema: dict[str, Any], required: bool) -> Iterator[str]:
    description = " ".join(str(schema.get("description", "")).split()).replace("|", "\\|")
    if required:
        description = f"**Required.** {description}"
    yield (
        f"| `{path}` | {_type_of(schema)} | {_default(schema)} | {_bounds(schema)} "
        f"| {description} |"
    )
    yield from _children(path, schema)


def _children(path: str, schema: dict[str, Any]) -> Iterator[str]:
    if schema.get("type") == "array" and "properties" in schema.get("items", {}):
        yield from _children(f"{path}[]", schema["items"])
        return
    needed = set(schema.get("required", []))
    for name, sub in schema.get("properties", {}).items():
        yield from _rows(f"{path}.{name}", sub, name in needed)


def _rules(path: str, schema: dict[str, Any]) -> Iterator[str]:
    for rule in schema.get("x-kubernetes-validations", []):
        yield f"- `{path}`: {rule['message']}"
    items = schema.get("items", {})
    for name, sub in schema.get("properties", {}).items():
        yield from _rules(f"{path}.{name}", sub)
    if items:
        yield from _rules(f"{path}[]", items)


_HEADER = "| Field | Type | Default | Bounds | Description |\n|---|---|---|---|---|"


def render_reference() -> str:
    """The generated block (without the markers)."""
    schema = crd.openapi_schema()
    spec = schema["properties"]["spec"]
    status = schema["properties"]["status"]
    lines = ["### Spec", "", _HEADER, *_children("spec", spec), ""]
    lines += ["### Status", "", _HEADER, *_children("status", status), ""]
    lines += ["### Validation rules (CEL)", ""]
    lines += [f"- `(root)`: {rule['message']}" for rule in schema["x-kubernetes-validations"]]
    lines += [*_rules("spec", spec), ""]
    lines += ["### Printer columns (`kubectl get workerpools`)", ""]
    lines += ["| Column | JSONPath | Shown |", "|---|---|---|"]
    for column in crd.PRINTER_COLUMNS:
        shown = "-o wide" if column.get("priority") else "always"
        lines.append(f"| {column['name']} | `{column['jsonPath']}` | {shown} |")
    lines += ["", "### Operator environment", ""]
    lines += ["| Variable | Default | Description |", "|---|---|---|"]
    prefix = OperatorSettings.model_config.get("env_prefix", "")
    for name, field in OperatorSettings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = "" if default in (None, []) else f"`{default}`"
        alias = field.validation_alias
        env = alias if isinstance(alias, str) else f"{prefix}{name.upper()}"
        lines.append(f"| `{env}` | {shown} | {field.description or ''} |")
    return "\n".join(lines) + "\n"


def render_page(current: str) -> str:
    """``current`` with the generated block replaced."""
    if BEGIN not in current or END not in current:
        raise ValueError(f"the page lacks the generated-block markers {BEGIN} ... {END}")
    head, _, rest = current.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{render_reference()}{END}{tail}"
