"""Payload fidelity, differentially: random tables of every column type on a real MariaDB, synced by
the product (drivers pymysql, mysqlclient and connectorx; the run into an outbox and the preview)
and encoded by a slow reference that follows docs/mapping.md (`oracle/reference.py`). Every row must
become the reference's call, value for value, or be rejected as the reference rejects it; the bytes
must be the same across drivers and between the preview and the run.

Profiles (registered in conftest.py): `ci`, the default (fixed seed, a bounded number of tables, no
shrinking); `deep` for a long local search:

    python -m pytest reverse_etl_tests/test_fidelity_oracle.py --hypothesis-profile=deep
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, note, settings

from reverse_etl_tests.conftest import ScratchDatabase, admin_connection
from reverse_etl_tests.oracle.harness import OracleEnv, check_case, invalid_outbox_lines, report
from reverse_etl_tests.oracle.strategies import TableCase, table_cases


@pytest.fixture(scope="module")
def oracle_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OracleEnv]:
    """One scratch database for the whole property run (a table per example, dropped after it)."""
    name = f"retl_oracle_{uuid.uuid4().hex[:12]}"
    with admin_connection() as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("RUST_BACKTRACE", "0")  # a connectorx refusal is one line, not a Rust backtrace
            yield OracleEnv(ScratchDatabase(name), Path(tmp_path_factory.mktemp("oracle")))
    finally:
        with admin_connection() as connection, connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


# pyproject's 600 s per test is for one table at a time: a profile's run gets about 10 s a table.
@pytest.mark.timeout(max(600, settings.default.max_examples * 10))
def test_every_row_becomes_the_documented_call(oracle_env: OracleEnv) -> None:
    seen: set[TableCase] = set()

    @given(case=table_cases())
    def each_table(case: TableCase) -> None:
        if case in seen:  # Hypothesis repeats itself now and then: this table passed already
            return
        note(case.sql_script())
        problems = check_case(oracle_env, case)
        if problems:
            raise AssertionError(report(case, problems))
        seen.add(case)

    try:
        each_table()
    except BaseException as failure:
        bad = invalid_outbox_lines(oracle_env.root)
        if bad:
            failure.add_note("outbox lines that are not one JSON document:\n" + "\n".join(bad[:20]))
        raise
    # After the property run: every line of every outbox file it wrote is one JSON document.
    bad = invalid_outbox_lines(oracle_env.root)
    assert not bad, "\n".join(bad[:20])
