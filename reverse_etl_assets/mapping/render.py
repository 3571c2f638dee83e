"""Arrow columns → JSON text, a whole column at a time with Arrow compute.

`render_column` turns one result column into the JSON text of each of its values (null where the
value is NULL), the plain text of values that are text-like (for identifiers and checks), and the
rows whose value has no faithful JSON form. Only rare types (binary, BIT, SET, JSON documents) go
through Python value by value; everything else stays in Arrow's C++ kernels, which release the GIL.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from reverse_etl_assets.config.models import ColumnType
from reverse_etl_assets.logical_types import LogicalType, logical_type
from reverse_etl_assets.mapping import text_buffers
from reverse_etl_assets.mapping.json_documents import Documents, read_documents

# What the call's field needs: any value, an identifier (always a string), or a flag (0/1 become
# false/true).
Role = Literal["value", "id", "boolean"]
# What a column's values are, for the mapping: what was declared in column_types (ColumnType), or
# what the Arrow type and the logical type say.
NaturalKind = Literal[
    "base64",
    "text",
    "timestamp",
    "date",
    "time",
    "decimal",
    "float",
    "integer",
    "bool",
    "null",
    "bit",
    "set",
    "other",
]
Kind = ColumnType | NaturalKind

_CONTROL_ESCAPES = [("\b", "\\b"), ("\t", "\\t"), ("\n", "\\n"), ("\f", "\\f"), ("\r", "\\r")] + [
    (chr(code), f"\\u{code:04x}") for code in range(0x20) if chr(code) not in "\b\t\n\f\r"
]
_MICROS_PER = {"hours": 3_600_000_000, "minutes": 60_000_000, "seconds": 1_000_000}


@dataclass
class Rendered:
    """One column, rendered; null wherever the value is NULL or cannot be sent."""

    json: pa.Array | None  # JSON text of values that need no quotes (numbers, true, documents)
    text: pa.Array | None = None  # the value as plain text, when it is text-like
    errors: dict[int, str] = field(default_factory=dict)  # row → why its value cannot be sent
    documents: Documents | None = None  # JSON columns: the parsed documents
    escaped: pa.Array | None = None  # for values sent as JSON strings: escaped, not yet quoted

    def json_text(self) -> pa.Array:
        if self.json is None:
            self.json = pc.binary_join_element_wise('"', self.escaped, '"', "")
        return self.json

    def sent(self) -> pa.Array:
        """What goes into the call: the escaped text (quoted by the caller), or the JSON text."""
        return self.escaped if self.json is None and self.escaped is not None else self.json_text()

    def fragment(self, prefix: str, keep_null: bool = False) -> list[pa.Array | str]:
        """`prefix` (`,"key":`) and the value, as pieces to concatenate with the rest of the call.
        A column without NULLs needs no pass of its own: its prefix and quotes are constants. One
        with NULLs is joined first, so that the key is left out (or, with `keep_null`, sent with
        null) where the value is NULL."""
        value = self.sent()
        opening, closing = (prefix + '"', '"') if value is self.escaped else (prefix, "")
        if not value.null_count:
            return [opening, value, closing]
        joined = pc.binary_join_element_wise(opening, value, closing, "")
        return [pc.fill_null(joined, prefix + "null") if keep_null else joined]


def render_column(
    array: pa.Array,
    arrow_field: pa.Field,
    declared: ColumnType | None,
    role: Role,
) -> Rendered:
    kind = _kind(arrow_field, declared)
    if kind == "json":
        rendered = _json_documents(array)
        return _ids_from_json(rendered) if role == "id" else rendered
    if role == "id" and kind == "boolean":  # a flag (TINYINT(1), BIT(1)) names nobody
        return Rendered(
            pa.nulls(len(array), pa.string()), None, dict.fromkeys(_valid_rows(array), _FLAG_ID_ERROR)
        )
    if role == "boolean" or kind == "boolean":
        # Declared booleans must be 0 or 1; a flag column follows MySQL: any other number is true.
        return _boolean(array, strict=declared == "boolean")
    if role == "id" or kind in _TEXT_KINDS:
        text, errors = _as_text(array, kind, arrow_field)
        if text is None:  # true/false, a SET: not a single text value
            return Rendered(
                pa.nulls(len(array), pa.string()), None, {row: _ID_ERROR for row in _valid_rows(array)}
            )
        if role == "id":  # an empty identifier is no identifier: left out, as NULL is
            text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
        # Only text can hold what JSON escapes; numbers, dates and encodings never do.
        escaped = json_escape(text) if kind in ("text", "string") else text
        return Rendered(None, text, errors, escaped=_drop(escaped, errors))
    errors = _non_finite(array) if kind == "float" else {}
    return Rendered(_drop(_json_literal(array, kind), errors), None, errors)


_TEXT_KINDS = {"text", "string", "base64", "hex", "timestamp", "date", "time"}
_ID_ERROR = "an identifier must be a single value, not true/false, a JSON object or an array"
_FLAG_ID_ERROR = (
    "a TINYINT(1)/BOOLEAN or BIT(1) column is a flag, not an identifier: CAST it AS CHAR, or declare it "
    "`string` in column_types"
)


def _kind(arrow_field: pa.Field, declared: ColumnType | None) -> Kind:
    logical = logical_type(arrow_field)
    if declared is not None:
        return declared  # json, boolean, string, base64 or hex
    if logical == LogicalType.JSON:
        return "json"
    if logical in (LogicalType.FLAG, LogicalType.BIT_FLAG):
        return "boolean"
    return _natural_kind(arrow_field)


def _natural_kind(arrow_field: pa.Field) -> NaturalKind:
    """What the values are, leaving aside what a flag or a declaration makes of them."""
    logical = logical_type(arrow_field)
    if logical in (LogicalType.BITS, LogicalType.BIT_FLAG):
        return "bit"
    if logical == LogicalType.SET:
        return "set"
    return next((name for test, name in _KINDS if test(arrow_field.type)), "other")


_KINDS: list[tuple[Callable[[pa.DataType], bool], NaturalKind]] = [
    (lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t), "base64"),
    (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), "text"),
    (pa.types.is_timestamp, "timestamp"),
    (pa.types.is_date, "date"),
    (pa.types.is_duration, "time"),
    (pa.types.is_decimal, "decimal"),
    (pa.types.is_floating, "float"),
    (pa.types.is_integer, "integer"),
    (pa.types.is_boolean, "bool"),
    (pa.types.is_null, "null"),
]


def json_quote(text: pa.Array) -> pa.Array:
    """JSON string literals."""
    return pc.binary_join_element_wise('"', json_escape(text), '"', "")


def json_escape(text: pa.Array) -> pa.Array:
    """The inside of JSON string literals: backslash, quote and control characters escaped, UTF-8
    kept as is (as orjson writes them)."""
    if text.null_count == len(text):
        return pa.nulls(len(text), pa.string())
    if text_buffers.needs_json_escape(text):
        text = pc.replace_substring(text, "\\", "\\\\")
        text = pc.replace_substring(text, '"', '\\"')
        if text_buffers.has_control_bytes(text):
            for character, escape in _CONTROL_ESCAPES:
                text = pc.replace_substring(text, character, escape)
    return text


def _as_text(
    array: pa.Array, kind: Kind, arrow_field: pa.Field | None = None
) -> tuple[pa.Array | None, dict[int, str]]:
    """The plain text of each value; None for types whose values are not single strings."""
    if kind == "text":
        return array.cast(pa.string()), {}
    if kind == "decimal":
        return decimal_text(array), {}
    if kind in ("integer", "date"):
        return pc.cast(array, pa.string()), {}
    if kind == "float":
        errors = _non_finite(array)
        # Whole numbers as integers ("7", not "7.0"), while int64 holds them exactly.
        integral = pc.and_(pc.equal(pc.floor(array), array), pc.less(pc.abs(array), 2.0**63))
        text = pc.if_else(
            integral,
            pc.cast(pc.cast(array, pa.int64(), safe=False), pa.string()),
            pc.cast(array, pa.string()),
        )
        return _drop(text, errors), errors
    if kind == "timestamp":
        return iso_timestamps(array), {}
    if kind == "time":
        return mysql_times(array), {}
    if kind in ("base64", "hex", "bit"):
        encode: Callable[[bytes], str] = {
            "base64": lambda b: base64.b64encode(_bytes(b)).decode("ascii"),
            "hex": lambda b: _bytes(b).hex(),
            "bit": lambda b: str(int.from_bytes(_bytes(b), "big")),
        }[kind]
        return _per_value(array, encode, pa.string()), {}
    if kind == "string":  # column_types: string, from any type: its text as an identifier's
        natural = _natural_kind(arrow_field) if arrow_field is not None else "other"
        if natural in ("base64", "other"):  # bytes, or a type we do not know: the text as it is
            return plain_text(array), {}
        text, errors = _as_text(array, natural, arrow_field)
        return (text if text is not None else plain_text(array)), errors
    return None, {}


def _json_literal(array: pa.Array, kind: Kind) -> pa.Array:
    """JSON numbers, booleans, arrays: text that needs no quoting."""
    if kind == "decimal":
        return decimal_text(array)
    if kind in ("integer", "float"):
        return pc.cast(array, pa.string())
    if kind == "bool":
        return pc.if_else(array, "true", "false")
    if kind == "bit":
        return _per_value(array, lambda b: str(int.from_bytes(b, "big")), pa.string())
    if kind == "set":
        return _per_value(array, lambda s: orjson.dumps(s.split(",") if s else []).decode(), pa.string())
    if kind == "null":
        return pa.nulls(len(array), pa.string())
    return json_quote(plain_text(array))


# Arrow writes a decimal with an exponent when its adjusted exponent (digits - 1 - scale) is below -6:
# never with a scale of 6 or less.
_MAX_SCALE_WITHOUT_EXPONENT = 6


def decimal_text(array: pa.Array) -> pa.Array:
    """DECIMALs as the server prints them: every digit of the scale, never an exponent (Arrow's own
    cast writes `1.000E-7` for 0.0000001000). The digits come from the unscaled integer."""
    scale = array.type.scale
    if scale <= _MAX_SCALE_WITHOUT_EXPONENT:
        return pc.cast(array, pa.string())  # Arrow's own cast writes these positionally: faster
    wide = pa.types.is_decimal256(array.type)
    unscaled = (pa.decimal256 if wide else pa.decimal128)(array.type.precision, 0)
    digits = array.view(unscaled).cast(pa.string())
    if scale <= 0:
        return digits
    negative = pc.starts_with(digits, "-")
    padded = pc.utf8_lpad(pc.utf8_ltrim(digits, "-"), scale + 1, "0")
    whole = pc.utf8_slice_codeunits(padded, 0, -scale)
    fraction = pc.utf8_slice_codeunits(padded, -scale, 2**31 - 1)
    return pc.binary_join_element_wise(pc.if_else(negative, "-", ""), whole, ".", fraction, "")


def iso_timestamps(array: pa.Array) -> pa.Array:
    """ISO-8601 with the UTC offset of the column's zone, e.g. `2026-12-01T09:30:00.250000+02:00`
    (microseconds only when there are some), as Python's `isoformat` writes it."""
    zone = getattr(array.type, "tz", None)
    offset = _fixed_offset(zone)
    if zone is None or offset is not None:
        # Casting the wall-clock time is some forty times faster than strftime.
        shift = (offset or 0) * _UNITS_PER_SECOND[array.type.unit]
        wall = pc.cast(pc.add(pc.cast(array, pa.int64()), shift), pa.timestamp(array.type.unit))
        suffix = "" if zone is None else _offset_text(offset or 0)
        whole = _whole_seconds_text(wall, suffix)
        if whole is not None:
            return whole
        text = pc.replace_substring(pc.cast(wall, pa.string()), " ", "T", max_replacements=1)
        text = pc.replace_substring_regex(text, r"\.0+$", "")
        return pc.binary_join_element_wise(text, suffix, "") if suffix else text
    text = pc.strftime(array, format="%Y-%m-%dT%H:%M:%S%z")  # a named zone: the offset varies
    text = pc.replace_substring_regex(text, r"([+-]\d\d)(\d\d)$", r"\1:\2")
    return pc.replace_substring_regex(text, r"\.0{6}([+-])", r"\1")


