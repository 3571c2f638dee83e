"""The lookback's ledger keeps whatever an entity key holds, in every state store: a key is made of
the row's own values, and MySQL lets a VARCHAR hold NUL and thousands of characters, which a
PostgreSQL text column or an index would refuse (a lookback sync was stuck on it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from reverse_etl_assets.state.ledger import DeliveryLedger, ledger_key
from reverse_etl_assets.state.store import StateStore
from reverse_etl_tests.conftest import (
    MYSQL_HOST,
    MYSQL_PASSWORD,
    MYSQL_PORT,
    MYSQL_USER,
    ScratchDatabase,
)

HOSTILE = [
    "person:a\x00b",
    "person:" + "x" * 5000,
    "person:\U0001f600 ünïcödé",
    "group:\x00:\x00",
    "person:",
    "person:A",
    "person:a",  # differs from the one above only in case (MySQL's collations would fold it)
    "person:a ",  # and in a trailing space (PAD SPACE collations would ignore it)
]


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def store(request, tmp_path) -> Iterator[StateStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    elif request.param == "postgresql":
        url = request.getfixturevalue("instance_database")
    else:
        database: ScratchDatabase = request.getfixturevalue("mysql_db")
        url = sa.URL.create(
            "mysql+pymysql", MYSQL_USER, MYSQL_PASSWORD or None, MYSQL_HOST, MYSQL_PORT, database.name
        )
    state = StateStore(url)
    yield state
    state.close()


def test_hostile_keys_are_kept_apart_and_found_again(store):
    ledger = DeliveryLedger(store)
    ledger.record("people", "cio", [(key, f"id-{n}") for n, key in enumerate(HOSTILE)], at=100)
    delivered = ledger.load("people", "cio")
    assert len(delivered) == len(HOSTILE)
    assert [delivered.get(key) for key in HOSTILE] == [f"id-{n}" for n in range(len(HOSTILE))]
    assert delivered.get("person:b") is None
    # The last version of a key wins, in one call or in the next.
    ledger.record("people", "cio", [(HOSTILE[0], "old"), (HOSTILE[0], "new")], at=101)
    assert ledger.load("people", "cio").get(HOSTILE[0]) == "new"
    assert ledger.prune("people", "cio", before=101) == len(HOSTILE) - 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(st.characters(exclude_categories=["Cs"]), max_size=300), max_size=40))
def test_any_keys_round_trip_through_sqlite(tmp_path_factory, keys):
    store = StateStore(f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'state.sqlite'}")
    try:
        ledger = DeliveryLedger(store)
        ledger.record("s", "d", [(key, f"m{n}") for n, key in enumerate(keys)], at=1)
        delivered = ledger.load("s", "d")
        expected = {key: f"m{n}" for n, key in enumerate(keys)}  # the last version of a key wins
        assert len(delivered) == len(expected)
        assert all(delivered.get(key) == message_id for key, message_id in expected.items())
    finally:
        store.close()


def test_the_stored_key_is_a_fixed_width_digest():
    assert len(ledger_key("person:" + "x" * 100_000)) == 32
    assert ledger_key("person:a") != ledger_key("person:A")
