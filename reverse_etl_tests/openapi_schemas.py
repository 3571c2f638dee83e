"""Validate payloads against the call schemas of Customer.io's published OpenAPI description.

The schemas choose between a 'Known User' and an 'Anonymous User' variant with `oneOf`, so a call
with both userId and anonymousId (which the API accepts) would match both and fail a literal
check: `oneOf` is read as `anyOf`, as the reference notes say.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SPEC = Path(__file__).with_name("fixtures") / "customerio-pipelines-openapi.json"


def _one_of_as_any_of(node: Any) -> Any:
    if isinstance(node, dict):
        return {("anyOf" if key == "oneOf" else key): _one_of_as_any_of(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_one_of_as_any_of(item) for item in node]
    return node


@cache
def _components() -> dict[str, Any]:
    return _one_of_as_any_of(json.loads(SPEC.read_text())["components"])


@cache
def validator(call_type: str) -> jsonschema.Draft202012Validator:
    schema = {"$ref": f"#/components/schemas/{call_type}", "components": _components()}
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def schema_errors(call: dict[str, Any]) -> list[str]:
    return [error.message for error in validator(call["type"]).iter_errors(call)]
