"""Hypothesis strategies for the oracle: a table of random columns (every type docs/mapping.md lists),
a handful of rows holding every value class, and a sync that aliases the columns into a call's fields.

A `TableCase` knows how to create and fill its table (in a session that lets MariaDB hold invalid
JSON, zero and invalid dates), the query that selects it (and the one connectorx can read), and the
sync's options (`column_types`, `send_nulls`, `batch_rows`, the session `time_zone`).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

TIME_ZONES = ("+00:00", "-05:30", "Europe/Berlin", "America/New_York")
NAMED_ZONES = ("Europe/Berlin", "America/New_York")
CALL_TYPES = ("identify", "track", "group", "page", "screen", "alias")
BAG = {
    "identify": "traits",
    "group": "traits",
    "track": "properties",
    "page": "properties",
    "screen": "properties",
}


@dataclass(frozen=True)
class ColumnPlan:
    name: str  # in the table: c0, c1, ...
    ddl: str  # its SQL type
    kind: str  # int, year, flag, bit1, bitn, decimal, float, double, date, datetime, timestamp, time,
    # text, enum, set, binary, json; null: the query selects the literal NULL instead
    alias: str  # what the query calls it: where it goes in the call
    values: tuple[Any, ...]  # one per row, None for NULL, as INSERT parameters
    column_type: str | None  # its column_types entry
    connectorx_type: bool  # connectorx accepts it (not FLOAT, TIME, a DECIMAL beyond (18, 10), a bare NULL)
    unreadable_dates: bool  # holds zero or invalid dates, which connectorx cannot read

    @property
    def connectorx(self) -> bool:
        return self.connectorx_type and not self.unreadable_dates


@dataclass(frozen=True)
class TableCase:
    call_type: str
    columns: tuple[ColumnPlan, ...]
    rows: int
    time_zone: str
    send_nulls: bool
    batch_rows: int

    def create_table(self, table: str) -> str:
        columns = ", ".join(f"{c.name} {c.ddl}" for c in self.columns)
        return f"CREATE TABLE `{table}` (id INT PRIMARY KEY, {columns}) CHARACTER SET utf8mb4"

    def insert(self, table: str) -> tuple[str, list[tuple[Any, ...]]]:
        names = ", ".join(["id", *(c.name for c in self.columns)])
        marks = ", ".join(["%s"] * (len(self.columns) + 1))
        rows = [(i + 1, *(c.values[i] for c in self.columns)) for i in range(self.rows)]
        return f"INSERT INTO `{table}` ({names}) VALUES ({marks})", rows

    def selected(self, connectorx: bool = False) -> tuple[ColumnPlan, ...]:
        return tuple(c for c in self.columns if c.connectorx or not connectorx)

    def query(self, table: str, connectorx: bool = False) -> str | None:
        columns = self.selected(connectorx)
        if not columns:
            return None
        select = ", ".join(
            f"{'NULL' if c.kind == 'null' else c.name} AS `{c.alias.replace('`', '``')}`" for c in columns
        )
        return f"SELECT {select} FROM `{table}` ORDER BY id"

    def column_types(self, connectorx: bool = False) -> dict[str, str]:
        return {c.alias: c.column_type for c in self.selected(connectorx) if c.column_type}

    @property
    def connectorx_refuses(self) -> bool:
        return any(not c.connectorx for c in self.columns)

    def sql_script(self, table: str = "t") -> str:
        """The table as SQL to paste into a client, for a failure's report."""
        insert, rows = self.insert(table)
        values = [
            "(" + ", ".join(_literal(v) for v in row) + ")"  # a readable rendering, not escaping-grade
            for row in rows
        ]
        return "\n".join(
            [
                "SET SESSION sql_mode = 'STRICT_ALL_TABLES,ALLOW_INVALID_DATES';",
                "SET SESSION check_constraint_checks = 0; SET time_zone = '+00:00';",
                self.create_table(table) + ";",
                insert.split(" VALUES ")[0] + " VALUES",
                ",\n".join(values) + ";",
                f"-- sync: type {self.call_type}, time_zone {self.time_zone!r}, "
                f"send_nulls {self.send_nulls}, batch_rows {self.batch_rows}, "
                f"column_types {self.column_types()}",
                (self.query(table) or "") + ";",
            ]
        )


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return f"X'{value.hex()}'"
    if isinstance(value, int | float):
        return repr(value)
    if len(value) > 200 and len(set(value)) == 1:
        return f"REPEAT('{value[0]}', {len(value)})"
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def chance(times: int, out_of: int) -> st.SearchStrategy[bool]:
    """True `times` in `out_of`. (Hypothesis draws small integers far more often than others, so
    `integers(0, 9) == 0` would be true about a third of the time; sampled_from is near uniform,
    and it leans towards its first items, False here.)"""
    return st.sampled_from([False] * (out_of - times) + [True] * times)


