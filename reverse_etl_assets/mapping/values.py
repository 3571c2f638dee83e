"""Arrow column values → JSON-ready values, one column at a time.

Each converter takes a column's Python values and returns the converted values plus the rows whose
value cannot be sent, with the reason. Choosing the converter once per column keeps type dispatch
off the per-row path.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson
import pyarrow as pa

from reverse_etl_assets.config.models import ColumnType
from reverse_etl_assets.source.type_mapping import DATABASE_TYPE, JSON_COLUMN

Converted = tuple[list[Any], dict[int, str]]
ColumnConverter = Callable[[list[Any]], Converted]


def column_converter(field: pa.Field, declared: ColumnType | None, as_id: bool) -> ColumnConverter:
    """Pick the converter for one result column.

    `declared` comes from the sync's `column_types`; `as_id` is true for userId, groupId and the
    other identifiers, which are always sent as strings.
    """
    value = _value_function(field, declared)
    if as_id:
        value = _as_id(value)
    if value is None:
        return _unchanged
    return _apply(value)


def _value_function(field: pa.Field, declared: ColumnType | None) -> Callable[[Any], Any] | None:
    kind = field.type
    database_type = (field.metadata or {}).get(DATABASE_TYPE, b"").decode()
    if declared == "json" or (declared is None and (field.metadata or {}).get(JSON_COLUMN)):
        return _json
    if declared == "boolean" or (declared is None and database_type in ("tinyint(1)", "bit(1)")):
        return _boolean
    if declared == "string":
        return _string
    if declared == "hex":
        return _hex
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or declared == "base64":
        return _bit_integer if database_type == "bit" and declared is None else _base64
    if pa.types.is_decimal(kind):
        return _decimal
    if pa.types.is_floating(kind):
        return _float
    if pa.types.is_timestamp(kind):
        return _timestamp
    if pa.types.is_date(kind):
        return dt.date.isoformat
    if pa.types.is_duration(kind):
        return _time_of_day
    if database_type == "set":
        return _set_members
    return None  # str, int and bool are JSON as they are


def _unchanged(values: list[Any]) -> Converted:
    return values, {}


def _apply(function: Callable[[Any], Any]) -> ColumnConverter:
    def convert(values: list[Any]) -> Converted:
        out: list[Any] = []
        errors: dict[int, str] = {}
        for row, value in enumerate(values):
            if value is None:
                out.append(None)
                continue
            try:
                out.append(function(value))
            except InvalidValue as error:
                out.append(None)
                errors[row] = str(error)
        return out, errors

    return convert


class InvalidValue(ValueError):
    """A value that has no faithful JSON form; the row is rejected with this reason."""


def _as_id(value: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
    def to_id(raw: Any) -> str:
        converted = value(raw) if value else raw
        if isinstance(converted, orjson.Fragment):  # a DECIMAL used as an id
            converted = str(raw.normalize()) if isinstance(raw, Decimal) else raw
        if isinstance(converted, float) and converted.is_integer():
            converted = int(converted)
        if isinstance(converted, (dict, list)):
            raise InvalidValue("an identifier must be a single value, not a JSON object or array")
        if isinstance(converted, bool):
            raise InvalidValue("an identifier cannot be true/false")
        return str(converted)

    return to_id


def _json(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="strict")
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as error:
        raise InvalidValue(f"not valid JSON ({error})") from None


def _boolean(value: Any) -> bool:
    if isinstance(value, bytes):  # BIT(1)
        return any(value)
    if isinstance(value, (int, float, Decimal)):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise InvalidValue(f"{value!r} is not a boolean (expected 0/1 or true/false)")


def _string(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


def _hex(value: Any) -> str:
    return value.hex() if isinstance(value, bytes) else str(value)


def _base64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _bit_integer(value: bytes) -> int:
    return int.from_bytes(value, "big")


def _decimal(value: Decimal) -> orjson.Fragment:
    """DECIMAL is written with exactly its digits: a JSON number, never rounded through a float."""
    if not value.is_finite():
        raise InvalidValue(f"{value} is not a JSON number")
    return orjson.Fragment(str(value).encode())


def _float(value: float) -> float:
    if not math.isfinite(value):
        raise InvalidValue(f"{value} is not a JSON number (NaN and infinities cannot be sent)")
    return value


def _timestamp(value: dt.datetime) -> str:
    """ISO-8601 with the session's UTC offset, e.g. `2026-12-01T09:30:00+00:00`."""
    return value.isoformat()


def _time_of_day(value: dt.timedelta) -> str:
    """TIME as MySQL writes it, `-838:59:59` to `838:59:59`, with microseconds when present."""
    sign = "-" if value < dt.timedelta(0) else ""
    total = abs(value)
    hours, rest = divmod(total.days * 86400 + total.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    fraction = f".{total.microseconds:06d}" if total.microseconds else ""
    return f"{sign}{hours:02d}:{minutes:02d}:{seconds:02d}{fraction}"


def _set_members(value: str) -> list[str]:
    return value.split(",") if value else []
