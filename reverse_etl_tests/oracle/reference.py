"""A slow, obviously-correct reference encoder, written from docs/mapping.md alone.

It reads a query with plain PyMySQL (a `DictCursor`, default converters) in a session set up like the
product's, applies the documented rules to each Python value one at a time, and says for each row
either the call it must become (a tree of expected values, `Obj` at the top) or that it must be
rejected (and which fields the rejection may name). `diff` compares one sent line with an expected
call: numbers by their exact text (integers, DECIMALs, JSON-document numbers) or by value (FLOAT and
DOUBLE), JSON-document members in their order, and nothing in the line escaped that JSON does not
require.

Nothing here imports the product's mapping code.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pymysql
import pymysql.cursors
from pymysql.constants import FIELD_TYPE, FLAG

# ---------------------------------------------------------------------------------------------
# Expected values. A node is one of: str, bool, None, list[node], Num, FloatNum, FloatText, HexText,
# Obj, ANY_MESSAGE_ID, ANY_LIBRARY.

Node = Any


@dataclass(frozen=True)
class Num:
    """A JSON number that must be written with exactly this text."""

    text: str


@dataclass(frozen=True)
class FloatNum:
    """A JSON number equal to this double (its sign too), with as few significant digits as Python's
    shortest round-trip form (`repr`)."""

    value: float


@dataclass(frozen=True)
class FloatText:
    """A JSON string holding a number equal to this double, in a shortest form."""

    value: float


@dataclass(frozen=True)
class HexText:
    """A JSON string holding these hex digits (either case)."""

    text: str


@dataclass(frozen=True)
class _Marker:
    name: str


ANY_MESSAGE_ID = _Marker("a product-made messageId: 32 hex characters")
ANY_LIBRARY = _Marker("context.library (presence only)")


@dataclass
class Obj:
    """An object. `ordered`: a JSON document's object, whose members keep their stored order
    (`unordered` keys, such as the library added to a whole-object `context`, are left out of the
    order check). `optional` keys may also be absent."""

    members: dict[str, Node]
    ordered: bool = False
    optional: frozenset[str] = frozenset()
    unordered: frozenset[str] = frozenset()


# ---------------------------------------------------------------------------------------------
# A sent line, parsed so that nothing is lost: objects as lists of (key, value) pairs (repeats
# kept, order kept), numbers as their text.


@dataclass(frozen=True)
class RawNumber:
    text: str


class Pairs(list):  # type: ignore[type-arg]
    """An object's members as sent: (key, value) pairs in order."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_line(line: bytes) -> Any:
    """The line as a tree of Pairs, lists, RawNumber, str, bool and None (raises if it is not one
    JSON document)."""
    return json.loads(
        line.decode("utf-8"),
        object_pairs_hook=Pairs,
        parse_int=RawNumber,
        parse_float=RawNumber,
        parse_constant=_no_constant,
    )


def lexical_problems(line: bytes) -> list[str]:
    """Escapes JSON does not require (docs: "escaped as JSON requires and nothing more") and
    whitespace outside strings (docs: documents are "written again compactly")."""
    text = line.decode("utf-8")
    problems: list[str] = []
    i, in_string = 0, False
    while i < len(text):
        char = text[i]
        if in_string:
            if char == "\\":
                escape = text[i + 1]
                if escape in '"\\bfnrt':
                    i += 2
                    continue
                if escape == "u":
                    code = int(text[i + 2 : i + 6], 16)
                    if code >= 0x20:
                        problems.append(f"unneeded escape \\u{text[i + 2 : i + 6]} at character {i}")
                    i += 6
                    continue
                problems.append(f"unneeded escape \\{escape} at character {i}")
                i += 2
                continue
            if char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in " \t\n\r":
            problems.append(f"whitespace outside strings at character {i}")
        i += 1
    return problems


def _significant(text: str) -> str:
    mantissa = re.split("[eE]", text.lstrip("-"))[0].replace(".", "")
    return mantissa.strip("0") or "0"


_JSON_NUMBER = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?")


