"""Arrow RecordBatches → serialized calls, plus the rows that cannot become valid calls.

The call's JSON is assembled a column at a time: every column is rendered to JSON text (render.py)
and becomes the pieces of a `,"key":value` fragment (left out where the value is NULL), and the
pieces of the whole call are concatenated in one pass. Python touches each row only to hash its
message id; the calls stay Arrow arrays until they are sent.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from reverse_etl_assets import PACKAGE_NAME, __version__
from reverse_etl_assets.config.models import (
    CallType,
    ColumnType,
    CustomerIoDestination,
    Destination,
    SyncConfig,
)
from reverse_etl_assets.mapping import text_buffers
from reverse_etl_assets.mapping.fields import (
    DEFAULT_OBJECT,
    TEXT_FIELDS,
    Placement,
    identical_events_warning,
    place_columns,
)
from reverse_etl_assets.mapping.render import Rendered, plain_text, render_column
from reverse_etl_assets.mapping.validation import Columns, Path, email_only, row_problems
from reverse_etl_assets.source.unreadable import take_unreadable

LIBRARY = {"name": PACKAGE_NAME, "version": __version__}
_LIBRARY_MEMBER = '"library":' + orjson.dumps(LIBRARY).decode()
_OBJECT_ROOTS = ("context", "integrations", "traits", "properties")


@dataclass(frozen=True)
class RejectedRow:
    """A row that was not sent: its 1-based position in the query's result, the field, the reason."""

    row_number: int
    field: str
    reason: str
    row: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"row_number": self.row_number, "field": self.field, "reason": self.reason, "row": self.row}


Part = pa.Array | str  # a piece of each row's JSON: an array, or the same text in every row


def _empty(kind: pa.DataType) -> pa.Array:
    return pa.array([], kind)


@dataclass
class Calls:
    """Serialized calls, an Arrow array per attribute: no Python object per call on the hot path."""

    bodies: pa.Array = field(default_factory=lambda: _empty(pa.string()))  # each call's JSON
    row_numbers: pa.Array = field(default_factory=lambda: _empty(pa.int64()))  # for rejections
    message_ids: pa.Array = field(default_factory=lambda: _empty(pa.string()))
    # What a call updates, for the delivery ledger: a person, a group, or (events) the call itself.
    entity_keys: pa.Array = field(default_factory=lambda: _empty(pa.string()))

    def __len__(self) -> int:
        return len(self.bodies)

    def columns(self) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array]:
        return self.bodies, self.row_numbers, self.message_ids, self.entity_keys

    def slice(self, start: int, stop: int | None = None) -> Calls:
        stop = len(self) if stop is None else stop
        return Calls(*(column.slice(start, stop - start) for column in self.columns()))

    def only(self, keep: pa.Array) -> Calls:
        return Calls(*(column.filter(keep) for column in self.columns()))

    @staticmethod
    def concat(parts: list[Calls]) -> Calls:
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return Calls()
        return Calls(
            *(pa.concat_arrays(list(column)) for column in zip(*(p.columns() for p in parts), strict=True))
        )

    def body(self, index: int) -> bytes:
        return self.bodies[index].as_py().encode()


@dataclass
class MappedBatch:
    calls: Calls
    rejected: list[RejectedRow]


@dataclass(frozen=True)
class MappingOptions:
    call_type: CallType
    message_id_namespace: str  # sync and destination: the same row gets a new id per destination
    max_call_bytes: int = 32_000
    send_nulls: bool = False
    column_types: Mapping[str, ColumnType] = field(default_factory=dict)
    email_identifies: bool = False  # Customer.io accepts identify with only traits.email
    lookback: bool = False  # the sync re-reads rows: identical events would be sent once

    @classmethod
    def for_sync(cls, sync: SyncConfig, destination_name: str, destination: Destination) -> MappingOptions:
        return cls(
            call_type=sync.type,
            message_id_namespace=f"{sync.name}/{destination_name}",
            max_call_bytes=destination.max_call_bytes,
            send_nulls=sync.send_nulls,
            column_types=sync.column_types,
            email_identifies=isinstance(destination, CustomerIoDestination),
            lookback=sync.lookback_seconds > 0,
        )