# ---------------------------------------------------------------------------------------------
# Values


HUGE_TEXT = "x" * 40_000  # its call is beyond max_call_bytes (32,000)
TEXT_SPECIALS = (
    "",
    "héllo 😀",
    "\u2028\u2029",
    "\x00\x01\x1f\x7f",
    'quote " back \\ slash /',
    "</script>",
    'a"}, "userId": "evil',
    "\ud7ff\ue000\uffff",
    "𝄞𠜎\U0010ffff",
    "tab\tnewline\nreturn\r",
    "  leading and trailing  ",
)
BINARY_SPECIALS = (
    b"",
    b"\x00",
    b"\xff\xfe",
    b"\xc3\x28",
    b"\xed\xa0\x80",
    b"\xf0\x9f\x98\x80",
    "héllo".encode(),
    b"\x80abc\xff",
)
texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


def text_values(max_size: int, specials: tuple[str, ...] = TEXT_SPECIALS) -> st.SearchStrategy[str]:
    fitting = [s for s in specials if len(s) <= max_size]
    return st.one_of(st.sampled_from(fitting), texts.map(lambda s: s[:max_size]))


# JSON documents as stored text.
WS = st.sampled_from(["", "", "", " ", "\n  ", "\t", "\r\n"])
NUMBER_SPECIALS = (
    "0",
    "-0",
    "1.10",
    "1E2",
    "1e-7",
    "1E+2",
    "-0.0",
    "0.0",
    "2.50",
    "1e-400",
    "123456789012345678901234567890",
    "-123456789012345678901234567890.123e-5",
    "18446744073709551616",
    "9007199254740993",
    "1.7976931348623157e308",
    "5e-324",
)


@st.composite
def json_number(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return draw(st.sampled_from(NUMBER_SPECIALS))
    sign = draw(st.sampled_from(["", "", "-"]))
    whole = draw(st.one_of(st.just("0"), st.integers(1, 10**25).map(str)))
    fraction = draw(
        st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=8).map(lambda d: "." + d))
    )
    exponent = draw(
        st.one_of(
            st.just(""),
            st.tuples(st.sampled_from("eE"), st.sampled_from(["", "+", "-"]), st.integers(0, 40)).map(
                lambda t: f"{t[0]}{t[1]}{t[2]}"
            ),
        )
    )
    return sign + whole + fraction + exponent


@st.composite
def json_string(draw: st.DrawFn, keys: bool = False) -> str:
    pool = (
        ["a", "b", "z", "k1", "é😀", "", "with space", 'quote"', "u\u2028", "a", "b"]
        if keys
        else ["text", "", "é😀", "\u2028", "\x00\x1f", 'q"b\\s/', "</script>"]
    )
    value = draw(st.one_of(st.sampled_from(pool), texts))
    style = draw(st.sampled_from(["plain", "plain", "ascii", "slashes"]))
    text = json.dumps(value, ensure_ascii=style == "ascii")
    return text.replace("/", "\\/") if style == "slashes" else text


json_scalar = st.one_of(json_number(), json_string(), st.sampled_from(["true", "false", "null"]))


@st.composite
def json_array(draw: st.DrawFn, items: st.SearchStrategy[str]) -> str:
    values = draw(st.lists(items, max_size=4))
    parts = [draw(WS) + v + draw(WS) for v in values]
    return "[" + ",".join(parts) + "]" if parts else "[" + draw(WS) + "]"


@st.composite
def json_object(
    draw: st.DrawFn, items: st.SearchStrategy[str], keys: st.SearchStrategy[str] | None = None
) -> str:
    pairs = draw(st.lists(st.tuples(json_string(keys=True) if keys is None else keys, items), max_size=4))
    parts = [draw(WS) + k + draw(WS) + ":" + draw(WS) + v + draw(WS) for k, v in pairs]
    return "{" + ",".join(parts) + "}" if parts else "{" + draw(WS) + "}"


json_values = st.recursive(
    json_scalar, lambda children: json_array(children) | json_object(children), max_leaves=8
)


def _deep(depth: int, kind: str = "[") -> str:
    if kind == "[":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


VALID_DOCUMENT_SPECIALS = (
    '{"a":1}',
    '{\n  "a": [1, 2.50, {"b": null}],\n  "c": "d"\n}',
    '  \n {"a": 1} \t',
    '{"z":1,"a":2,"m":{"y":true,"b":false}}',
    '{"a":1,"b":2,"a":3}',
    '"\\u00e9\\ud83d\\ude00 \\/ \\u2028 \\u0000"',
    "null",
    " null ",
    "[]",
    "{}",
    '""',
    "true",
    _deep(254),
    _deep(254, "{"),
    _deep(40),
)
INVALID_DOCUMENTS = (
    "1.",
    "-",
    "1e",
    '"\\x41"',
    '{"a":1} {"b":2}',
    "NaN",
    "[1,2,]",
    '{"a":1',
    "{'a':1}",
    '1,"userId":"evil"',
    '"x"}, "admin": true, "y": {"z":"',
    "",
    " ",
    "01",
    "+1",
    ".5",
    "1e400",
    "-1e400",
    "\ufeff{}",
    '"\\ud800"',
    '{"a":1}}',
    "tru",
    "[1] x",
    _deep(255),
    _deep(255, "{"),
    _deep(300),
    _deep(1100),
)