def _same_double(text: str, value: float) -> bool:
    if not _JSON_NUMBER.fullmatch(text):
        return False
    parsed = float(text)
    return parsed == value and math.copysign(1.0, parsed) == math.copysign(1.0, value)


def _shortest(text: str, value: float) -> bool:
    return len(_significant(text)) <= len(_significant(repr(value)))


def _show(value: Any) -> str:
    if isinstance(value, RawNumber):
        return value.text
    if isinstance(value, Pairs):
        return "{" + ",".join(f"{k!r}:{_show(v)}" for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_show(v) for v in value) + "]"
    return repr(value)


def diff(expected: Node, actual: Any, path: str = "") -> list[str]:
    """Every way `actual` (from parse_line) differs from `expected`; [] when it matches."""
    where = path or "(call)"
    if isinstance(expected, Obj):
        if not isinstance(actual, Pairs):
            return [f"{where}: expected an object, got {_show(actual)}"]
        keys = [key for key, _ in actual]
        problems = [f"{where}: key {key!r} sent twice" for key in sorted(set(keys)) if keys.count(key) > 1]
        got = dict(actual)
        for key in expected.members.keys() - got.keys():
            if key not in expected.optional:
                problems.append(f"{where}: {key!r} missing")
        for key in got.keys() - expected.members.keys():
            problems.append(f"{where}: unexpected {key!r} = {_show(got[key])}")
        for key, node in expected.members.items():
            if key in got:
                problems += diff(node, got[key], f"{path}.{key}" if path else key)
        if expected.ordered and not problems:
            want = [k for k in expected.members if k in got and k not in expected.unordered]
            sent = [k for k in keys if k not in expected.unordered]
            if want != sent:
                problems.append(f"{where}: members in the order {sent}, stored order {want}")
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list) or isinstance(actual, Pairs):
            return [f"{where}: expected an array, got {_show(actual)}"]
        if len(actual) != len(expected):
            return [f"{where}: expected {len(expected)} items, got {_show(actual)}"]
        return [
            p
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for p in diff(e, a, f"{where}[{i}]")
        ]
    if isinstance(expected, Num):
        if isinstance(actual, RawNumber) and actual.text == expected.text:
            return []
        return [f"{where}: expected the number {expected.text}, got {_show(actual)}"]
    if isinstance(expected, FloatNum):
        if isinstance(actual, RawNumber) and _same_double(actual.text, expected.value):
            if _shortest(actual.text, expected.value):
                return []
            return [f"{where}: {actual.text} is not a shortest form of {expected.value!r}"]
        return [f"{where}: expected a number equal to {expected.value!r}, got {_show(actual)}"]
    if isinstance(expected, FloatText):
        if (
            isinstance(actual, str)
            and _same_double(actual, expected.value)
            and _shortest(actual, expected.value)
        ):
            return []
        return [f"{where}: expected text of the number {expected.value!r}, got {_show(actual)}"]
    if isinstance(expected, HexText):
        if isinstance(actual, str) and actual.lower() == expected.text.lower():
            return []
        return [f"{where}: expected the hex text {expected.text!r}, got {_show(actual)}"]
    if expected is ANY_MESSAGE_ID:
        if isinstance(actual, str) and re.fullmatch(r"[0-9a-fA-F]{32}", actual):
            return []
        return [f"{where}: expected a 32-hex messageId, got {_show(actual)}"]
    if expected is ANY_LIBRARY:
        return (
            []
            if isinstance(actual, Pairs)
            else [f"{where}: expected the library object, got {_show(actual)}"]
        )
    if isinstance(expected, bool) or expected is None or isinstance(expected, str):
        if type(actual) is type(expected) and actual == expected:
            return []
        return [f"{where}: expected {expected!r}, got {_show(actual)}"]
    raise TypeError(f"unknown expected node {expected!r}")