@dataclass
class _Leaf:
    placement: Placement
    index: int  # in the batch
    role: str  # "id" (always a string), "boolean" or "value"
    keep_null: bool  # send_nulls: NULL is sent as null (traits and properties only)

    @property
    def whole_object(self) -> bool:
        """A column that is a whole object of the call (`traits`, `context`...): a JSON document."""
        return len(self.placement.path) == 1 and self.placement.path[0] in _OBJECT_ROOTS


@dataclass
class _Node:
    key: str
    children: list[_Node | _Leaf] = field(default_factory=list)

    def child(self, key: str) -> _Node:
        for child in self.children:
            if isinstance(child, _Node) and child.key == key:
                return child
        node = _Node(key)
        self.children.append(node)
        return node


class CallMapper:
    """Maps every batch of one sync run; the plan is made once per result schema."""

    def __init__(self, options: MappingOptions) -> None:
        self.options = options
        self.warnings: list[str] = []
        self._schema: pa.Schema | None = None
        self._root = _Node("")
        self._context = self._root.child("context")
        self._leaves: list[_Leaf] = []
        self._dotted: dict[str, str] = {}  # column → the field it sets, to name rejected rows
        # Message ids hash the call with a seed of the sync and destination (see _finish).
        self._id_seed = xxhash.xxh3_64_intdigest(options.message_id_namespace.encode())
        self._type_fragment = '{"type":' + orjson.dumps(options.call_type).decode()

    @property
    def column_names(self) -> list[str]:
        """The query's result columns (known once a batch was mapped)."""
        return list(self._schema.names) if self._schema is not None else []

    def map_batch(self, batch: pa.RecordBatch, first_row_number: int) -> MappedBatch:
        batch, unreadable = take_unreadable(batch)
        if self._schema is None or not batch.schema.equals(self._schema, check_metadata=True):
            self._plan(batch.schema)
        rows = batch.num_rows
        rendered = {leaf.placement.path: self._render(batch, leaf) for leaf in self._leaves}
        columns = Columns(
            rendered,
            {leaf.placement.path: batch.schema.field(leaf.index).type for leaf in self._leaves},
            rows,
        )
        problems = row_problems(columns, self.options.call_type, self.options.email_identifies)
        # An unreadable value is NULL in its column: its own reason comes before any rule's.
        problems.update({row: (self._dotted[column], why) for row, (column, why) in unreadable.items()})
        heads = self._heads(rendered, columns)
        return self._finish(batch, first_row_number, heads, columns, problems)

    # -- the plan -------------------------------------------------------------------------------

    def _plan(self, schema: pa.Schema) -> None:
        placements, warnings = place_columns(self.options.call_type, schema.names)
        for name in self.options.column_types:
            if name not in schema.names:
                warnings.append(f"column_types names {name!r}, which the query does not return")
        identical = identical_events_warning(self.options.call_type, schema.names)
        if self.options.lookback and identical:
            warnings.append(identical)
        self.warnings = warnings
        default_object = DEFAULT_OBJECT[self.options.call_type]
        self._root = _Node("")
        self._context = self._root.child("context")  # always there: it carries context.library
        self._leaves = []
        for placement in placements:
            role = "value"
            if placement.is_id or placement.path in TEXT_FIELDS:
                role = "id"
            elif placement.is_boolean:
                role = "boolean"
            leaf = _Leaf(
                placement,
                schema.get_field_index(placement.column),
                role,
                # Never for an identifier (a group's traits.object_type_id): NULL is no identifier.
                keep_null=self.options.send_nulls
                and placement.path[0] == default_object
                and len(placement.path) > 1
                and role == "value",
            )
            node = self._root
            for key in placement.path[:-1] if not leaf.whole_object else placement.path:
                node = node.child(key)
            node.children.append(leaf)
            self._leaves.append(leaf)
        self._dotted = {placement.column: placement.dotted for placement in placements}
        self._schema = schema

    def _render(self, batch: pa.RecordBatch, leaf: _Leaf) -> Rendered:
        placement = leaf.placement
        declared = self.options.column_types.get(placement.column)
        rendered = render_column(
            batch.column(leaf.index), batch.schema.field(leaf.index), declared, leaf.role
        )
        if leaf.whole_object:
            _check_objects(rendered, placement.path[0])
        return rendered

    # -- assembling the JSON -------------------------------------------------------------------

    def _heads(self, rendered: dict[Path, Rendered], columns: Columns) -> pa.Array:
        """`{"type":...,"userId":...,...` for each row: everything but the message id and the closing
        brace, in one concatenation of every column's pieces."""
        parts: list[Part] = [self._type_fragment]
        for child in self._root.children:
            parts += self._fragment(child, rendered, columns.rows)
        fallback = email_only(columns, self.options.call_type, self.options.email_identifies)
        if pc.any(fallback).as_py():  # Customer.io identifies the person by traits.email
            parts.append(pc.if_else(fallback, ',"userId":""', pa.scalar(None, pa.string())))
        return _concatenate(parts, columns.rows)

    def _fragment(
        self, part: _Node | _Leaf, rendered: dict[Path, Rendered], rows: int, first: bool = False
    ) -> list[Part]:
        """`,"key":value` or `,"key":{...}` (without the comma when `first`), as pieces to
        concatenate; where there is nothing to send, the pieces are null or empty."""
        comma = "" if first else ","
        if isinstance(part, _Leaf):
            prefix = f"{comma}{orjson.dumps(part.placement.path[-1]).decode()}:"
            return rendered[part.placement.path].fragment(prefix, part.keep_null)
        opening = f"{comma}{orjson.dumps(part.key).decode()}:{{"
        if part is self._context:  # never empty: it always carries the library
            members: list[Part] = [_LIBRARY_MEMBER]
            for child in part.children:
                members += self._member(child, rendered, rows)
            return [opening, *members, "}"]
        head, rest = part.children[0], part.children[1:]
        if (
            isinstance(head, _Leaf)
            and not head.whole_object
            and _always_present(rendered[head.placement.path])
        ):
            # The first member is in every row: the object is never empty and starts without a comma.
            members = self._fragment(head, rendered, rows, first=True)
            for child in rest:
                members += self._member(child, rendered, rows)
            return [opening, *members, "}"]
        # Any member may be missing: join them, then drop the leading comma, or the whole object.
        pieces = [piece for child in part.children for piece in self._member(child, rendered, rows)]
        inner = _concatenate(pieces, rows)
        wrapped = pc.binary_join_element_wise(opening, pc.utf8_slice_codeunits(inner, 1, 2**31 - 1), "}", "")
        return [pc.if_else(pc.equal(inner, ""), pa.scalar(None, pa.string()), wrapped)]

    def _member(self, child: _Node | _Leaf, rendered: dict[Path, Rendered], rows: int) -> list[Part]:
        if isinstance(child, _Leaf) and child.whole_object:
            return [self._object_inner(child, rendered)]
        return self._fragment(child, rendered, rows)

    @staticmethod
    def _object_inner(leaf: _Leaf, rendered: dict[Path, Rendered]) -> pa.Array:
        """A whole-object JSON column's members, as fragments of the object it fills."""
        document = rendered[leaf.placement.path].json_text()
        members = pc.utf8_slice_codeunits(document, 1, -1)
        return pc.if_else(
            pc.equal(members, ""), pa.scalar(None, pa.string()), pc.binary_join_element_wise(",", members, "")
        )

    # -- ids, checks on the result, and the calls --------------------------------------------------

    def _finish(
        self,
        batch: pa.RecordBatch,
        first_row_number: int,
        heads: pa.Array,
        columns: Columns,
        problems: dict[int, tuple[str, str]],
    ) -> MappedBatch:
        rows = batch.num_rows
        # Deterministic: the same row sent again to the same destination carries the same id, so
        # Segment-style deduplication (and our own lookback) recognise it.
        ids = text_buffers.hash_ids(heads, self._id_seed)
        bodies = pc.binary_join_element_wise(heads, ',"messageId":"', ids, '"}', "")
        given = columns.text(("messageId",))
        if given is not None:  # the user's own ids are in the body already
            has_own = pc.fill_null(pc.not_equal(given, ""), False)
            ids = pc.if_else(has_own, given, ids)
            bodies = pc.if_else(has_own, pc.binary_join_element_wise(heads, "}", ""), bodies)
        sizes = pc.binary_length(bodies)
        limit = self.options.max_call_bytes
        for row in pc.indices_nonzero(pc.greater(sizes, limit)).to_pylist():
            problems.setdefault(
                row,
                (
                    "(call)",
                    f"the call is {sizes[row].as_py():,} bytes; the limit is {limit:,} bytes per call",
                ),
            )
        row_numbers = pa.array(np.arange(first_row_number, first_row_number + rows, dtype=np.int64))
        calls = Calls(bodies, row_numbers, ids, self._entity_keys(columns, ids))
        if not problems:
            return MappedBatch(calls, [])
        rejected = [
            RejectedRow(first_row_number + row, *problems[row], row=_row_values(batch, row))
            for row in sorted(problems)
        ]
        keep = np.ones(rows, dtype=bool)
        keep[list(problems)] = False
        return MappedBatch(calls.only(pa.array(keep)), rejected)

    def _entity_keys(self, columns: Columns, message_ids: pa.Array) -> pa.Array:
        """Profiles are updated in place, so the delivery ledger compares versions per person or
        group; events are each their own thing, keyed by their message id."""
        call_type = self.options.call_type
        if call_type in ("track", "page", "screen"):
            return pc.binary_join_element_wise("event:", message_ids, "")
        empty = pa.array([""] * columns.rows, pa.string())

        def text(*path: str) -> pa.Array:
            found = columns.text(path)
            return found if found is not None else pa.nulls(columns.rows, pa.string())

        person = pc.coalesce(text("userId"), text("anonymousId"), text("traits", "email"), empty)
        if call_type == "identify":
            return pc.binary_join_element_wise("person:", person, "")
        if call_type == "group":
            return pc.binary_join_element_wise("group:", pc.coalesce(text("groupId"), empty), ":", person, "")
        previous = pc.coalesce(text("previousId"), empty)
        return pc.binary_join_element_wise("alias:", previous, ":", pc.coalesce(text("userId"), empty), "")