def json_documents(valid_only: bool = False) -> st.SearchStrategy[str]:
    around = st.tuples(WS, json_values, WS).map("".join)
    valid = st.one_of(st.sampled_from(VALID_DOCUMENT_SPECIALS), around, json_values)
    return valid if valid_only else st.one_of(valid, valid, st.sampled_from(INVALID_DOCUMENTS))


# Whole-object columns: objects (keys that name nothing the docs treat specially), null, and others.
SAFE_KEYS = st.sampled_from(['"a"', '"b"', '"ip"', '"locale"', '"é😀"', '""', '"a"', '"q\\"k"', '"\\u00e9"'])
whole_objects = st.one_of(
    st.tuples(WS, json_object(json_values, SAFE_KEYS), WS).map("".join),
    st.sampled_from(['{"a":1,"b":[1.10,1E2]}', '{\n  "a": 1\n}', "null", "{}", '{"a":1,"a":2}']),
    st.sampled_from((*INVALID_DOCUMENTS[:12], "[1]", '"text"', "5")),
)
valid_whole_objects = st.one_of(
    st.tuples(WS, json_object(json_values, SAFE_KEYS), WS).map("".join),
    st.sampled_from(['{"a":1,"b":[1.10,1E2]}', '{\n  "a": 1\n}', "null", '{"a":1,"a":2}']),
)
identifier_documents = st.sampled_from(
    [
        '"abc"',
        '  "x y"  ',
        "123",
        "1.10",
        "1E2",
        "-0",
        "true",
        "false",
        "null",
        '""',
        "[1]",
        '{"a":1}',
        "1.",
        '"é\\u00e9"',
    ]
)


# Dates and times
def _fraction(moment: dt.datetime | dt.time, fsp: int) -> str:
    return ("." + f"{moment.microsecond:06d}"[:fsp]) if fsp else ""


def _datetime_text(moment: dt.datetime, fsp: int) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") + _fraction(moment, fsp)


def _wall(date: str, hour: int, minute: int, second: int, micro: int) -> dt.datetime:
    return dt.datetime.fromisoformat(date).replace(hour=hour, minute=minute, second=second, microsecond=micro)


# The hours daylight saving time repeats or skips, as wall-clock times, and as UTC instants.
DST_WALLS = (
    ("2026-10-25", 2),  # Europe/Berlin falls back: 02:00-03:00 twice
    ("2026-03-29", 2),  # Europe/Berlin springs forward: 02:00-03:00 never
    ("2026-11-01", 1),  # America/New_York falls back: 01:00-02:00 twice
    ("2026-03-08", 2),  # America/New_York springs forward: 02:00-03:00 never
)
DST_INSTANTS_UTC = (("2026-10-25", 0, 2), ("2026-03-29", 0, 2), ("2026-11-01", 5, 2), ("2026-03-08", 6, 2))


@st.composite
def dst_wall(draw: st.DrawFn) -> dt.datetime:
    date, hour = draw(st.sampled_from(DST_WALLS))
    edge = draw(st.sampled_from(["inside", "start", "last", "after"]))
    if edge == "start":
        return _wall(date, hour, 0, 0, 0)
    if edge == "last":
        return _wall(date, hour, 59, 59, 999999)
    if edge == "after":
        return _wall(date, hour + 1, 0, 0, 0)
    return _wall(date, hour, draw(st.integers(0, 59)), draw(st.integers(0, 59)), draw(st.integers(0, 999999)))


@st.composite
def dst_instant(draw: st.DrawFn) -> dt.datetime:
    date, hour, hours = draw(st.sampled_from(DST_INSTANTS_UTC))
    minutes = draw(st.integers(0, hours * 60 - 1))
    return _wall(date, hour, 0, draw(st.integers(0, 59)), draw(st.integers(0, 999999))) + dt.timedelta(
        minutes=minutes
    )


ZERO_DATES = ("0000-00-00", "2026-00-10", "2026-01-00", "0000-01-01")
INVALID_DATES = ("2026-02-31", "2026-04-31", "2025-02-29", "2026-02-30")