def show_expected(node: Node) -> str:
    """An expected tree as JSON-like text, for messages."""
    if isinstance(node, Obj):
        optional = node.optional
        inner = ",".join(
            f"{k!r}{'?' if k in optional else ''}:{show_expected(v)}" for k, v in node.members.items()
        )
        return "{" + inner + "}"
    if isinstance(node, list):
        return "[" + ",".join(show_expected(v) for v in node) + "]"
    if isinstance(node, Num):
        return node.text
    if isinstance(node, FloatNum):
        return f"≈{node.value!r}"
    if isinstance(node, FloatText):
        return f'"≈{node.value!r}"'
    if isinstance(node, HexText):
        return f"hex:{node.text}"
    if isinstance(node, _Marker):
        return f"<{node.name}>"
    return json.dumps(node, ensure_ascii=False)


# ---------------------------------------------------------------------------------------------
# Outcomes


@dataclass
class Sent:
    call: Obj


@dataclass
class Rejected:
    fields: frozenset[str]  # the rejection may name any of these (the column or its call field)
    reasons: tuple[str, ...]


Outcome = Sent | Rejected


class Refused(Exception):
    """The value cannot become part of a call: its row is rejected."""


# ---------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class Database:
    host: str
    port: int
    user: str
    password: str
    database: str


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type_code: int
    flags: int
    charsetnr: int
    length: int
    scale: int


