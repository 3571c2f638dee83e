"""Calls checked against the destination's published contract: the call schemas of Customer.io's
OpenAPI description (`customerio-pipelines-openapi.json`, as served at
docs.customer.io/files/pipelines.json), which Segment's wire format shares.

The preview and `reverse-etl validate` use it to show, before anything is sent, the rows the
destination would refuse (a JSON array sent as text, say). The schemas choose between a 'Known
User' and an 'Anonymous User' variant with `oneOf`, so a call with both userId and anonymousId
(which the API accepts) would match both and fail a literal check: `oneOf` is read as `anyOf`.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SPEC = Path(__file__).with_name("customerio-pipelines-openapi.json")


def schema_errors(call: dict[str, Any]) -> list[str]:
    """Why the destination's schema refuses `call` (nothing when it accepts it), each naming the
    field: `context.page.keywords: '["a"]' is not of type 'array'`."""
    errors = []
    for refusal in _validator(str(call.get("type"))).iter_errors(call):
        for error in _closest(refusal):
            where = ".".join(str(part) for part in error.absolute_path)
            errors.append(f"{where}: {error.message}" if where else error.message)
    return list(dict.fromkeys(errors))


def _closest(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    """The errors that say why: for a call no variant accepts (`anyOf`, such as known and anonymous
    users), those of the variant it comes closest to, rather than 'not valid under any schema'."""
    if not error.context:
        return [error]
    variants: dict[object, list[jsonschema.ValidationError]] = {}
    for sub in error.context:
        variants.setdefault(sub.relative_schema_path[0], []).extend(_closest(sub))
    return min(variants.values(), key=len)


@cache
def _validator(call_type: str) -> jsonschema.Draft202012Validator:
    schema = {"$ref": f"#/components/schemas/{call_type}", "components": _components()}
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


@cache
def _components() -> dict[str, Any]:
    return _one_of_as_any_of(json.loads(SPEC.read_text())["components"])


def _one_of_as_any_of(node: Any) -> Any:
    if isinstance(node, dict):
        return {("anyOf" if key == "oneOf" else key): _one_of_as_any_of(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_one_of_as_any_of(item) for item in node]
    return node
