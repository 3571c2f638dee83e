"""Arrow RecordBatches → serialized calls, plus the rows that cannot become valid calls."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson
import pyarrow as pa

from reverse_etl_assets import PACKAGE_NAME, __version__
from reverse_etl_assets.config.models import (
    CallType,
    ColumnType,
    CustomerIoDestination,
    Destination,
    SyncConfig,
)
from reverse_etl_assets.mapping.fields import DEFAULT_OBJECT, Placement, place_columns
from reverse_etl_assets.mapping.validation import call_problem
from reverse_etl_assets.mapping.values import ColumnConverter, column_converter

LIBRARY = {"name": PACKAGE_NAME, "version": __version__}


@dataclass(frozen=True)
class RejectedRow:
    """A row that was not sent: its 1-based position in the query's result, the field, the reason."""

    row_number: int
    field: str
    reason: str
    row: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"row_number": self.row_number, "field": self.field, "reason": self.reason, "row": self.row}


class MappedCall(NamedTuple):
    body: bytes  # the call, serialized
    row_number: int  # the result row it came from, for rejections the destination reports
    message_id: str
    entity_key: str  # what the call is about: a person, a group, or (for events) the call itself


@dataclass
class MappedBatch:
    calls: list[MappedCall]
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


@dataclass(frozen=True)
class _ColumnPlan:
    placement: Placement
    index: int
    convert: ColumnConverter
    keep_null: bool  # send_nulls applies to traits and properties, never to ids or context


class _NotAnObject(Exception):
    pass


class CallMapper:
    """Maps every batch of one sync run; the column plan is made once per result schema."""

    def __init__(self, options: MappingOptions) -> None:
        self.options = options
        self.warnings: list[str] = []
        self._schema: pa.Schema | None = None
        self._plans: list[_ColumnPlan] = []
        self._namespace = options.message_id_namespace.encode() + b"\0"

    def map_batch(self, batch: pa.RecordBatch, first_row_number: int) -> MappedBatch:
        if self._schema is None or not batch.schema.equals(self._schema, check_metadata=True):
            self._plan(batch.schema)
        columns: list[list[Any]] = []
        invalid: dict[int, tuple[str, str]] = {}
        for plan in self._plans:
            values, errors = plan.convert(batch.column(plan.index).to_pylist())
            columns.append(values)
            for row, reason in errors.items():
                invalid.setdefault(row, (plan.placement.dotted, reason))

        mapped = MappedBatch(calls=[], rejected=[])
        for row in range(batch.num_rows):
            row_number = first_row_number + row
            problem = invalid.get(row)
            if problem is None:
                try:
                    call = self._call(columns, row)
                except _NotAnObject as error:
                    problem = error.args
                else:
                    problem = call_problem(call, self.options.call_type, self.options.email_identifies)
            if problem is None:
                body, message_id = self._serialize(call)
                if len(body) > self.options.max_call_bytes:
                    problem = (
                        "(call)",
                        f"the call is {len(body):,} bytes; the limit is "
                        f"{self.options.max_call_bytes:,} bytes per call",
                    )
            if problem is not None:
                mapped.rejected.append(RejectedRow(row_number, *problem, row=_row_values(batch, row)))
                continue
            mapped.calls.append(MappedCall(body, row_number, message_id, self._entity_key(call, message_id)))
        return mapped

    def _plan(self, schema: pa.Schema) -> None:
        placements, warnings = place_columns(self.options.call_type, schema.names)
        for name in self.options.column_types:
            if name not in schema.names:
                warnings.append(f"column_types names {name!r}, which the query does not return")
        self.warnings = warnings
        self._plans = []
        default_object = DEFAULT_OBJECT[self.options.call_type]
        for placement in placements:
            declared = self.options.column_types.get(placement.column)
            if declared is None and placement.is_boolean:
                declared = "boolean"
            self._plans.append(
                _ColumnPlan(
                    placement,
                    index=schema.get_field_index(placement.column),
                    convert=column_converter(schema.field(placement.column), declared, placement.is_id),
                    keep_null=self.options.send_nulls and placement.path[0] == default_object,
                )
            )
        self._schema = schema

    def _call(self, columns: list[list[Any]], row: int) -> dict[str, Any]:
        call: dict[str, Any] = {"type": self.options.call_type}
        for plan, values in zip(self._plans, columns, strict=True):
            value = values[row]
            if value is None and not plan.keep_null:
                continue  # a NULL never wipes an attribute unless the sync asks for it
            path = plan.placement.path
            target = call
            for depth, key in enumerate(path[:-1]):
                target = target.setdefault(key, {})
                if not isinstance(target, dict):
                    outer = ".".join(path[: depth + 1])
                    raise _NotAnObject(
                        outer, f"{outer} is not a JSON object, so {plan.placement.dotted} cannot go inside it"
                    )
            target[path[-1]] = value
        context = call.setdefault("context", {})
        context["library"] = LIBRARY
        if self.options.call_type == "identify" and "userId" not in call and "anonymousId" not in call:
            call["userId"] = ""  # only reached for an email-only identify; validation checks it
        return call

    def _serialize(self, call: dict[str, Any]) -> tuple[bytes, str]:
        if call.get("messageId"):
            return orjson.dumps(call), call["messageId"]
        call.pop("messageId", None)
        body = orjson.dumps(call)
        # Deterministic: the same row sent again to the same destination carries the same id,
        # so Segment-style deduplication (and our own lookback) recognise it.
        message_id = hashlib.blake2b(self._namespace + body, digest_size=16).hexdigest()
        return body[:-1] + b',"messageId":"' + message_id.encode() + b'"}', message_id

    def _entity_key(self, call: dict[str, Any], message_id: str) -> str:
        """Profiles are updated in place, so the delivery ledger compares versions per person or
        group; events are each their own thing, keyed by their message id."""
        call_type = self.options.call_type
        person = call.get("userId") or call.get("anonymousId") or (call.get("traits") or {}).get("email", "")
        if call_type == "identify":
            return f"person:{person}"
        if call_type == "group":
            return f"group:{call.get('groupId')}:{person}"
        if call_type == "alias":
            return f"alias:{call.get('previousId')}:{call.get('userId')}"
        return f"event:{message_id}"


def _row_values(batch: pa.RecordBatch, row: int) -> dict[str, Any]:
    """The rejected row's values, JSON-safe, for the rejected-rows report."""
    values = batch.slice(row, 1).to_pylist()[0]
    return orjson.loads(orjson.dumps(values, default=str, option=orjson.OPT_NON_STR_KEYS))