def _concatenate(parts: list[Part], rows: int) -> pa.Array:
    """Concatenate pieces row by row, a null piece counting as empty (a join that skips nulls would be
    simpler, but pyarrow 26's drops rows in which every part is null)."""
    merged: list[Part] = []
    for part in parts:  # fewer, longer constants: less work per row
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    if all(isinstance(part, str) for part in merged):
        merged.append(pa.nulls(rows, pa.string()))  # the rows' count comes from an array
    return pc.binary_join_element_wise(*merged, "", null_handling="replace", null_replacement="")


def _always_present(rendered: Rendered) -> bool:
    return not rendered.sent().null_count


def _check_objects(rendered: Rendered, root: str) -> None:
    """A whole-object column must hold JSON objects; `context` must leave `library` to us and
    `integrations` must map names to true/false."""
    for row, value in enumerate(rendered.documents.values if rendered.documents else []):
        if value is None or row in rendered.errors:
            continue
        if not isinstance(value, dict):
            rendered.errors[row] = f"{root} must be a JSON object"
        elif root == "context" and "library" in value:
            rendered.errors[row] = "context.library is set by reverse ETL itself"
        elif root == "integrations" and not all(isinstance(v, bool) for v in value.values()):
            rendered.errors[row] = "integrations must map each name to true or false"
    document = rendered.json_text()
    if rendered.documents is None:
        for row in pc.indices_nonzero(pc.is_valid(document)).to_pylist():
            rendered.errors[row] = f"{root} must be a JSON object (declare the column in column_types: json)"
    if rendered.errors:
        mask = pa.array([row in rendered.errors for row in range(len(document))])
        rendered.json = pc.if_else(mask, pa.scalar(None, pa.string()), document)


def _row_values(batch: pa.RecordBatch, row: int) -> dict[str, Any]:
    """The rejected row's values, for the rejected-rows report."""
    return plain_rows(batch.slice(row, 1))[0]


def plain_rows(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    """A batch's rows as JSON-safe values, for reports and the preview: dates and times as the
    mapping writes them (a DATETIME of 9999 west of UTC is beyond Python's datetime), DECIMALs as
    the server prints them, bytes in Base64."""
    columns = [_plain_column(column) for column in batch.columns]
    table = pa.RecordBatch.from_arrays(columns, names=batch.schema.names)
    return orjson.loads(orjson.dumps(table.to_pylist(), default=str, option=orjson.OPT_NON_STR_KEYS))


def _plain_column(column: pa.Array) -> pa.Array:
    kind = column.type
    if not any(test(kind) for test in _NOT_PLAIN):
        return column
    return plain_text(column, decode=lambda value: base64.b64encode(value).decode("ascii"))


_NOT_PLAIN = (
    pa.types.is_timestamp,
    pa.types.is_duration,
    pa.types.is_decimal,
    pa.types.is_date,
    pa.types.is_binary,
    pa.types.is_large_binary,
)