def _whole_seconds_text(wall: pa.Array, suffix: str) -> pa.Array | None:
    """The common case, a column without fractions of a second and with four-digit years, done
    without a regular expression per value: every value is `YYYY-MM-DD HH:MM:SS`, so the `T` and
    the offset are written into a grid of bytes. None when the column is not that case."""
    seconds = pc.cast(wall, pa.timestamp("s"), safe=False)
    if (
        wall.null_count == len(wall)
        or pc.all(pc.equal(pc.cast(seconds, wall.type), wall)).as_py() is not True
    ):
        return None
    filled = pc.fill_null(seconds, pa.scalar(0, seconds.type)) if seconds.null_count else seconds
    grid = text_buffers.fixed_width(pc.cast(filled, pa.string()), 19)
    if grid is None:
        return None
    grid[:, 10] = ord("T")
    if suffix:
        tail = np.broadcast_to(np.frombuffer(suffix.encode(), np.uint8), (len(grid), len(suffix)))
        grid = np.concatenate([grid, tail], axis=1)
    return text_buffers.from_fixed_width(grid, like=wall)


_UNITS_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _fixed_offset(zone: str | None) -> int | None:
    """Seconds east of UTC for `+02:00`-style zones (and UTC); None for named zones."""
    if zone in ("UTC", "Z"):
        return 0
    if zone and len(zone) == 6 and zone[0] in "+-" and zone[3] == ":":
        seconds = int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
        return seconds if zone[0] == "+" else -seconds
    return None


