"""Every pathway's actions in the OpenAPI document: one request body schema per action (its model
without `actor`, which the API sets from the token), and a description listing them."""

from __future__ import annotations

from typing import Any

from workflows.pathways import PATHWAYS


def body_schema(model: type) -> dict[str, Any]:
    """The action model's JSON schema as a request body: `actor` left out, `$defs` inlined so
    the schema stands alone in the operation."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})
    schema["properties"].pop("actor", None)
    schema["required"] = [name for name in schema.get("required", []) if name != "actor"]
    if not schema["required"]:
        schema.pop("required")
    return _inline(schema, defs)


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline(defs[node["$ref"].rsplit("/", 1)[1]], defs)
        return {key: _inline(value, defs) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    return node


def action_bodies() -> dict[str, Any]:
    variants, seen = [], set()
    for pathway in PATHWAYS:
        for spec in pathway.actions:
            if spec.model in seen:
                continue
            seen.add(spec.model)
            schema = body_schema(spec.model)
            schema["title"] = spec.model.__name__
            variants.append(schema)
    return {
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": {"anyOf": variants}}},
        }
    }


def actions_described() -> str:
    lines = ["Record what the care team did. The actions of each pathway:", ""]
    for pathway in PATHWAYS:
        lines.append(f"**{pathway.title}** (`{pathway.id_prefix}-…` cases):")
        for spec in pathway.actions:
            fields = [name for name in spec.model.model_fields if name != "actor"]
            where = "any open stage" if spec.stages is None else ", ".join(sorted(spec.stages))
            body = ", ".join(f"`{name}`" for name in fields) or "no body"
            lines.append(f"- `{spec.name}` ({body}): {spec.title.lower()}; {where}")
        lines.append("")
    lines.append("Answers once the case has accepted or rejected the action.")
    return "\n".join(lines)
