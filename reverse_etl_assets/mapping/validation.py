"""The destination's rules for a valid call, checked on whole columns before anything is sent.

They follow Customer.io's OpenAPI description (`customerio-pipelines-openapi.json`) plus the
product rules it is looser than (a group call needs a groupId). A row that breaks one becomes a
rejected row, reported with the field and the reason and never sent. Rules are evaluated as Arrow
masks; reasons are written only for the (few) rows that fail.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from reverse_etl_assets.config.models import CallType
from reverse_etl_assets.mapping.render import Rendered

MAX_MESSAGE_ID_CHARS = 100  # Segment's limit
CHANNELS = ("browser", "server", "mobile")
DEVICE_TYPES = ("android", "ios")
# RFC 3339 date-time: a date, a time, and a zone (Z or an offset).
_DATE_TIME = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"

Path = tuple[str, ...]
Problem = tuple[str, str]  # (field, reason)


@dataclass
class Columns:
    """The rendered leaves of one batch, by where they go in the call."""

    leaves: Mapping[Path, Rendered]
    types: Mapping[Path, pa.DataType]
    rows: int

    def present(self, *paths: Path) -> pa.Array:
        """Rows where any of `paths` holds a non-empty string."""
        found = pa.repeat(False, self.rows)
        for path in paths:
            text = self.leaves[path].text if path in self.leaves else None
            if text is not None:
                found = pc.or_(found, pc.fill_null(pc.not_equal(text, ""), False))
        return found

    def text(self, path: Path) -> pa.Array | None:
        return self.leaves[path].text if path in self.leaves else None


def email_only(columns: Columns, call_type: CallType, email_identifies: bool) -> pa.Array:
    """Identify rows without userId or anonymousId that Customer.io can identify by traits.email."""
    if call_type != "identify" or not email_identifies:
        return pa.repeat(False, columns.rows)
    person = columns.present(("userId",), ("anonymousId",))
    return pc.and_(pc.invert(person), columns.present(("traits", "email")))


def row_problems(columns: Columns, call_type: CallType, email_identifies: bool) -> dict[int, Problem]:
    """The first rule each failing row breaks (conversion errors first, in column order)."""
    problems: dict[int, Problem] = {}
    for path, rendered in columns.leaves.items():
        for row, reason in rendered.errors.items():
            problems.setdefault(row, (".".join(path), reason))
    for failing, field, reason in _rules(columns, call_type, email_identifies):
        for row in pc.indices_nonzero(pc.fill_null(failing, False)).to_pylist():
            if row not in problems:
                problems[row] = (field, reason(row))
    return problems


def _rules(
    columns: Columns, call_type: CallType, email_identifies: bool
) -> list[tuple[pa.Array, str, Callable[[int], str]]]:
    rules = _required(columns, call_type, email_identifies)
    rules += _timestamp(columns)
    rules += _one_of(columns, ("context", "channel"), CHANNELS)
    rules += _one_of(columns, ("context", "device", "type"), DEVICE_TYPES)
    if call_type == "group":
        for path in (("objectTypeId",), ("traits", "object_type_id")):
            text = columns.text(path)
            if text is not None:
                bad = pc.invert(pc.match_substring_regex(text, r"^[0-9]+$"))
                rules.append(
                    (
                        bad,
                        ".".join(path),
                        lambda row, t=text: f'{t[row].as_py()!r} is not a stringified integer such as "1"',
                    )
                )
    message_id = columns.text(("messageId",))
    if message_id is not None:
        lengths = pc.utf8_length(message_id)
        rules.append(
            (
                pc.greater(lengths, MAX_MESSAGE_ID_CHARS),
                "messageId",
                lambda row: (
                    f"{lengths[row].as_py()} characters; a messageId may have at most {MAX_MESSAGE_ID_CHARS}"
                ),
            )
        )
    return rules


def _required(
    columns: Columns, call_type: CallType, email_identifies: bool
) -> list[tuple[pa.Array, str, Callable[[int], str]]]:
    def missing(field: str, reason: str, present: pa.Array) -> tuple[pa.Array, str, Callable[[int], str]]:
        return pc.invert(present), field, lambda _row: reason

    person = columns.present(("userId",), ("anonymousId",))
    if call_type == "alias":
        return [
            missing("previousId", "an alias call needs previousId", columns.present(("previousId",))),
            missing("userId", "an alias call needs userId", columns.present(("userId",))),
        ]
    if call_type == "group":
        return [missing("groupId", "a group call needs groupId", columns.present(("groupId",)))]
    if call_type == "track":
        return [
            missing("event", "a track call needs an event name", columns.present(("event",))),
            missing(
                "userId",
                "a track call needs userId or anonymousId (or groupId for an object)",
                pc.or_(person, columns.present(("groupId",))),
            ),
        ]
    if call_type == "identify" and email_identifies:
        return [
            missing(
                "userId",
                "an identify call needs userId or anonymousId (or traits.email, for Customer.io)",
                pc.or_(person, email_only(columns, call_type, email_identifies)),
            )
        ]
    article = "an" if call_type[0] in "aeiou" else "a"
    return [missing("userId", f"{article} {call_type} call needs userId or anonymousId", person)]


def _timestamp(columns: Columns) -> list[tuple[pa.Array, str, Callable[[int], str]]]:
    path = ("timestamp",)
    if path not in columns.leaves or pa.types.is_timestamp(columns.types[path]):
        return []  # absent, or a DATETIME/TIMESTAMP column, which is always written right
    text = columns.text(path)
    hint = "(select a DATETIME/TIMESTAMP column, or FROM_UNIXTIME(epoch_column))"
    if text is None or pa.types.is_integer(columns.types[path]) or pa.types.is_floating(columns.types[path]):
        values = columns.leaves[path].json_text()
        return [
            (
                pc.is_valid(values),
                "timestamp",
                lambda row: f"{values[row].as_py()} is not an ISO-8601 date-time with a UTC offset {hint}",
            )
        ]
    shaped = pc.fill_null(pc.match_substring_regex(text, _DATE_TIME), False)
    # The pattern lets month 13 or second 99 through: those rows must name a real instant too.
    values = text.to_pylist()
    unreal = {row for row in pc.indices_nonzero(shaped).to_pylist() if not _real_instant(values[row])}
    bad = pc.and_(pc.is_valid(text), pc.invert(shaped))
    if unreal:
        bad = pc.or_(bad, pa.array([row in unreal for row in range(len(values))]))

    def reason(row: int) -> str:
        if row in unreal:
            return f"{values[row]!r} names no real date and time"
        return f"{values[row]!r} is not an ISO-8601 date-time with a UTC offset {hint}"

    return [(bad, "timestamp", reason)]


def _real_instant(text: str) -> bool:
    """Does RFC 3339 text (already matched by _DATE_TIME) name a real date and time?"""
    normal = text[:10] + "T" + text[11:]
    normal = re.sub(r"[Zz]$", "+00:00", normal)
    normal = re.sub(r"(\.\d{6})\d+", r"\1", normal)  # Python reads at most microseconds
    try:
        datetime.fromisoformat(normal)
    except ValueError:
        return False
    return True


def _one_of(
    columns: Columns, path: Path, allowed: tuple[str, ...]
) -> list[tuple[pa.Array, str, Callable[[int], str]]]:
    if path not in columns.leaves:
        return []
    text = columns.text(path)
    field = ".".join(path)
    if text is None:
        values = columns.leaves[path].json_text()
        return [
            (
                pc.is_valid(values),
                field,
                lambda row: f"{values[row].as_py()} is not one of {', '.join(allowed)}",
            )
        ]
    bad = pc.and_(pc.is_valid(text), pc.invert(pc.is_in(text, value_set=pa.array(allowed))))
    return [(bad, field, lambda row: f"{text[row].as_py()!r} is not one of {', '.join(allowed)}")]