def _offset_text(seconds: int) -> str:
    sign = "-" if seconds < 0 else "+"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


def mysql_times(array: pa.Array) -> pa.Array:
    """TIME as MySQL writes it: `-838:59:59` to `838:59:59`, with microseconds when present."""
    micros = pc.cast(array, pa.int64())
    magnitude = pc.abs(micros)
    hours = pc.divide(magnitude, _MICROS_PER["hours"])
    rest = pc.subtract(magnitude, pc.multiply(hours, _MICROS_PER["hours"]))
    minutes = pc.divide(rest, _MICROS_PER["minutes"])
    rest = pc.subtract(rest, pc.multiply(minutes, _MICROS_PER["minutes"]))
    seconds = pc.divide(rest, _MICROS_PER["seconds"])
    fraction = pc.subtract(rest, pc.multiply(seconds, _MICROS_PER["seconds"]))

    def two(values: pa.Array) -> pa.Array:
        return pc.utf8_lpad(pc.cast(values, pa.string()), 2, "0")

    sign = pc.if_else(pc.less(micros, 0), "-", "")
    tail = pc.if_else(
        pc.equal(fraction, 0),
        "",
        pc.binary_join_element_wise(".", pc.utf8_lpad(pc.cast(fraction, pa.string()), 6, "0"), ""),
    )
    return pc.binary_join_element_wise(sign, two(hours), ":", two(minutes), ":", two(seconds), tail, "")


