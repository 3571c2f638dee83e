"""Where each result column goes in a call: a top-level field, `context`, `integrations`, or a
trait / property. Decided once per query, from the column names alone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reverse_etl_assets.config.models import CallType

_COMMON = ("userId", "anonymousId", "timestamp", "messageId")

# Columns with these exact names (case-sensitive) become top-level fields of the call.
TOP_LEVEL_FIELDS: dict[CallType, tuple[str, ...]] = {
    "identify": _COMMON,
    "track": (*_COMMON, "event", "groupId"),  # groupId: an event about an object
    "page": (*_COMMON, "name", "category"),
    "screen": (*_COMMON, "name"),
    "group": (*_COMMON, "groupId", "objectTypeId"),
    "alias": (*_COMMON, "previousId"),
}

# Identifiers are always sent as strings, whatever their column type.
ID_FIELDS = frozenset({"userId", "anonymousId", "groupId", "previousId", "messageId", "objectTypeId"})
# Other fields the spec types as strings: a number selected into them is sent as text.
TEXT_FIELDS = frozenset(
    {("event",), ("name",), ("category",), ("context", "channel"), ("context", "device", "type")}
)

# Where every other column goes: alias calls have no such object.
DEFAULT_OBJECT: dict[CallType, str | None] = {
    "identify": "traits",
    "group": "traits",
    "track": "properties",
    "page": "properties",
    "screen": "properties",
    "alias": None,
}

# Fields the spec types as booleans, so 0/1 columns (MySQL has no boolean) become false/true.
_BOOLEAN_CONTEXT = {
    ("context", "active"),
    *(("context", "network", n) for n in ("bluetooth", "cellular", "wifi")),
}

_OBJECTS = ("context", "integrations", "traits", "properties")
_OURS = ("context", "library")  # context.library names this tool; it is never taken from a column


class MappingError(ValueError):
    """The query's columns cannot form calls of this type at all (not a problem of one row)."""


@dataclass(frozen=True)
class Placement:
    column: str
    path: tuple[str, ...]

    @property
    def dotted(self) -> str:
        return ".".join(self.path)

    @property
    def is_id(self) -> bool:
        """Identifiers are strings: top-level ids, and a group's `traits.object_type_id`."""
        return (len(self.path) == 1 and self.path[0] in ID_FIELDS) or self.path == (
            "traits",
            "object_type_id",
        )

    @property
    def is_boolean(self) -> bool:
        return (len(self.path) == 2 and self.path[0] == "integrations") or self.path in _BOOLEAN_CONTEXT


def place_columns(call_type: CallType, columns: Sequence[str]) -> tuple[list[Placement], list[str]]:
    """Return where each column goes, in column order, and warnings about names that look like a
    reserved field."""
    placements = [Placement(column, _path(call_type, column)) for column in columns]
    _check_conflicts(placements)
    warnings = [w for p in placements if (w := _near_miss(call_type, p))]
    return placements, warnings


def _path(call_type: CallType, column: str) -> tuple[str, ...]:
    if column in TOP_LEVEL_FIELDS[call_type]:
        return (column,)
    parts = tuple(column.split("."))
    if any(not part for part in parts):
        raise MappingError(f"column {column!r}: a dotted name needs a name between every two dots")
    default = DEFAULT_OBJECT[call_type]
    if parts[0] in _OBJECTS:
        if parts[0] in ("traits", "properties") and parts[0] != default:
            where = f"`{default}.`" if default else "no such object"
            raise MappingError(
                f"column {column!r}: {call_type} calls carry no {parts[0]} (they have {where})"
            )
        if parts[: len(_OURS)] == _OURS:
            raise MappingError(f"column {column!r}: context.library is set by reverse ETL itself")
        return parts
    if default is None:
        allowed = ", ".join(TOP_LEVEL_FIELDS[call_type])
        raise MappingError(
            f"column {column!r}: {call_type} calls have no traits or properties, only {allowed}, "
            "context.* and integrations.*; remove the column or alias it to one of those"
        )
    return (default, *parts)


def identical_events_warning(call_type: CallType, columns: Sequence[str]) -> str | None:
    """With a lookback, events (track, page, screen) that select neither `timestamp` nor `messageId`
    can make identical calls for different rows: the same message id, which the lookback's ledger
    reads as one event delivered twice."""
    if call_type not in ("track", "page", "screen") or {"timestamp", "messageId"} & set(columns):
        return None
    return (
        f"lookback_seconds is set and this {call_type} query selects neither timestamp nor messageId: "
        "two rows with the same values (a user logging in twice) become identical calls with one "
        "message id, and the lookback sends only one of them. Select when the event happened AS "
        "timestamp, or a unique id AS messageId"
    )


def _check_conflicts(placements: list[Placement]) -> None:
    seen: dict[tuple[str, ...], str] = {}
    for placement in placements:
        if placement.path in seen:
            raise MappingError(
                f"columns {seen[placement.path]!r} and {placement.column!r} both set "
                f"{placement.dotted}; keep one"
            )
        seen[placement.path] = placement.column
    for shorter in placements:
        for longer in placements:
            if len(longer.path) > len(shorter.path) and longer.path[: len(shorter.path)] == shorter.path:
                raise MappingError(
                    f"column {shorter.column!r} sets {shorter.dotted} as a whole, so column "
                    f"{longer.column!r} cannot go inside it; put that value in the JSON of "
                    f"{shorter.column!r}, or split {shorter.column!r} into dotted columns"
                )


def _normalise(name: str) -> str:
    return name.replace("_", "").replace("-", "").replace(" ", "").lower()


def _near_miss(call_type: CallType, placement: Placement) -> str | None:
    if len(placement.path) == 1:
        return None
    name = placement.path[-1] if len(placement.path) == 2 else placement.column
    for field in TOP_LEVEL_FIELDS[call_type]:
        if _normalise(name) == _normalise(field) and name != field:
            return (
                f"column {placement.column!r} becomes {placement.dotted}, not the top-level "
                f"field {field!r}: reserved names are case-sensitive; alias it AS {field}"
            )
    return None
