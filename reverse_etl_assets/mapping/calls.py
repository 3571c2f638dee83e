"""Arrow RecordBatches → serialized calls, plus the rows that cannot become valid calls.

The call's JSON is assembled a column at a time: every column is rendered to JSON text (render.py),
each becomes a `,"key":value` fragment (null where the value is NULL, so the key is left out), and
the fragments of an object are concatenated inside its braces. Python touches each row only to hash
its message id and hand the call on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from reverse_etl_assets import PACKAGE_NAME, __version__
from reverse_etl_assets.config.models import (
    CallType,
    ColumnType,
    CustomerIoDestination,
    Destination,
    SyncConfig,
)
from reverse_etl_assets.mapping.fields import DEFAULT_OBJECT, TEXT_FIELDS, Placement, place_columns
from reverse_etl_assets.mapping.render import Rendered, render_column
from reverse_etl_assets.mapping.validation import Columns, Path, email_only, row_problems

LIBRARY = {"name": PACKAGE_NAME, "version": __version__}
_LIBRARY_FRAGMENT = ',"library":' + orjson.dumps(LIBRARY).decode()
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


@dataclass
class Calls:
    """Serialized calls, a list per attribute: no Python object per call on the hot path."""

    bodies: list[bytes] = field(default_factory=list)
    row_numbers: list[int] = field(default_factory=list)  # for rejections the destination reports
    message_ids: list[str] = field(default_factory=list)
    entity_keys: list[str] = field(default_factory=list)  # a person, a group, or (events) the call

    def __len__(self) -> int:
        return len(self.bodies)

    def extend(self, other: Calls, start: int = 0, stop: int | None = None) -> None:
        self.bodies += other.bodies[start:stop]
        self.row_numbers += other.row_numbers[start:stop]
        self.message_ids += other.message_ids[start:stop]
        self.entity_keys += other.entity_keys[start:stop]

    def slice(self, start: int, stop: int | None = None) -> Calls:
        part = Calls()
        part.extend(self, start, stop)
        return part

    def only(self, keep: list[bool]) -> Calls:
        return Calls(
            *([value for value, kept in zip(column, keep, strict=True) if kept] for column in self.columns())
        )

    def columns(self) -> tuple[list[bytes], list[int], list[str], list[str]]:
        return self.bodies, self.row_numbers, self.message_ids, self.entity_keys


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

    @classmethod
    def for_sync(cls, sync: SyncConfig, destination_name: str, destination: Destination) -> MappingOptions:
        return cls(
            call_type=sync.type,
            message_id_namespace=f"{sync.name}/{destination_name}",
            max_call_bytes=destination.max_call_bytes,
            send_nulls=sync.send_nulls,
            column_types=sync.column_types,
            email_identifies=isinstance(destination, CustomerIoDestination),
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
        # SHA-1 of the namespace and the call (its fastest hash here; this is an id, not a secret).
        self._hash = hashlib.sha1(options.message_id_namespace.encode() + b"\0")
        self._type_fragment = '{"type":' + orjson.dumps(options.call_type).decode()

    def map_batch(self, batch: pa.RecordBatch, first_row_number: int) -> MappedBatch:
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
        heads = self._heads(rendered, columns)
        return self._finish(batch, first_row_number, heads, columns, problems)

    # -- the plan -------------------------------------------------------------------------------

    def _plan(self, schema: pa.Schema) -> None:
        placements, warnings = place_columns(self.options.call_type, schema.names)
        for name in self.options.column_types:
            if name not in schema.names:
                warnings.append(f"column_types names {name!r}, which the query does not return")
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
                keep_null=self.options.send_nulls
                and placement.path[0] == default_object
                and len(placement.path) > 1,
            )
            node = self._root
            for key in placement.path[:-1] if not leaf.whole_object else placement.path:
                node = node.child(key)
            node.children.append(leaf)
            self._leaves.append(leaf)
        self._schema = schema

    def _render(self, batch: pa.RecordBatch, leaf: _Leaf) -> Rendered:
        placement = leaf.placement
        declared = self.options.column_types.get(placement.column)
        rendered = render_column(
            batch.column(leaf.index), batch.schema.field(leaf.index), declared, leaf.role, leaf.whole_object
        )
        if leaf.whole_object:
            _check_objects(rendered, placement.path[0])
        return rendered

    # -- assembling the JSON -------------------------------------------------------------------

    def _heads(self, rendered: dict[Path, Rendered], columns: Columns) -> pa.Array:
        """`{"type":...,"userId":...,...` for each row: everything but the closing brace."""
        parts = [self._fragment(child, rendered) for child in self._root.children]
        fallback = email_only(columns, self.options.call_type, self.options.email_identifies)
        if pc.any(fallback).as_py():  # Customer.io identifies the person by traits.email
            parts.append(pc.if_else(fallback, ',"userId":""', pa.scalar(None, pa.string())))
        return pc.binary_join_element_wise(
            self._type_fragment, *parts, "", null_handling="replace", null_replacement=""
        )

    def _fragment(self, part: _Node | _Leaf, rendered: dict[Path, Rendered]) -> pa.Array:
        """`,"key":value` (or `,"key":{...}`), null when there is nothing to send."""
        if isinstance(part, _Leaf):
            prefix = f",{orjson.dumps(part.placement.path[-1]).decode()}:"
            fragment = rendered[part.placement.path].fragment(prefix)
            return pc.fill_null(fragment, prefix + "null") if part.keep_null else fragment
        pieces = [self._object_inner(child, rendered) if isinstance(child, _Leaf) and child.whole_object
                  else self._fragment(child, rendered) for child in part.children]  # fmt: skip
        if part is self._context:
            pieces.insert(0, pa.scalar(_LIBRARY_FRAGMENT))
        inner = _concatenate(pieces)
        key = orjson.dumps(part.key).decode()
        wrapped = pc.binary_join_element_wise(
            f",{key}:{{", pc.utf8_slice_codeunits(inner, 1, 2**31 - 1), "}", ""
        )
        return pc.if_else(pc.equal(inner, ""), pa.scalar(None, pa.string()), wrapped)

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
        given = columns.text(("messageId",))
        closed = pc.binary_join_element_wise(heads, "}", "")
        # Deterministic: the same row sent again to the same destination carries the same id, so
        # Segment-style deduplication (and our own lookback) recognise it.
        ids = pa.array(map(self._message_id, pc.cast(closed, pa.binary()).to_pylist()), pa.string())
        bodies = pc.binary_join_element_wise(heads, ',"messageId":"', ids, '"}', "")
        if given is not None:  # the user's own ids are in the body already
            has_own = pc.fill_null(pc.not_equal(given, ""), False)
            ids = pc.if_else(has_own, given, ids)
            bodies = pc.if_else(has_own, closed, bodies)
        sizes = pc.binary_length(bodies).to_pylist()
        limit = self.options.max_call_bytes
        for row, size in enumerate(sizes):
            if size > limit and row not in problems:
                problems[row] = (
                    "(call)",
                    f"the call is {size:,} bytes; the limit is {limit:,} bytes per call",
                )
        calls = Calls(
            pc.cast(bodies, pa.binary()).to_pylist(),
            list(range(first_row_number, first_row_number + rows)),
            ids.to_pylist(),
            self._entity_keys(columns, ids),
        )
        if not problems:
            return MappedBatch(calls, [])
        rejected = [
            RejectedRow(first_row_number + row, *problems[row], row=_row_values(batch, row))
            for row in sorted(problems)
        ]
        return MappedBatch(calls.only([row not in problems for row in range(rows)]), rejected)

    def _message_id(self, body: bytes) -> str:
        digest = self._hash.copy()
        digest.update(body)
        return digest.hexdigest()[:32]

    def _entity_keys(self, columns: Columns, message_ids: pa.Array) -> list[str]:
        """Profiles are updated in place, so the delivery ledger compares versions per person or
        group; events are each their own thing, keyed by their message id."""
        call_type = self.options.call_type
        if call_type in ("track", "page", "screen"):
            return pc.binary_join_element_wise("event:", message_ids, "").to_pylist()
        empty = pa.array([""] * columns.rows, pa.string())

        def text(*path: str) -> pa.Array:
            found = columns.text(path)
            return found if found is not None else pa.nulls(columns.rows, pa.string())

        person = pc.coalesce(text("userId"), text("anonymousId"), text("traits", "email"), empty)
        if call_type == "identify":
            keys = pc.binary_join_element_wise("person:", person, "")
        elif call_type == "group":
            keys = pc.binary_join_element_wise("group:", pc.coalesce(text("groupId"), empty), ":", person, "")
        else:
            previous = pc.coalesce(text("previousId"), empty)
            keys = pc.binary_join_element_wise(
                "alias:", previous, ":", pc.coalesce(text("userId"), empty), ""
            )
        return keys.to_pylist()


def _concatenate(pieces: list[pa.Array | pa.Scalar]) -> pa.Array | pa.Scalar:
    """Join `,"key":value` fragments, leaving out the null ones (a join that skips nulls would be
    simpler, but pyarrow 26's drops rows in which every part is null)."""
    return pc.binary_join_element_wise(*pieces, "", null_handling="replace", null_replacement="")


def _check_objects(rendered: Rendered, root: str) -> None:
    """A whole-object column must hold JSON objects; `context` must leave `library` to us and
    `integrations` must map names to true/false."""
    for row, value in enumerate(rendered.json_values or []):
        if value is None or row in rendered.errors:
            continue
        if not isinstance(value, dict):
            rendered.errors[row] = f"{root} must be a JSON object"
        elif root == "context" and "library" in value:
            rendered.errors[row] = "context.library is set by reverse ETL itself"
        elif root == "integrations" and not all(isinstance(v, bool) for v in value.values()):
            rendered.errors[row] = "integrations must map each name to true or false"
    document = rendered.json_text()
    if rendered.json_values is None:
        for row in pc.indices_nonzero(pc.is_valid(document)).to_pylist():
            rendered.errors[row] = f"{root} must be a JSON object (declare the column in column_types: json)"
    if rendered.errors:
        mask = pa.array([row in rendered.errors for row in range(len(document))])
        rendered.json = pc.if_else(mask, pa.scalar(None, pa.string()), document)


def _row_values(batch: pa.RecordBatch, row: int) -> dict[str, Any]:
    """The rejected row's values, JSON-safe, for the rejected-rows report."""
    values = batch.slice(row, 1).to_pylist()[0]
    return orjson.loads(orjson.dumps(values, default=str, option=orjson.OPT_NON_STR_KEYS))