def plain_text(array: pa.Array, decode: Callable[[bytes], str] | None = None) -> pa.Array:
    """Any value as text: dates and times as the mapping writes them, DECIMALs as the server prints
    them, bytes through `decode` (UTF-8, a byte that is not UTF-8 becoming U+FFFD, by default)."""
    kind = array.type
    if pa.types.is_timestamp(kind):
        return iso_timestamps(array)
    if pa.types.is_duration(kind):
        return mysql_times(array)
    if pa.types.is_decimal(kind):
        return decimal_text(array)
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return _per_value(array, decode or (lambda b: b.decode("utf-8", errors="replace")), pa.string())
    if pa.types.is_boolean(kind):
        return pc.if_else(array, "true", "false")
    if pa.types.is_null(kind):
        return pa.nulls(len(array), pa.string())
    return pc.cast(array, pa.string())


def _boolean(array: pa.Array, strict: bool = False) -> Rendered:
    """true/false from numbers (true when not zero; with `strict`, only 0 and 1), BIT(1) bytes, or
    the text true/false/1/0 in any case; anything else rejects its row."""
    kind = array.type
    errors: dict[int, str] = {}
    if pa.types.is_boolean(kind):
        truth = array
    elif pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        # A zero of the column's own type: DECIMAL(23,23) has no room for an integer 0.
        zero = pa.scalar(Decimal(0) if pa.types.is_decimal(kind) else 0, kind)
        truth = pc.not_equal(array, zero)
        if strict:
            one = (
                pa.scalar(Decimal(1) if pa.types.is_decimal(kind) else 1, kind) if _holds_one(kind) else None
            )
            other = pc.and_(truth, pc.not_equal(array, one)) if one is not None else truth
            for row in pc.indices_nonzero(pc.fill_null(other, False)).to_pylist():
                errors[row] = f"{array[row].as_py()} is not a boolean (expected 0/1 or true/false)"
    elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind):  # BIT(1)
        truth = pa.array([None if b is None else any(b) for b in array.to_pylist()], pa.bool_())
    else:
        text = pc.utf8_lower(plain_text(array))
        truth = pc.is_in(text, value_set=pa.array(["true", "1"]))
        known = pc.is_in(text, value_set=pa.array(["true", "false", "1", "0"]))
        for row in pc.indices_nonzero(pc.and_(pc.invert(known), pc.is_valid(text))).to_pylist():
            errors[row] = f"{array[row].as_py()!r} is not a boolean (expected 0/1 or true/false)"
        truth = pc.if_else(pc.is_valid(array), truth, pa.scalar(None, pa.bool_()))
    json = pc.if_else(truth, "true", "false")
    return Rendered(_drop(json, errors), None, errors)


