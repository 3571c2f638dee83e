"""The vectorised paths of the mapping give exactly what a plain Python reference gives: each call's
JSON, whichever way its objects are assembled; timestamps as `isoformat` writes them; strings as
orjson escapes them; and requests packed as a call-by-call loop would pack them."""

from __future__ import annotations

import datetime as dt
import random

import orjson
import pyarrow as pa
import pytest

from reverse_etl_assets.delivery.batching import RequestPacker
from reverse_etl_assets.mapping.calls import CallMapper, Calls, MappingOptions
from reverse_etl_assets.mapping.render import iso_timestamps, json_quote


def identify_batch(rows: list[tuple[str | None, str | None, int | None]]) -> pa.RecordBatch:
    user_ids, emails, ages = zip(*rows, strict=True)
    return pa.RecordBatch.from_pydict(
        {
            "userId": pa.array(user_ids, pa.string()),
            "email": pa.array(emails, pa.string()),  # the first member of traits
            "age": pa.array(ages, pa.int64()),
        }
    )


def calls_of(batch: pa.RecordBatch) -> list[bytes]:
    mapped = CallMapper(MappingOptions("identify", "people/dry_run")).map_batch(batch, first_row_number=1)
    assert not mapped.rejected
    return [body.encode() for body in mapped.calls.bodies.to_pylist()]


def test_a_call_is_the_same_however_its_batch_assembles_it():
    """With the first member of `traits` in every row, the object is written in one pass; with it
    missing from some, members are joined and trimmed. A row's bytes (and so its message id) must
    not depend on which rows share its batch."""
    full = [("1", "a@example.com", 30), ("2", "b@example.com", None)]
    gaps = [*full, ("3", None, 41), ("4", None, None)]
    assert calls_of(identify_batch(gaps))[:2] == calls_of(identify_batch(full))
    decoded = [orjson.loads(call) for call in calls_of(identify_batch(gaps))]
    assert [(call["userId"], call.get("traits")) for call in decoded] == [
        ("1", {"email": "a@example.com", "age": 30}),
        ("2", {"email": "b@example.com"}),
        ("3", {"age": 41}),
        ("4", None),  # nothing to send: no empty object
    ]
    assert all(set(call["context"]) == {"library"} for call in decoded)
    assert len({call["messageId"] for call in decoded}) == 4


def test_message_ids_depend_on_the_call_and_the_destination_only():
    batch = identify_batch([("1", "a@example.com", 30), ("2", "b@example.com", 31)])
    again = CallMapper(MappingOptions("identify", "people/dry_run")).map_batch(batch.slice(1), 2)
    first = CallMapper(MappingOptions("identify", "people/dry_run")).map_batch(batch, 1)
    elsewhere = CallMapper(MappingOptions("identify", "people/other")).map_batch(batch, 1)
    ids = first.calls.message_ids.to_pylist()
    assert again.calls.message_ids.to_pylist() == ids[1:]
    assert not set(ids) & set(elsewhere.calls.message_ids.to_pylist())
    assert all(len(message_id) == 32 and int(message_id, 16) >= 0 for message_id in ids)


@pytest.mark.parametrize("zone", [None, "UTC", "+02:00", "-05:30", "Europe/Paris"])
@pytest.mark.parametrize("fractions", [False, True])
def test_timestamps_are_written_as_isoformat_writes_them(zone, fractions):
    """Whole seconds take a fast path (no regular expression); fractions of a second the general
    one. Both must match Python's `isoformat`, NULLs and three-digit years included."""
    rng = random.Random(7)
    values = [
        dt.datetime(2, 1, 1),
        dt.datetime(999, 5, 5, 5, 5, 5),
        dt.datetime(9998, 12, 31, 23, 59, 59),
        None,
    ]
    values += [
        dt.datetime(1970, 1, 1) + dt.timedelta(seconds=rng.randrange(-(10**9), 3 * 10**9)) for _ in range(300)
    ]
    if fractions:
        values.append(dt.datetime(2026, 11, 30, 12, 0, 0, 250_000))
    if zone == "Europe/Paris":  # Arrow's zone rules write the same instants with other offsets
        values = [v for v in values if v is None or 1912 <= v.year <= 2037]  # (+00:09:21; no DST)
    if zone is None:
        array = pa.array(values, pa.timestamp("us"))
    else:
        aware = [None if v is None else v.replace(tzinfo=dt.UTC) for v in values]
        array = pa.array(aware, pa.timestamp("us", "UTC")).cast(pa.timestamp("us", zone))
    expected = [None if v is None else v.isoformat() for v in array.to_pylist()]
    assert iso_timestamps(array).to_pylist() == expected


def test_strings_are_escaped_as_orjson_escapes_them():
    texts = [chr(code) for code in range(0x80)] + ['say "hi"\\', "Zoë \u2028 ok", "", None, "\x00\x1f"]
    quoted = json_quote(pa.array(texts, pa.string())).to_pylist()
    assert quoted == [None if t is None else orjson.dumps(t).decode() for t in texts]
    plain = json_quote(pa.array(["plain", None, "text"], pa.string())).to_pylist()
    assert plain == ['"plain"', None, '"text"']


def reference_packing(sizes: list[int], max_bytes: int, max_calls: int | None) -> list[list[int]]:
    """The call-by-call loop: fill a request until the next call would not fit."""
    requests: list[list[int]] = []
    current: list[int] = []
    size = len(b'{"batch":[]}')
    for index, length in enumerate(sizes):
        grown = size + length + (1 if current else 0)
        if current and (grown > max_bytes or len(current) == (max_calls or 2**62)):
            requests.append(current)
            current, grown = [], len(b'{"batch":[]}') + length
        current.append(index)
        size = grown
    return [*requests, current] if current else requests


@pytest.mark.parametrize("max_calls", [None, 7])
def test_requests_are_packed_as_a_call_by_call_loop_packs_them(max_calls):
    rng = random.Random(11)
    max_bytes = 2_000
    # Exact fits first (a call filling a request alone, two filling it with their comma, one a byte
    # too big), then random lengths, some too big for any request.
    lengths = [1_988, 987, 1_000, 1_989, 5]
    lengths += [rng.choice([rng.randint(2, 1_200), 2_500]) for _ in range(3_000)]
    bodies = ['"' + "x" * (length - 2) + '"' for length in lengths]  # JSON strings of those lengths
    packer = RequestPacker(max_bytes, max_calls)
    requests = []
    for start in range(0, len(bodies), 257):  # batches of the result, not aligned with requests
        chunk = pa.array(bodies[start : start + 257], pa.string())
        rows = pa.array(range(start, start + len(chunk)), pa.int64())
        requests += list(packer.add(Calls(chunk, rows, chunk, chunk)))
    requests += list(packer.flush())
    packed = [request.calls.row_numbers.to_pylist() for request in requests]
    assert packed == reference_packing(lengths, max_bytes, max_calls)
    for request, rows in zip(requests, packed, strict=True):
        body = request.body()
        assert len(body) == request.size
        assert orjson.loads(body) == {"batch": [orjson.loads(bodies[row]) for row in rows]}
        halves = request.split()
        assert [half.size for half in halves] == [len(half.body()) for half in halves]
