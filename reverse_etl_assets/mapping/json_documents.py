"""JSON documents from the database, parsed and written again: never copied into a call as stored.

MariaDB keeps a JSON column's text exactly as written (whitespace, `1.`, and with
`check_constraint_checks=0` anything at all), so stored text spliced into a body could make the
body invalid or add keys to the call. Each document is parsed by orjson (which defines what a
document is) and written again compactly. orjson would rewrite some numbers (`1.10` as `1.1`, a
huge integer as a float), so a document whose compact form differs from its stored text is written
a second way that keeps every number token exactly as stored.

Parsing is the costly part (Python objects per value), so each distinct document of a batch is
read once: columns of settings and preferences repeat a few documents many times.
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
    unreadable), why the unreadable ones were refused, and their parsed values (for checks)."""

    text: pa.Array
    errors: dict[int, str] = field(default_factory=dict)
    _distinct: list[Any] = field(default_factory=list)
    _indices: pa.Array | None = None  # each row's document among the distinct ones

    @property
    def values(self) -> list[Any]:
        indices = self._indices.to_pylist() if self._indices is not None else []
        return [None if index is None else self._distinct[index] for index in indices]


def read_documents(stored: pa.Array) -> Documents:
    encoded = stored.dictionary_encode()
    distinct = encoded.dictionary.to_pylist()
    values: list[Any] = []
    written: list[bytes | None] = []
    refused: dict[int, str] = {}
    loads, dumps = orjson.loads, orjson.dumps
    for index, raw in enumerate(distinct):
        value = compact = None
        try:
            value = loads(raw)
            compact = None if value is None else dumps(value)  # the document null is NULL
        except orjson.JSONDecodeError as error:
            refused[index] = f"not valid JSON ({error})"
        except orjson.JSONEncodeError:
            refused[index] = f"a JSON document nested more than {MAX_DEPTH} levels deep"
            value = None
        if compact is not None and compact != raw.encode():
            compact = exact_compact(raw)  # orjson's form differs: a number may have been rewritten
        values.append(value)
        written.append(compact)
    text = pc.take(pa.array(written, pa.binary()).cast(pa.string()), encoded.indices)
    errors: dict[int, str] = {}
    for index, why in refused.items():
        for row in pc.indices_nonzero(pc.equal(encoded.indices, index)).to_pylist():
            errors[row] = why
    return Documents(text, errors, values, encoded.indices)


def exact_compact(document: str) -> bytes:
    """`document` (valid for orjson) without whitespace, with each number token as written."""
    value = json.loads(document, parse_int=orjson.Fragment, parse_float=orjson.Fragment)
    return orjson.dumps(value)