def read_query(db: Database, query: str, time_zone: str) -> tuple[list[ColumnInfo], list[dict[str, Any]]]:
    """The query's columns and rows, read as the product's session would (utf8mb4, time_zone)."""
    connection = pymysql.connect(
        host=db.host,
        port=db.port,
        user=db.user,
        password=db.password,
        database=db.database,
        charset="utf8mb4",
        cursorclass=pymysql.cursors.DictCursor,
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET NAMES utf8mb4")
            cursor.execute("SET time_zone = %s", (time_zone,))
            cursor.execute(query)
            rows = list(cursor.fetchall())
            fields = cursor._result.fields  # PyMySQL's own description: flags, charset, length, scale
            columns = [
                ColumnInfo(f.name, f.type_code, f.flags, f.charsetnr, f.length, f.scale) for f in fields
            ]
    finally:
        connection.close()
    return columns, rows


# ---------------------------------------------------------------------------------------------
# Value classes: what a database value is, before the rule of where it goes applies.


@dataclass(frozen=True)
class Null:
    pass


NULL = Null()


@dataclass(frozen=True)
class Integer:  # every integer type, YEAR, BIT(n)
    text: str


@dataclass(frozen=True)
class Flag:  # TINYINT(1), BIT(1), or a value made boolean by column_types
    value: bool
    text: str  # the number it holds


@dataclass(frozen=True)
class DecimalValue:
    text: str


@dataclass(frozen=True)
class Double:
    value: float


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Rendered:  # a JSON string decided already (a float as text, hex)
    node: Node


@dataclass(frozen=True)
class SetValue:
    members: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class Binary:
    data: bytes


@dataclass(frozen=True)
class Temporal:
    text: str
    kind: str  # date, datetime, time


@dataclass(frozen=True)
class Document:
    node: Node
    kind: str  # object, array, string, number, boolean
    text: str  # as stored


Cell = (
    Null | Integer | Flag | DecimalValue | Double | Text | Rendered | SetValue | Binary | Temporal | Document
)

_INTEGER_TYPES = {FIELD_TYPE.TINY, FIELD_TYPE.SHORT, FIELD_TYPE.INT24, FIELD_TYPE.LONG, FIELD_TYPE.LONGLONG}
_TEXT_TYPES = {
    FIELD_TYPE.STRING,
    FIELD_TYPE.VAR_STRING,
    FIELD_TYPE.VARCHAR,
    FIELD_TYPE.TINY_BLOB,
    FIELD_TYPE.MEDIUM_BLOB,
    FIELD_TYPE.LONG_BLOB,
    FIELD_TYPE.BLOB,
    FIELD_TYPE.ENUM,
    FIELD_TYPE.SET,
    FIELD_TYPE.JSON,
}
_FIXED_OFFSET = re.compile(r"([+-])(\d{2}):(\d{2})")


def read_cell(value: Any, column: ColumnInfo, time_zone: str) -> Cell:
    """The value class of one value PyMySQL read, from its Python type and the column's metadata."""
    if value is None:
        return NULL
    code = column.type_code
    if code == FIELD_TYPE.TINY and column.length == 1:
        return Flag(value != 0, str(value))
    if code == FIELD_TYPE.BIT:
        number = int.from_bytes(value, "big")
        return Flag(number != 0, str(number)) if column.length == 1 else Integer(str(number))
    if code in _INTEGER_TYPES or code == FIELD_TYPE.YEAR:
        assert isinstance(value, int), (column, value)
        return Integer(str(value))
    if code in (FIELD_TYPE.NEWDECIMAL, FIELD_TYPE.DECIMAL):
        assert isinstance(value, Decimal), (column, value)
        text = format(value, "f")
        digits_after = len(text.partition(".")[2])
        assert digits_after == column.scale, (column, text)  # the server's text, every digit of the scale
        return DecimalValue(text)
    if code in (FIELD_TYPE.FLOAT, FIELD_TYPE.DOUBLE):
        assert isinstance(value, float), (column, value)
        if not math.isfinite(value):
            raise Refused(f"{value!r} is not a JSON number")
        return Double(value)
    if code in (FIELD_TYPE.DATE, FIELD_TYPE.NEWDATE):
        if isinstance(value, str):
            return _zero_or_invalid(value)
        return Temporal(value.isoformat(), "date")
    if code in (FIELD_TYPE.DATETIME, FIELD_TYPE.TIMESTAMP):
        if isinstance(value, str):
            return _zero_or_invalid(value)
        return Temporal(render_datetime(value, time_zone), "datetime")
    if code == FIELD_TYPE.TIME:
        return Temporal(render_time(value), "time")
    if code in _TEXT_TYPES:
        if column.flags & FLAG.SET:
            return SetValue(tuple(value.split(",")) if value else (), value)
        if isinstance(value, bytes):
            assert column.charsetnr == 63, column
            return Binary(value)
        return Text(value)
    raise AssertionError(f"the reference does not know type code {code} ({column})")


def _zero_or_invalid(text: str) -> Cell:
    """PyMySQL hands over as text the dates Python cannot hold: a zero date is NULL, any other date
    is invalid."""
    match = re.match(r"(\d{4})-(\d{2})-(\d{2})", text)
    assert match, text
    if 0 in (int(match[1]), int(match[2]), int(match[3])):
        return NULL
    raise Refused(f"{text!r} is not a valid date")


def render_datetime(wall: dt.datetime, time_zone: str) -> str:
    """A wall-clock time in the session's time zone as ISO-8601 text with its UTC offset (docs:
    the repeated hour's first instant; a skipped time moves forward to the end of the gap)."""
    fixed = _FIXED_OFFSET.fullmatch(time_zone)
    if fixed:
        return _iso(wall) + time_zone
    zone = ZoneInfo(time_zone)
    # PEP 495: in the repeated hour fold=0 is the earlier instant (the larger offset); in a gap
    # fold=0 takes the offset from before it (the smaller one).
    before, after = (
        wall.replace(tzinfo=zone, fold=0).utcoffset(),
        wall.replace(tzinfo=zone, fold=1).utcoffset(),
    )
    assert before is not None and after is not None
    if before >= after:  # an ordinary time, or the repeated hour: its first instant
        return _iso(wall) + _offset_text(before)
    moved = wall.replace(second=0, microsecond=0)
    while True:  # a skipped time: the first whole minute after the gap is where it ends
        moved += dt.timedelta(minutes=1)
        first, second = (
            moved.replace(tzinfo=zone, fold=0).utcoffset(),
            moved.replace(tzinfo=zone, fold=1).utcoffset(),
        )
        if first == second:
            return _iso(moved) + _offset_text(first)


def _iso(wall: dt.datetime) -> str:
    text = (
        f"{wall.year:04d}-{wall.month:02d}-{wall.day:02d}T{wall.hour:02d}:{wall.minute:02d}:{wall.second:02d}"
    )
    return text + (f".{wall.microsecond:06d}" if wall.microsecond else "")


def _offset_text(offset: dt.timedelta | None) -> str:
    assert offset is not None
    seconds = int(offset.total_seconds())
    assert seconds % 60 == 0, f"an offset of {offset} cannot be written as +HH:MM"
    sign = "-" if seconds < 0 else "+"
    minutes = abs(seconds) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def render_time(value: dt.timedelta) -> str:
    total = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    sign = "-" if total < 0 else ""
    total = abs(total)
    seconds, micros = divmod(total, 1_000_000)
    hours, rest = divmod(seconds, 3600)
    text = f"{sign}{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    return text + (f".{micros:06d}" if micros else "")


MAX_DEPTH = 254


def parse_document(text: str) -> Cell:
    """A JSON document: valid as orjson reads it, at most 254 levels deep; members in stored order
    (a repeated key keeps its last value), numbers as written. The document `null` is NULL."""
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise Refused(f"not valid JSON ({error})") from None
    depth = nesting_depth(text)
    if depth > MAX_DEPTH:
        raise Refused(f"a JSON document {depth} levels deep (at most {MAX_DEPTH})")
    node = json.loads(
        text, object_pairs_hook=_document_object, parse_int=Num, parse_float=Num, parse_constant=_no_constant
    )
    if node is None:
        return NULL
    kind = (
        "object"
        if isinstance(node, Obj)
        else "array"
        if isinstance(node, list)
        else "string"
        if isinstance(node, str)
        else "number"
        if isinstance(node, Num)
        else "boolean"
    )
    return Document(node, kind, text)


def _document_object(pairs: list[tuple[str, Node]]) -> Obj:
    members: dict[str, Node] = {}
    for key, value in pairs:
        members[key] = value  # a repeated key keeps its first place and its last value, as in orjson
    return Obj(members, ordered=True)


def nesting_depth(text: str) -> int:
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def apply_column_type(cell: Cell, column_type: str | None) -> Cell:
    """`column_types`: how a column is read when its database type does not say."""
    if column_type is None or isinstance(cell, Null):
        return cell
    if column_type == "json":
        if isinstance(cell, Text):
            return parse_document(cell.text)
        raise AssertionError(f"json declared on {cell!r}: not generated")
    if column_type == "string":
        return Text(_as_text(cell)) if not isinstance(cell, Double) else _double_as_text(cell.value)
    if column_type == "boolean":
        if isinstance(cell, Integer | Flag):
            if cell.text in ("0", "1"):
                return Flag(cell.text == "1", cell.text)
            raise Refused(f"{cell.text} is not 0/1 or true/false")
        if isinstance(cell, Text):
            if cell.text.lower() in ("true", "false", "0", "1"):
                value = cell.text.lower() in ("true", "1")
                return Flag(value, "1" if value else "0")
            raise Refused(f"{cell.text!r} is not 0/1 or true/false")
        raise AssertionError(f"boolean declared on {cell!r}: not generated")
    if column_type in ("base64", "hex"):
        assert isinstance(cell, Binary), cell
        if column_type == "hex":
            return Rendered(HexText(cell.data.hex()))
        return Text(base64.b64encode(cell.data).decode("ascii"))
    raise AssertionError(column_type)


def _as_text(cell: Cell) -> str:
    """`string`: as an identifier is written, a SET as the server writes it, bytes as UTF-8."""
    if isinstance(cell, Integer | DecimalValue | Flag):
        return cell.text
    if isinstance(cell, Text):
        return cell.text
    if isinstance(cell, SetValue):
        return cell.text
    if isinstance(cell, Binary):
        return cell.data.decode("utf-8", "replace")
    if isinstance(cell, Temporal):
        return cell.text
    if isinstance(cell, Document):
        return cell.text
    raise AssertionError(f"string declared on {cell!r}: not generated")


def _double_as_text(value: float) -> Cell:
    if value.is_integer() and abs(value) < 2**63:
        return Text(str(int(value)))
    return Rendered(FloatText(value))


# ---------------------------------------------------------------------------------------------
# Rules by where a value goes


class _Absent:
    pass


ABSENT = _Absent()


def identifier_rule(cell: Cell) -> Node:
    """Identifiers and the text fields: always a JSON string; empty text (whatever it was made
    from: empty bytes too) is no identifier."""
    node = _identifier_text(cell)
    return ABSENT if node == "" else node


def _identifier_text(cell: Cell) -> Node:
    if isinstance(cell, Null):
        return ABSENT
    if isinstance(cell, Text):
        return cell.text
    if isinstance(cell, Integer | DecimalValue):
        return cell.text
    if isinstance(cell, Double):
        converted = _double_as_text(cell.value)
        return converted.text if isinstance(converted, Text) else converted.node  # type: ignore[union-attr]
    if isinstance(cell, Rendered):
        return cell.node
    if isinstance(cell, Temporal):
        return cell.text
    if isinstance(cell, Binary):
        return base64.b64encode(cell.data).decode("ascii")
    if isinstance(cell, Document):
        if cell.kind == "string":
            return cell.node
        if cell.kind == "number":
            return cell.node.text
        raise Refused(f"a JSON {cell.kind} is not an identifier")
    if isinstance(cell, Flag):
        raise Refused("a flag (true/false) is not an identifier")
    if isinstance(cell, SetValue):
        raise Refused("a SET is not an identifier")
    raise AssertionError(cell)


def flag_rule(cell: Cell) -> Node:
    """integrations.*, context.active, context.network.*: true/false."""
    if isinstance(cell, Null):
        return ABSENT
    if isinstance(cell, Flag):
        return cell.value
    if isinstance(cell, Integer):
        return int(cell.text) != 0
    if isinstance(cell, DecimalValue):
        return Decimal(cell.text) != 0
    if isinstance(cell, Double):
        return cell.value != 0
    if isinstance(cell, Text):
        lowered = cell.text.lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise Refused(f"{cell.text!r} is not true, false, 1 or 0")
    raise Refused(f"{cell!r} is not a flag")


_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(?:Z|([+-])(\d{2}):(\d{2}))")


def real_instant(text: str) -> bool:
    """ISO-8601 date-time text with an offset that names a real instant."""
    match = _RFC3339.fullmatch(text)
    if not match:
        return False
    year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
    try:
        dt.datetime(year, month, day, hour, minute, second)
    except ValueError:
        return False
    return match[8] is None or (int(match[9]) <= 23 and int(match[10]) <= 59)


def timestamp_rule(cell: Cell) -> Node:
    if isinstance(cell, Null):
        return ABSENT
    if isinstance(cell, Temporal) and cell.kind == "datetime":
        return cell.text
    if isinstance(cell, Integer):
        raise Refused("an integer epoch is not a timestamp: FROM_UNIXTIME(epoch_column)")
    text = cell.text if isinstance(cell, Text | Temporal) else None
    if isinstance(cell, Document) and cell.kind == "string":
        text = cell.node
    if text is not None and real_instant(text):
        return text
    raise Refused(f"{cell!r} is not an ISO-8601 date-time with an offset")


def value_rule(cell: Cell) -> Node:
    """Traits, properties and other context fields."""
    if isinstance(cell, Null):
        return ABSENT
    if isinstance(cell, Integer | DecimalValue):
        return Num(cell.text)
    if isinstance(cell, Double):
        return FloatNum(cell.value)
    if isinstance(cell, Flag):
        return cell.value
    if isinstance(cell, Text | Temporal):
        return cell.text
    if isinstance(cell, Rendered):
        return cell.node
    if isinstance(cell, SetValue):
        return list(cell.members)
    if isinstance(cell, Binary):
        return base64.b64encode(cell.data).decode("ascii")
    if isinstance(cell, Document):
        return cell.node
    raise AssertionError(cell)


# ---------------------------------------------------------------------------------------------
# Names: where each column goes

RESERVED: dict[str, frozenset[str]] = {
    "identify": frozenset({"userId", "anonymousId", "timestamp", "messageId"}),
    "track": frozenset({"userId", "anonymousId", "groupId", "timestamp", "messageId", "event"}),
    "page": frozenset({"userId", "anonymousId", "timestamp", "messageId", "name", "category"}),
    "screen": frozenset({"userId", "anonymousId", "timestamp", "messageId", "name"}),
    "group": frozenset({"userId", "anonymousId", "timestamp", "messageId", "groupId", "objectTypeId"}),
    "alias": frozenset({"userId", "previousId", "timestamp", "messageId"}),
}
BAG = {
    "identify": "traits",
    "group": "traits",
    "track": "properties",
    "page": "properties",
    "screen": "properties",
}
WHOLE = ("traits", "properties", "context", "integrations")
CHANNELS = ("browser", "server", "mobile")
DEVICE_TYPES = ("android", "ios")
FLAG_PATHS = {("context", "active"), *(("context", "network", n) for n in ("bluetooth", "cellular", "wifi"))}
IDENTIFIER_PATHS = {("context", "channel"), ("context", "device", "type")}


def place(alias: str, call_type: str) -> tuple[tuple[str, ...], str]:
    """The call path a column writes and the rule its value follows: identifier, timestamp, flag,
    value, or whole (a whole object from a JSON document)."""
    if alias in RESERVED[call_type]:
        return (alias,), ("timestamp" if alias == "timestamp" else "identifier")
    if alias in WHOLE:
        return (alias,), "whole"
    parts = tuple(alias.split("."))
    if parts[0] == "integrations":
        return ("integrations", alias.partition(".")[2]), "flag"
    if parts[0] == "context":
        if parts in FLAG_PATHS:
            return parts, "flag"
        return parts, ("identifier" if parts in IDENTIFIER_PATHS else "value")
    assert call_type != "alias", f"alias calls have no traits or properties: {alias!r}"
    bag = BAG[call_type]
    path = parts if parts[0] == bag else (bag, *parts)
    if call_type == "group" and path == ("traits", "object_type_id"):
        return path, "identifier"
    return path, "value"


# ---------------------------------------------------------------------------------------------
# Rows to calls


@dataclass
class SyncSpec:
    call_type: str
    time_zone: str
    send_nulls: bool = False
    column_types: Mapping[str, str] = field(default_factory=dict)


def expected_outcomes(db: Database, query: str, spec: SyncSpec) -> list[Outcome]:
    columns, rows = read_query(db, query, spec.time_zone)
    return [encode_row(row, columns, spec) for row in rows]


def encode_row(row: Mapping[str, Any], columns: list[ColumnInfo], spec: SyncSpec) -> Outcome:
    problems: list[tuple[frozenset[str], str]] = []
    leaves: dict[tuple[str, ...], Node] = {}
    for column in columns:
        path, rule = place(column.name, spec.call_type)
        names = frozenset({column.name, ".".join(path)})
        try:
            cell = read_cell(row[column.name], column, spec.time_zone)
            cell = apply_column_type(cell, spec.column_types.get(column.name))
            node = _apply_rule(rule, cell, path, spec)
        except Refused as refused:
            problems.append((names, f"{column.name}: {refused}"))
            continue
        if node is not ABSENT:
            leaves[path] = node
    problems += _validate(leaves, spec.call_type)
    size = sum(len(".".join(path)) + _approximate_size(node) + 6 for path, node in leaves.items()) + 150
    if size > MAX_CALL_BYTES:
        problems.append((ANY_FIELD, f"the call is about {size} bytes (at most {MAX_CALL_BYTES})"))
    assert not 20_000 < size <= MAX_CALL_BYTES, f"a call of about {size} bytes: too near the limit to say"
    if problems:
        return Rejected(frozenset().union(*(names for names, _ in problems)), tuple(r for _, r in problems))
    return Sent(_assemble(leaves, spec.call_type))


MAX_CALL_BYTES = 32_000
ANY_FIELD = frozenset({"*"})  # the docs name no field for a call too large: any is accepted


def _approximate_size(node: Node) -> int:
    """About the bytes `node` takes in a call (exact for text, close for the rest)."""
    if isinstance(node, Obj):
        return sum(len(k.encode()) + 4 + _approximate_size(v) for k, v in node.members.items()) + 2
    if isinstance(node, list):
        return sum(_approximate_size(v) + 1 for v in node) + 2
    if isinstance(node, str):
        return len(json.dumps(node, ensure_ascii=False).encode())
    if isinstance(node, Num | HexText):
        return len(node.text) + 2
    if isinstance(node, FloatNum | FloatText):
        return len(repr(node.value)) + 2
    return 6


def _apply_rule(rule: str, cell: Cell, path: tuple[str, ...], spec: SyncSpec) -> Node:
    if rule == "identifier":
        return identifier_rule(cell)
    if rule == "timestamp":
        return timestamp_rule(cell)
    if rule == "flag":
        return flag_rule(cell)
    if rule == "whole":
        if isinstance(cell, Null):
            return ABSENT
        if isinstance(cell, Document) and cell.kind == "object":
            return cell.node
        raise Refused(f"{path[0]} must be a JSON object, not {cell!r}")
    node = value_rule(cell)
    if node is ABSENT and spec.send_nulls and path[0] in ("traits", "properties"):
        return None
    return node


def _validate(leaves: dict[tuple[str, ...], Node], call_type: str) -> list[tuple[frozenset[str], str]]:
    problems: list[tuple[frozenset[str], str]] = []

    def has(*names: str) -> bool:
        return any((name,) in leaves for name in names)

    def need(names: tuple[str, ...]) -> None:
        if not has(*names):
            problems.append((frozenset(names), f"a {call_type} call needs {' or '.join(names)}"))

    if call_type in ("identify", "page", "screen"):
        need(("userId", "anonymousId"))
    elif call_type == "track":
        need(("event",))
        need(("userId", "anonymousId", "groupId"))
    elif call_type == "group":
        need(("groupId",))
    elif call_type == "alias":
        need(("previousId",))
        need(("userId",))
    for path, allowed in ((("context", "channel"), CHANNELS), (("context", "device", "type"), DEVICE_TYPES)):
        if path in leaves and leaves[path] not in allowed:
            problems.append((frozenset({".".join(path)}), f"{leaves[path]!r} is not one of {allowed}"))
    for path in (("objectTypeId",), ("traits", "object_type_id")):
        if path in leaves and not (isinstance(leaves[path], str) and re.fullmatch(r"[0-9]+", leaves[path])):
            problems.append((frozenset({".".join(path)}), f"{leaves[path]!r} is not a stringified integer"))
    message_id = leaves.get(("messageId",))
    if isinstance(message_id, str) and len(message_id) > 100:  # (a FloatText is a short number)
        problems.append((frozenset({"messageId"}), "a messageId has at most 100 characters"))
    return problems


def _assemble(leaves: dict[tuple[str, ...], Node], call_type: str) -> Obj:
    tree: dict[str, Any] = {"type": call_type}
    for path, node in leaves.items():
        parent = tree
        for key in path[:-1]:
            parent = parent.setdefault(key, {})
            assert isinstance(parent, dict), f"two columns write {path}"
        assert path[-1] not in parent, f"two columns write {path}"
        parent[path[-1]] = node
    optional: set[str] = set()
    for name in ("traits", "properties", "integrations"):
        # A whole object whose document is {}: nothing in it; sent as {} or left out (docs do not say).
        if isinstance(tree.get(name), Obj) and not tree[name].members:
            optional.add(name)
    context = tree.get("context")
    if isinstance(context, Obj):  # a whole-object context: the document, and the library added
        tree["context"] = Obj(
            {**context.members, "library": ANY_LIBRARY}, ordered=True, unordered=frozenset({"library"})
        )
    else:
        tree["context"] = {**(context or {}), "library": ANY_LIBRARY}
    if "messageId" not in tree:
        tree["messageId"] = ANY_MESSAGE_ID
    if call_type == "group" and not {("objectTypeId",), ("traits", "object_type_id")} & leaves.keys():
        # Customer.io assumes "1" when it is left out; the docs say "1" when left out.
        tree["objectTypeId"] = "1"
        optional.add("objectTypeId")
    call = _to_obj(tree)
    call.optional = frozenset(optional)
    return call


def _to_obj(tree: Any) -> Any:
    if isinstance(tree, dict):
        return Obj({key: _to_obj(value) for key, value in tree.items()})
    return tree