def _holds_one(kind: pa.DataType) -> bool:
    """Can the type hold 1 (a DECIMAL(5,5) cannot)?"""
    return not pa.types.is_decimal(kind) or kind.precision > kind.scale


def _json_documents(array: pa.Array) -> Rendered:
    """Every document parsed and written again (json_documents.py); the document `null` is NULL,
    and a value that is not one document rejects its row."""
    stored = array if pa.types.is_string(array.type) else array.cast(pa.string())
    documents = read_documents(stored)
    return Rendered(documents.text, None, documents.errors, documents)


def _ids_from_json(rendered: Rendered) -> Rendered:
    """An identifier from a document: a string's text, or a number as written."""
    errors = dict(rendered.errors)
    written = rendered.json_text().to_pylist()
    texts: list[str | None] = []
    for row, value in enumerate(rendered.documents.values if rendered.documents else []):
        if value is None or row in errors:
            texts.append(None)
        elif isinstance(value, str):
            texts.append(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            texts.append(written[row])
        else:
            errors[row] = _ID_ERROR
            texts.append(None)
    text = pa.array(texts, pa.string())
    text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
    return Rendered(None, text, errors, escaped=json_escape(text))


def _non_finite(array: pa.Array) -> dict[int, str]:
    bad = pc.and_(pc.is_valid(array), pc.invert(pc.is_finite(array)))
    return {
        row: f"{array[row].as_py()} is not a JSON number (NaN and infinities cannot be sent)"
        for row in pc.indices_nonzero(bad).to_pylist()
    }


def _drop(values: pa.Array, errors: dict[int, str]) -> pa.Array:
    """Null out the rows with errors."""
    if not errors:
        return values
    mask = pa.array([row in errors for row in range(len(values))])
    return pc.if_else(mask, pa.scalar(None, values.type), values)


def _valid_rows(array: pa.Array) -> list[int]:
    return pc.indices_nonzero(pc.is_valid(array)).to_pylist()


def _bytes(value: bytes | str) -> bytes:
    """Text declared base64/hex is encoded from its UTF-8 bytes."""
    return value.encode() if isinstance(value, str) else value


def _per_value(array: pa.Array, convert: Callable[[Any], str], type_: pa.DataType) -> pa.Array:
    return pa.array([None if value is None else convert(value) for value in array.to_pylist()], type_)