@st.composite
def datetime_value(draw: st.DrawFn, fsp: int, time_zone: str) -> str:
    named = time_zone in NAMED_ZONES
    # Named zones: the offsets MariaDB's and Python's zone tables agree on (1970-2037), and the
    # upper limit (standard time in December); a fixed offset: the whole DATETIME range.
    low, high = (
        (dt.datetime(1970, 1, 2), dt.datetime(2037, 12, 31))
        if named
        else (
            dt.datetime(1000, 1, 1),
            dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
        )
    )
    choice = draw(st.sampled_from(["random", "random", "dst", "dst", "max", "min", "midnight"]))
    if choice == "dst":
        moment = draw(dst_wall())
    elif choice == "max":
        moment = dt.datetime(9999, 12, 31, 23, 59, 59, 999999)
    elif choice == "min":
        moment = low
    elif choice == "midnight":
        moment = dt.datetime(2026, 2, 28)
    else:
        moment = draw(st.datetimes(low, high))
    return _datetime_text(moment, fsp)


@st.composite
def timestamp_value(draw: st.DrawFn, fsp: int) -> str:
    """A TIMESTAMP, as the UTC instant it stores (inserted in a +00:00 session)."""
    choice = draw(st.sampled_from(["random", "dst", "dst", "min", "max"]))
    if choice == "dst":
        moment = draw(dst_instant())
    elif choice == "min":
        moment = dt.datetime(1970, 1, 1, 0, 0, 1)
    elif choice == "max":
        moment = dt.datetime(2038, 1, 19, 3, 14, 7, 999999)
    else:
        moment = draw(st.datetimes(dt.datetime(1970, 1, 1, 0, 0, 1), dt.datetime(2038, 1, 19, 3, 14, 7)))
    return _datetime_text(moment, fsp)


@st.composite
def date_value(draw: st.DrawFn) -> str:
    choice = draw(st.sampled_from(["random", "random", "min", "max", "leap"]))
    if choice == "min":
        return "1000-01-01"
    if choice == "max":
        return "9999-12-31"
    if choice == "leap":
        return "2024-02-29"
    return draw(st.dates(dt.date(1000, 1, 1), dt.date(9999, 12, 31))).isoformat()


@st.composite
def time_value(draw: st.DrawFn, fsp: int) -> str:
    nines = "." + "9" * fsp if fsp else ""
    choice = draw(st.sampled_from(["random", "random", "max", "min", "zero", "small negative"]))
    if choice == "max":
        return "838:59:59" + nines
    if choice == "min":
        return "-838:59:59" + nines
    if choice == "zero":
        return "00:00:00"
    if choice == "small negative":
        return "-00:00:00." + "5".ljust(fsp, "0") if fsp else "-00:00:01"
    micros = draw(st.integers(-(839 * 3600 - 1) * 10**6, (839 * 3600 - 1) * 10**6))
    micros -= micros % 10 ** (6 - fsp)
    sign = "-" if micros < 0 else ""
    seconds, fraction = divmod(abs(micros), 10**6)
    text = f"{sign}{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return text + ("." + f"{fraction:06d}"[:fsp] if fsp else "")


@st.composite
def timestamp_texts(draw: st.DrawFn, valid_only: bool = False) -> str:
    if not valid_only and draw(st.booleans()):
        return draw(
            st.sampled_from(
                [
                    "2026-13-45T99:99:99+00:00",
                    "2026-02-30T10:00:00Z",
                    "2026-01-01 10:00",
                    "2026-01-01T10:00:00",
                    "not a date",
                    "2025-02-29T00:00:00Z",
                    "2026-01-01T10:00:00+25:00",
                ]
            )
        )
    moment = draw(st.datetimes(dt.datetime(1970, 1, 1), dt.datetime(2100, 1, 1)))
    fraction = draw(st.sampled_from(["", ".5", ".123456", ".123456789"]))
    offset = draw(st.sampled_from(["Z", "+00:00", "-05:30", "+14:00", "+02:00"]))
    if moment.year == 2024 and draw(st.booleans()):
        moment = moment.replace(month=2, day=29)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + offset


# ---------------------------------------------------------------------------------------------
# Columns


@dataclass(frozen=True)
class Kind:
    """A column type and how to draw its values."""

    name: str
    ddl: str
    values: st.SearchStrategy[Any]
    connectorx: bool = True
    dates: bool = False  # zero and invalid dates may be mixed in


INTEGER_RANGES = {
    "TINYINT": 8,
    "SMALLINT": 16,
    "MEDIUMINT": 24,
    "INT": 32,
    "BIGINT": 64,
}


