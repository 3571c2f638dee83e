"""JSON documents from the database, parsed and written again: never copied into a call as stored.

MariaDB keeps a JSON column's text exactly as written (whitespace, `1.`, and with
`check_constraint_checks=0` anything at all), so stored text spliced into a body could make the
body invalid or add keys to the call. Each document is parsed by orjson (which defines what a
document is) and written again compactly. orjson would rewrite some numbers (`1.10` as `1.1`, a
huge integer as a float), so a document whose compact form differs from its stored text is written
a second way that keeps every number token exactly as stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

# orjson writes documents nested at most this deep (and Python's parser is comfortable with them).
MAX_DEPTH = 254


@dataclass
class Documents:
    """One column of documents: their compact text (null where NULL, the document `null`, or
    unreadable), their parsed values (for checks), and why the unreadable ones were refused."""

    text: pa.Array
    values: list[Any]
    errors: dict[int, str] = field(default_factory=dict)


def read_documents(stored: pa.Array) -> Documents:
    loads, dumps = orjson.loads, orjson.dumps
    values: list[Any] = []
    compact: list[bytes | None] = []
    errors: dict[int, str] = {}
    for row, raw in enumerate(stored.to_pylist()):
        value = written = None
        if raw is not None:
            try:
                value = loads(raw)
                written = None if value is None else dumps(value)
            except orjson.JSONDecodeError as error:
                errors[row] = f"not valid JSON ({error})"
                value = None
            except orjson.JSONEncodeError:
                errors[row] = f"a JSON document nested more than {MAX_DEPTH} levels deep"
                value = None
        values.append(value)
        compact.append(written)
    text = pa.array(compact, pa.binary()).cast(pa.string())
    # Where orjson's form is not the stored text, a number may have been rewritten: keep the tokens.
    differs = pc.fill_null(pc.not_equal(text, stored), False)
    for row in pc.indices_nonzero(differs).to_pylist():
        compact[row] = exact_compact(stored[row].as_py())
    if pc.any(differs).as_py():
        text = pa.array(compact, pa.binary()).cast(pa.string())
    return Documents(text, values, errors)


def exact_compact(document: str) -> bytes:
    """`document` (valid for orjson) without whitespace, with each number token as written."""
    value = json.loads(document, parse_int=orjson.Fragment, parse_float=orjson.Fragment)
    return orjson.dumps(value)


def number_text(value: Any, compact: str) -> str | None:
    """The text of a document that is a number (as written), or None for other documents."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return compact