@st.composite
def integer_kind(draw: st.DrawFn) -> Kind:
    base = draw(st.sampled_from(list(INTEGER_RANGES)))
    unsigned = draw(st.booleans())
    bits = INTEGER_RANGES[base]
    low, high = (0, 2**bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    values = st.one_of(st.sampled_from([low, high, 0, 1, 7]), st.integers(low, high))
    return Kind("int", f"{base}{' UNSIGNED' if unsigned else ''}", values)


@st.composite
def decimal_kind(draw: st.DrawFn) -> Kind:
    precision = draw(st.one_of(st.sampled_from([1, 10, 18, 28, 38, 65]), st.integers(1, 65)))
    scale = draw(
        st.one_of(st.sampled_from([0, 2, 10, 30]), st.integers(0, 30)).map(lambda s: min(s, precision))
    )
    whole = precision - scale

    @st.composite
    def values(draw: st.DrawFn) -> str:
        choice = draw(st.sampled_from(["random", "random", "zero", "max", "tiny", "min"]))
        if choice == "zero":
            return "0"
        if choice in ("max", "min"):
            text = ("9" * whole or "0") + ("." + "9" * scale if scale else "")
            return ("-" if choice == "min" else "") + text
        if choice == "tiny" and scale:
            place = draw(st.integers(1, scale))
            digits = "0" * (place - 1) + "1"
            return draw(st.sampled_from(["", "-"])) + "0." + digits
        integer = draw(st.text("0123456789", min_size=1, max_size=max(whole, 1))) if whole else "0"
        fraction = draw(st.text("0123456789", min_size=1, max_size=scale)) if scale else ""
        return draw(st.sampled_from(["", "-"])) + integer + ("." + fraction if fraction else "")

    return Kind("decimal", f"DECIMAL({precision},{scale})", values(), connectorx=whole <= 18 and scale <= 10)


DOUBLE_SPECIALS = (
    1.7976931348623157e308,
    -1.7976931348623157e308,
    5e-324,
    -0.0,
    2.2250738585072014e-308,
    0.1,
    1e20,
    7.0,
    9007199254740993.0,
    123456789.125,
    1.5,
    -2.5e-7,
    9.223372036854776e18,
)
FLOAT_SPECIALS = (
    3.4028234663852886e38,
    -3.4028234663852886e38,
    1.1754943508222875e-38,
    1.401298464324817e-45,
    0.0,
    -0.0,
    1.5,
    16777217.0,
    0.1,
)


@st.composite
def bit_kind(draw: st.DrawFn) -> Kind:
    width = draw(st.integers(2, 64))
    return Kind(
        "bitn", f"BIT({width})", st.one_of(st.sampled_from([0, 2**width - 1]), st.integers(0, 2**width - 1))
    )


@st.composite
def text_kind(draw: st.DrawFn, pool: st.SearchStrategy[str] | None = None, longest: int = 0) -> Kind:
    base = draw(st.sampled_from(["CHAR", "VARCHAR", "TEXT", "TINYTEXT", "MEDIUMTEXT"]))
    size = draw(st.integers(max(longest, 1), max(longest, 40))) if base in ("CHAR", "VARCHAR") else 255
    if base == "CHAR":
        size = min(size, 255)
    ddl = f"{base}({size})" if base in ("CHAR", "VARCHAR") else base
    values = pool if pool is not None else text_values(size)
    if base in ("TEXT", "MEDIUMTEXT") and pool is None:  # now and then a call beyond max_call_bytes
        values = chance(1, 5).flatmap(lambda huge: st.just(HUGE_TEXT) if huge else text_values(255))
        return Kind("text", ddl, values)
    if base == "TINYTEXT":  # 255 bytes
        return Kind("text", ddl, values.filter(lambda s: len(s.encode()) <= 255))
    return Kind("text", ddl, values.filter(lambda s: len(s) <= size))


ENUM_LABELS = ("small", "large", "é😀", "a b", "quote'\"", "x,y", "\u2028")
SET_LABELS = ("red", "green", "blue", "é😀", "a b", "z")


@st.composite
def enum_kind(draw: st.DrawFn) -> Kind:
    labels = draw(st.lists(st.sampled_from(ENUM_LABELS), min_size=1, max_size=5, unique=True))
    ddl = "ENUM(" + ", ".join(_sql_string(label) for label in labels) + ")"
    return Kind("enum", ddl, st.sampled_from(labels))


@st.composite
def set_kind(draw: st.DrawFn) -> Kind:
    labels = draw(st.lists(st.sampled_from(SET_LABELS), min_size=1, max_size=5, unique=True))
    ddl = "SET(" + ", ".join(_sql_string(label) for label in labels) + ")"
    values = st.lists(st.sampled_from(labels), unique=True).map(",".join)  # in any order
    return Kind("set", ddl, values)


def _sql_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


@st.composite
def binary_kind(draw: st.DrawFn) -> Kind:
    base = draw(st.sampled_from(["BINARY", "VARBINARY", "BLOB", "TINYBLOB"]))
    size = draw(st.integers(1, 16)) if base in ("BINARY", "VARBINARY") else 255
    ddl = f"{base}({size})" if base in ("BINARY", "VARBINARY") else base
    values = st.one_of(st.sampled_from(BINARY_SPECIALS), st.binary(max_size=size)).filter(
        lambda b: len(b) <= size
    )
    return Kind("binary", ddl, values)


def fsp() -> st.SearchStrategy[int]:
    return st.integers(0, 6)


@st.composite
def any_kind(draw: st.DrawFn, time_zone: str, hostile: bool = True) -> Kind:
    """Every column type the docs list, with its own values."""
    name = draw(
        st.sampled_from(
            [
                "int",
                "int",
                "year",
                "flag",
                "bit1",
                "bitn",
                "decimal",
                "decimal",
                "float",
                "double",
                "date",
                "datetime",
                "timestamp",
                "time",
                "text",
                "text",
                "enum",
                "set",
                "binary",
                "json",
                "json",
            ]
        )
    )
    return draw(kind_named(name, time_zone, hostile))


@st.composite
def kind_named(draw: st.DrawFn, name: str, time_zone: str, hostile: bool = True) -> Kind:
    if name == "int":
        return draw(integer_kind())
    if name == "year":
        return Kind("year", "YEAR", st.one_of(st.sampled_from([1901, 2155, 2026]), st.integers(1901, 2155)))
    if name == "flag":
        return Kind(
            "flag", draw(st.sampled_from(["TINYINT(1)", "BOOLEAN"])), st.sampled_from([0, 1, 5, -1, 127])
        )
    if name == "bit1":
        return Kind("bit1", "BIT(1)", st.sampled_from([0, 1]))
    if name == "bitn":
        return draw(bit_kind())
    if name == "decimal":
        return draw(decimal_kind())
    if name == "float":
        values = st.one_of(
            st.sampled_from(FLOAT_SPECIALS), st.floats(width=32, allow_nan=False, allow_infinity=False)
        )
        return Kind("float", "FLOAT", values, connectorx=False)
    if name == "double":
        values = st.one_of(st.sampled_from(DOUBLE_SPECIALS), st.floats(allow_nan=False, allow_infinity=False))
        return Kind("double", "DOUBLE", values)
    if name == "date":
        return Kind("date", "DATE", date_value(), dates=True)
    if name == "datetime":
        precision = draw(fsp())
        return Kind("datetime", f"DATETIME({precision})", datetime_value(precision, time_zone), dates=True)
    if name == "timestamp":
        precision = draw(fsp())
        return Kind(
            "timestamp", f"TIMESTAMP({precision}) NULL DEFAULT NULL", timestamp_value(precision), dates=True
        )
    if name == "time":
        precision = draw(fsp())
        return Kind("time", f"TIME({precision})", time_value(precision), connectorx=False)
    if name == "text":
        return draw(text_kind())
    if name == "enum":
        return draw(enum_kind())
    if name == "set":
        return draw(set_kind())
    if name == "binary":
        return draw(binary_kind())
    if name == "json":
        return Kind("json", "JSON", json_documents(valid_only=not hostile))
    raise AssertionError(name)


@st.composite
def unreadable_date(draw: st.DrawFn, kind: Kind) -> str:
    """A zero or invalid date, in the column's form."""
    date = draw(st.sampled_from(ZERO_DATES + INVALID_DATES))
    if kind.name == "date":
        return date
    if kind.name == "timestamp":
        return "0000-00-00 00:00:00"  # a TIMESTAMP holds only the zero date
    return date + " 12:34:56"


# ---------------------------------------------------------------------------------------------
# Roles: which call field a column becomes, and the kinds and values that suit it.

PERSON_IDS = ("u1", "42", "user-😀", "a b", "", " ", "\u2028", 'x"y\\z', "Ω" * 50)
MESSAGE_IDS = ("m-1", "x" * 100, "y" * 101, "", "é" * 100, "😀" * 101, "😀" * 100)
EVENT_NAMES = ("Order Completed", "", "Signed Up 😀", "a\nb", "Home")
OBJECT_TYPES = ("1", "7", "42", "company", "", "1.5")
CHANNELS = ("browser", "server", "mobile", "tv", "", "Browser")
DEVICE_TYPES = ("ios", "android", "web", "", "IOS")
FLAG_TEXTS = ("true", "false", "TRUE", "False", "1", "0", "yes", "", " true", "2")
VALID_PERSON_IDS = tuple(i for i in PERSON_IDS if i)
VALID_EVENT_NAMES = tuple(e for e in EVENT_NAMES if e)
VALID_MESSAGE_IDS = tuple(m for m in MESSAGE_IDS if len(m) <= 100)
VALID_OBJECT_TYPES = ("1", "7", "42", "")
VALID_CHANNELS = ("browser", "server", "mobile", "")
VALID_DEVICE_TYPES = ("ios", "android", "")
VALID_FLAG_TEXTS = ("true", "false", "TRUE", "False", "1", "0", "tRuE")


IDENTIFIER_KINDS = ("int", "decimal", "double", "float", "date", "datetime", "time", "year", "binary", "bitn")
NOT_IDENTIFIERS = ("flag", "bit1", "set")
VALID_IDENTIFIER_DOCUMENTS = ('"abc"', '  "x y"  ', "123", "1.10", "1E2", "-0", '"é\\u00e9"', "null", '""')


@st.composite
def column_for(
    draw: st.DrawFn, index: int, alias: str, role: str, rows: int, time_zone: str, required: bool = False
) -> ColumnPlan:
    """A column for `role`: its type, its values (NULL anywhere), its column_types entry. A hostile
    column (one in four) draws from every value, those that reject their row included; the others
    from the values the role accepts, so that most rows are sent and their values compared."""
    hostile = draw(chance(1, 4))
    column_type: str | None = None
    if role == "whole":
        kind = Kind("json", "JSON", whole_objects if hostile else valid_whole_objects)
    elif role == "timestamp":
        names = ["datetime", "datetime", "timestamp", "text", "text"] + (["date", "int"] if hostile else [])
        name = draw(st.sampled_from(names))
        texts_ = timestamp_texts(valid_only=not hostile)
        kind = draw(text_kind(texts_, 40)) if name == "text" else draw(kind_named(name, time_zone, hostile))
    elif role == "flag":
        name = draw(st.sampled_from(["flag", "bit1", "int", "decimal", "double", "text", "text"]))
        pool = FLAG_TEXTS if hostile else VALID_FLAG_TEXTS
        kind = (
            draw(text_kind(st.sampled_from(pool), 6))
            if name == "text"
            else draw(kind_named(name, time_zone, hostile))
        )
    elif role in ("person", "event", "message", "object_type", "channel", "device"):
        pool, valid = {
            "person": (PERSON_IDS, VALID_PERSON_IDS),
            "event": (EVENT_NAMES, VALID_EVENT_NAMES),
            "message": (MESSAGE_IDS, VALID_MESSAGE_IDS),
            "object_type": (OBJECT_TYPES, VALID_OBJECT_TYPES),
            "channel": (CHANNELS, VALID_CHANNELS),
            "device": (DEVICE_TYPES, VALID_DEVICE_TYPES),
        }[role]
        if role in ("message", "channel", "device", "object_type"):
            names = ["text"] * 12 + ([*IDENTIFIER_KINDS, *NOT_IDENTIFIERS, "json"] if hostile else [])
            if role == "object_type" and not hostile:
                names += ["year", "bitn"]
        else:
            names = ["text"] * 6 + [*IDENTIFIER_KINDS, "json"] + ([*NOT_IDENTIFIERS] if hostile else [])
        name = draw(st.sampled_from(names))
        if name == "text":
            values = pool if hostile else valid
            longest = max(len(s) for s in values)
            free_text = texts if hostile or role in ("message",) else texts.filter(bool)
            if role in ("object_type", "channel", "device") and not hostile:
                kind = draw(text_kind(st.sampled_from(values), longest))
            else:
                kind = draw(text_kind(st.one_of(st.sampled_from(values), free_text), longest))
        elif name == "json":
            kind = Kind(
                "json",
                "JSON",
                identifier_documents if hostile else st.sampled_from(VALID_IDENTIFIER_DOCUMENTS),
            )
        else:
            kind = draw(kind_named(name, time_zone, hostile))
        if name not in ("json", "date", "datetime") and draw(chance(1, 10)):
            column_type = "string"
    elif draw(chance(1, 30)):  # the literal NULL (a column of type NULL)
        kind = Kind("null", "INT", st.none(), connectorx=False)  # ConnectorX has no type for it
    else:  # a trait, a property, or a context field: any type
        kind = draw(any_kind(time_zone, hostile))
        column_type = draw(column_type_for(kind))
        if column_type == "json":  # a text column declared json holds documents
            kind = Kind(kind.name, "TEXT", json_documents(valid_only=not hostile))
        elif column_type == "boolean":
            pool_ = {"int": [0, 1, 2], "flag": [0, 1, 5]}.get(kind.name, ["true", "false", "yes", ""])
            if not hostile:
                pool_ = {"int": [0, 1], "flag": [0, 1]}.get(kind.name, ["true", "false"])
            kind = Kind(
                kind.name, kind.ddl if kind.name in ("int", "flag") else "VARCHAR(10)", st.sampled_from(pool_)
            )
    if kind.name == "json":
        column_type = "json"
    null_weight = draw(st.sampled_from([0, 0, 2, 5, 10] if hostile or not required else [0, 0, 1]))
    unreadable_weight = (
        draw(st.sampled_from([0, 0, 2])) if kind.dates and column_type != "string" and hostile else 0
    )
    values: list[Any] = []
    outcomes = ["value"] * (10 - null_weight - unreadable_weight) + ["null"] * null_weight
    outcomes += ["unreadable"] * unreadable_weight
    for _ in range(rows):
        outcome = draw(st.sampled_from(outcomes))
        if outcome == "null":
            values.append(None)
        elif outcome == "unreadable":
            values.append(draw(unreadable_date(kind)))
        else:
            values.append(draw(kind.values))
    return ColumnPlan(
        name=f"c{index}",
        ddl=kind.ddl,
        kind=kind.name,
        alias=alias,
        values=tuple(values),
        column_type=column_type,
        connectorx_type=kind.connectorx,
        unreadable_dates=any(v in _UNREADABLE for v in values if isinstance(v, str)) and kind.dates,
    )


_UNREADABLE = {
    *ZERO_DATES,
    *INVALID_DATES,
    "0000-00-00 00:00:00",
    *(d + " 12:34:56" for d in ZERO_DATES + INVALID_DATES),
}


def column_type_for(kind: Kind) -> st.SearchStrategy[str | None]:
    """Sometimes a `column_types` override that suits the kind."""
    choices: list[str | None] = [None] * 6
    if kind.name in ("int", "flag"):
        choices += ["string", "boolean"]
    elif kind.name == "text":
        choices += ["string", "json", "boolean"]
    elif kind.name == "binary":
        choices += ["string", "hex", "base64"]
    elif kind.name != "json":
        choices += ["string"]
    return st.sampled_from(choices)


WEIRD_NAMES = ("type", "é", 'a"b', "back\\slash", "tab\tx", "\u2028", "sp ace", "ctrl\x01", 'weird.é"x')


@st.composite
def field_plan(draw: st.DrawFn, call_type: str) -> list[tuple[str, str]]:
    """(alias, role) for each column of the query; the call type's required fields come first."""
    plan: list[tuple[str, str]] = []

    def maybe(alias: str, role: str, likelihood: int = 5) -> None:
        if draw(chance(likelihood, 10)):
            plan.append((alias, role))

    main = {"group": "groupId", "alias": "previousId"}.get(call_type, "userId")
    maybe(main, "person", 9)
    if call_type == "alias":
        maybe("userId", "person", 9)
    if call_type == "track":
        maybe("event", "event", 9)
        maybe("groupId", "person", 2)
    if call_type in ("identify", "track", "page", "screen", "group"):
        maybe("anonymousId", "person", 3)
    if call_type == "group":
        maybe("userId", "person", 4)
        maybe("objectTypeId", "object_type", 4)
    if call_type in ("page", "screen"):
        maybe("name", "event")
    if call_type == "page":
        maybe("category", "event", 3)
    maybe("timestamp", "timestamp")
    maybe("messageId", "message", 3)
    if draw(chance(1, 10)):
        plan.append(("context", "whole"))
    else:
        maybe("context.channel", "channel", 3)
        maybe("context.device.type", "device", 3)
        maybe("context.ip", "value", 2)
        maybe("context.campaign.source", "value", 2)
        maybe("context.active", "flag", 2)
        maybe("context.network.wifi", "flag", 2)
    maybe("integrations.Salesforce", "flag", 3)
    maybe("integrations.All", "flag", 1)
    if call_type != "alias":
        bag = BAG[call_type]
        if draw(chance(1, 10)):
            plan.append((bag, "whole"))
        else:
            count = draw(st.integers(0, 6))
            plan += [(f"v{i}", "value") for i in range(count)]
            maybe("address.city", "value", 2)
            maybe("address.zip", "value", 2)
            maybe(f"{bag}.explicit", "value", 2)
            maybe(draw(st.sampled_from(["userid", "user_id", "UserId", "EVENT"])), "value", 1)
            # Names that JSON must escape, and one the call itself uses ("type" is no reserved name).
            maybe(draw(st.sampled_from(WEIRD_NAMES)), "value", 3)
            if call_type == "group":
                if not any(alias == "objectTypeId" for alias, _ in plan):
                    maybe("traits.object_type_id", "object_type", 2)
                maybe("traits.relationshipAttributes.role", "value", 2)
    if not plan:
        plan.append((main, "person"))
    return plan


@st.composite
def table_cases(draw: st.DrawFn) -> TableCase:
    call_type = draw(st.sampled_from(CALL_TYPES))
    time_zone = draw(st.sampled_from(TIME_ZONES))
    rows = draw(st.integers(1, 12))
    plan = draw(field_plan(call_type))
    required = {"userId", "groupId", "previousId", "event"}
    columns = tuple(
        draw(column_for(index, alias, role, rows, time_zone, required=alias in required))
        for index, (alias, role) in enumerate(plan)
    )
    return TableCase(
        call_type=call_type,
        columns=columns,
        rows=rows,
        time_zone=time_zone,
        send_nulls=draw(st.booleans()),
        batch_rows=draw(st.integers(1, 7)),
    )
