"""Run one generated table through the product (each driver, the run and the preview) and through the
reference, and list every difference."""

from __future__ import annotations

import itertools
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from reverse_etl_assets.config.loading import LoadedConfig, load_config
from reverse_etl_assets.delivery.destinations import open_destination
from reverse_etl_assets.preview import preview_sync
from reverse_etl_assets.state.rejected_rows import RejectedRowStore
from reverse_etl_assets.state.store import StateStore
from reverse_etl_assets.sync_run import run_sync
from reverse_etl_tests.conftest import (
    MYSQL_HOST,
    MYSQL_PASSWORD,
    MYSQL_PORT,
    MYSQL_USER,
    ScratchDatabase,
    admin_connection,
    sync_entry,
    write_config,
)
from reverse_etl_tests.oracle.reference import (
    Database,
    Outcome,
    Rejected,
    Sent,
    SyncSpec,
    diff,
    expected_outcomes,
    lexical_problems,
    parse_line,
    show_expected,
)
from reverse_etl_tests.oracle.strategies import TableCase

DRIVERS = ("pymysql", "mysqlclient", "connectorx")
SYNC = "oracle"
DESTINATION = "out"
MAX_REPORTED = 40


@dataclass
class OracleEnv:
    db: ScratchDatabase
    root: Path  # every example's configuration, outbox and rejected rows, under one folder
    counter: itertools.count = field(default_factory=itertools.count)  # type: ignore[type-arg]
    parallel: int = 3  # product invocations at a time


@dataclass
class ProductResult:
    """What the product did with one query and one driver."""

    driver: str
    query: str
    lines: list[bytes] = field(default_factory=list)  # the outbox's lines, in order
    rejected: dict[int, tuple[str, str]] = field(default_factory=dict)  # row → (field, reason)
    error: str | None = None  # the run failed (or crashed)
    error_types: tuple[str, ...] = ()  # the exception and its causes' type names
    preview_payloads: list[bytes] = field(default_factory=list)
    preview_rejected: dict[int, tuple[str, str]] = field(default_factory=dict)
    preview_rows: int = 0
    preview_error: str | None = None
    preview_error_types: tuple[str, ...] = ()
    problems: list[str] = field(default_factory=list)  # about the run's own records


def reference_database(env: OracleEnv) -> Database:
    return Database(MYSQL_HOST, MYSQL_PORT, MYSQL_USER, MYSQL_PASSWORD, env.db.name)


def create_table(env: OracleEnv, case: TableCase, table: str) -> None:
    insert, rows = case.insert(table)
    with admin_connection(env.db.name) as connection, connection.cursor() as cursor:
        # Strict (so that a value the generator got wrong fails loudly), yet holding invalid dates,
        # zero dates and texts in JSON columns that are not JSON; TIMESTAMPs given in UTC.
        cursor.execute("SET SESSION sql_mode = 'STRICT_ALL_TABLES,ALLOW_INVALID_DATES'")
        cursor.execute("SET SESSION check_constraint_checks = 0")
        cursor.execute("SET time_zone = '+00:00'")
        cursor.execute(case.create_table(table))
        cursor.executemany(insert, rows)


def drop_table(env: OracleEnv, table: str) -> None:
    env.db.execute(f"DROP TABLE IF EXISTS `{table}`")


def _causes(error: BaseException) -> tuple[str, ...]:
    names: list[str] = []
    current: BaseException | None = error
    while current is not None and len(names) < 10:
        names.append(type(current).__name__)
        current = current.__cause__ or current.__context__
    return tuple(names)


def _config(
    env: OracleEnv, case: TableCase, driver: str, query: str, column_types: dict[str, str], workdir: Path
) -> LoadedConfig:

    workdir.mkdir(parents=True, exist_ok=True)
    sync = sync_entry(
        SYNC,
        query,
        [DESTINATION],
        type=case.call_type,
        batch_rows=case.batch_rows,
        send_nulls=case.send_nulls,
        column_types=column_types,
    )
    data = {
        "databases": {"app_db": env.db.config(driver=driver, time_zone=case.time_zone)},
        "destinations": {DESTINATION: {"kind": "outbox", "path": str(workdir / "outbox")}},
        "syncs": [sync],
    }
    return load_config(write_config(workdir / "reverse_etl.yaml", data))


def _run(
    env: OracleEnv, case: TableCase, result: ProductResult, column_types: dict[str, str], workdir: Path
) -> None:
    config = _config(env, case, result.driver, result.query, column_types, workdir / "run")
    # Rejected rows go through the state store, as a Dagster run's do.
    (workdir / "run").mkdir(parents=True, exist_ok=True)
    rejected_store = RejectedRowStore(StateStore(f"sqlite:///{workdir / 'run' / 'state.sqlite'}"))

    def record_rejected(rows: list[Any]) -> None:
        rejected_store.record(SYNC, DESTINATION, "run", [row.as_dict() for row in rows])

    outbox = workdir / "run" / "outbox" / f"{SYNC}.jsonl"
    sample: list[Any] = []
    try:
        with closing(
            open_destination(DESTINATION, config.project.destinations[DESTINATION], SYNC, workdir / "run")
        ) as sender:
            outcome = run_sync(config, SYNC, DESTINATION, 0, sender, rejected_rows=record_rejected)
        sample = outcome.rejected_sample
        if outcome.stats.rows_rejected != len(sample):
            result.problems.append(
                f"{result.driver} run: rows_rejected {outcome.stats.rows_rejected} but "
                f"{len(sample)} in the sample"
            )
    except Exception as error:
        result.error = f"{type(error).__name__}: {error}"
        result.error_types = _causes(error)
        if type(error).__name__ != "SyncRunFailed":
            result.error += "\n" + traceback.format_exc(limit=-6)
    if outbox.exists():
        data = outbox.read_bytes()
        if data and not data.endswith(b"\n"):
            result.problems.append(f"{result.driver} run: the outbox does not end with a newline")
        result.lines = data.split(b"\n")[:-1] if data else []
    for _destination, _run, line in rejected_store.rows(SYNC):
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            result.problems.append(
                f"{result.driver} run: a rejected rows line is not JSON ({error}): {line!r}"
            )
            continue
        if record["row_number"] in result.rejected:
            result.problems.append(f"{result.driver} run: row {record['row_number']} rejected twice")
        result.rejected[record["row_number"]] = (record["field"], record["reason"])
    file_rows = sorted(result.rejected)
    sample_rows = sorted(r.row_number for r in sample)
    if sample and sample_rows != file_rows:
        result.problems.append(
            f"{result.driver} run: rejected rows {file_rows} in the store, {sample_rows} in the sample"
        )


def _preview(
    env: OracleEnv, case: TableCase, result: ProductResult, column_types: dict[str, str], workdir: Path
) -> None:
    config = _config(env, case, result.driver, result.query, column_types, workdir / "preview")
    try:
        preview = preview_sync(config, SYNC, DESTINATION, 0, limit=case.rows)
    except Exception as error:
        result.preview_error = f"{type(error).__name__}: {error}"
        result.preview_error_types = _causes(error)
        if "SourceError" not in result.preview_error_types:
            result.preview_error += "\n" + traceback.format_exc(limit=-6)
        return
    result.preview_payloads = list(preview.payloads)
    result.preview_rows = len(preview.rows)
    result.preview_rejected = {r.row_number: (r.field, r.reason) for r in preview.rejected}


def run_product(
    env: OracleEnv, case: TableCase, jobs: list[tuple[str, str, dict[str, str]]], example: Path
) -> list[ProductResult]:
    """Each (driver, query, column_types): a run into an outbox and a preview, a few at a time."""
    results = [ProductResult(driver, query) for driver, query, _ in jobs]
    tasks: list[Callable[[], None]] = []
    for index, ((driver, _, column_types), result) in enumerate(zip(jobs, results, strict=True)):
        workdir = example / f"{index}-{driver}"
        tasks.append(lambda r=result, c=column_types, w=workdir: _run(env, case, r, c, w))
        tasks.append(lambda r=result, c=column_types, w=workdir: _preview(env, case, r, c, w))
    with ThreadPoolExecutor(max_workers=env.parallel) as pool:
        for future in [pool.submit(task) for task in tasks]:
            future.result()
    return results


def compare_line(outcome: Outcome, line: bytes, where: str) -> list[str]:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError as error:
        return [f"{where}: not one JSON document ({error}): {line!r}"]
    if isinstance(outcome, Rejected):
        reasons = "; ".join(outcome.reasons)
        return [f"{where}: sent, but the reference rejects it ({reasons}):\n    sent: {line.decode()}"]
    issues = lexical_problems(line) + diff(outcome.call, parse_line(line))
    if not issues:
        return []
    return [
        f"{where}: "
        + "; ".join(issues)
        + f"\n    sent:     {line.decode()}\n    expected: {show_expected(outcome.call)}"
    ]


def compare(
    expected: list[Outcome],
    lines: list[bytes],
    rejected: dict[int, tuple[str, str]],
    label: str,
    rows: int | None = None,
) -> list[str]:
    """The product's calls and rejected rows against the reference's outcomes, row by row (`rows`:
    how many of the rows the product looked at, all of them unless said)."""
    rows = len(expected) if rows is None else rows
    problems: list[str] = []
    sent_rows = [i for i in range(1, rows + 1) if i not in rejected]
    unknown = sorted(set(rejected) - set(range(1, rows + 1)))
    if unknown:
        problems.append(f"{label}: rejected rows {unknown} that the result does not have")
    if len(lines) != len(sent_rows):
        problems.append(f"{label}: {len(lines)} calls for the {len(sent_rows)} rows not rejected")
    line_for = dict(zip(sent_rows, lines, strict=False))
    for number, outcome in enumerate(expected[:rows], 1):
        where = f"{label}: row {number}"
        if number in rejected:
            name, reason = rejected[number]
            if isinstance(outcome, Sent):
                problems.append(
                    f"{where}: rejected ({name}: {reason}), but the reference sends "
                    f"{show_expected(outcome.call)}"
                )
            elif name not in outcome.fields and "*" not in outcome.fields:
                problems.append(
                    f"{where}: rejected naming {name!r} ({reason}); the reference names "
                    f"{sorted(outcome.fields)} ({'; '.join(outcome.reasons)})"
                )
            continue
        if number in line_for:
            problems += compare_line(outcome, line_for[number], where)
    return problems


def _fields(rejected: dict[int, tuple[str, str]]) -> dict[int, str]:
    return {row: name for row, (name, _) in rejected.items()}


def _describe(result: ProductResult) -> str:
    return f"{result.driver} ({'connectorx query' if result.driver == 'connectorx' else 'query'})"


def check_result(result: ProductResult, expected: list[Outcome], rows: int) -> list[str]:
    label = f"{result.driver} run"
    problems = list(result.problems)
    if result.error:
        problems.append(f"{label} failed: {result.error}")
    else:
        problems += compare(expected, result.lines, result.rejected, label)
    if result.preview_error:
        problems.append(f"{result.driver} preview failed: {result.preview_error}")
        return problems
    if result.preview_rows != rows:
        problems.append(f"{result.driver} preview: {result.preview_rows} rows previewed of {rows}")
    preview_label = f"{result.driver} preview"
    problems += compare(
        expected, result.preview_payloads, result.preview_rejected, preview_label, result.preview_rows
    )
    if not result.error and result.preview_rows == rows:
        if result.preview_payloads != result.lines:
            first = next(
                (
                    (i, a, b)
                    for i, (a, b) in enumerate(itertools.zip_longest(result.preview_payloads, result.lines))
                    if a != b
                ),
                None,
            )
            problems.append(f"{result.driver}: the preview's payloads differ from the run's (first: {first})")
        if _fields(result.preview_rejected) != _fields(result.rejected):
            problems.append(
                f"{result.driver}: the preview rejects {_fields(result.preview_rejected)}, "
                f"the run {_fields(result.rejected)}"
            )
    return problems


def check_same_bytes(results: list[ProductResult]) -> list[str]:
    """Drivers that read the same query send the same bytes and reject the same rows."""
    problems: list[str] = []
    ran = [r for r in results if not r.error]
    for left, right in itertools.pairwise(ran):
        if left.query != right.query:
            continue
        if left.lines != right.lines:
            pairs = itertools.zip_longest(left.lines, right.lines)
            first = next(((i, a, b) for i, (a, b) in enumerate(pairs) if a != b), None)
            problems.append(f"{left.driver} and {right.driver} send different bytes (first: {first})")
        if _fields(left.rejected) != _fields(right.rejected):
            problems.append(
                f"{left.driver} rejects {_fields(left.rejected)}, {right.driver} {_fields(right.rejected)}"
            )
    return problems


def check_case(env: OracleEnv, case: TableCase) -> list[str]:
    """Every difference between the product and the reference for one generated table."""
    number = next(env.counter)
    table = f"t{number}_{uuid.uuid4().hex[:8]}"
    example = env.root / f"example-{number}"
    create_table(env, case, table)
    try:
        query = case.query(table)
        assert query is not None
        spec = SyncSpec(case.call_type, case.time_zone, case.send_nulls, case.column_types())
        expected = expected_outcomes(reference_database(env), query, spec)
        jobs = [("pymysql", query, case.column_types()), ("mysqlclient", query, case.column_types())]
        connectorx_query = case.query(table, connectorx=True)
        if case.connectorx_refuses:
            # Refused before a row is read (FLOAT, TIME, wide DECIMAL), or stopped at a zero or
            # invalid date: either way a SourceError, and the run fails.
            jobs.append(("connectorx", query, case.column_types()))
            if connectorx_query:
                jobs.append(("connectorx", connectorx_query, case.column_types(connectorx=True)))
        else:
            jobs.append(("connectorx", query, case.column_types()))
        results = run_product(env, case, jobs, example)
        problems: list[str] = []
        expected_for = {query: expected}
        if connectorx_query and connectorx_query != query:
            cx_spec = SyncSpec(
                case.call_type, case.time_zone, case.send_nulls, case.column_types(connectorx=True)
            )
            expected_for[connectorx_query] = expected_outcomes(
                reference_database(env), connectorx_query, cx_spec
            )
        for result in results:
            if result.driver == "connectorx" and case.connectorx_refuses and result.query == query:
                problems += _check_connectorx_refusal(result)
                continue
            problems += check_result(result, expected_for[result.query], case.rows)
        problems += check_same_bytes(results)
        return problems
    finally:
        drop_table(env, table)


def _check_connectorx_refusal(result: ProductResult) -> list[str]:
    problems = []
    if result.error is None or "SourceError" not in result.error_types:
        problems.append(
            f"connectorx run: expected a SourceError for the columns it cannot read, got {result.error!r}"
        )
    if result.preview_error is None or "SourceError" not in result.preview_error_types:
        problems.append(f"connectorx preview: expected a SourceError, got {result.preview_error!r}")
    return problems


def invalid_outbox_lines(root: Path) -> list[str]:
    """Every line of every outbox file under `root` that is not one JSON document."""
    bad: list[str] = []
    for path in sorted(root.rglob("outbox/*.jsonl")):
        for number, line in enumerate(path.read_bytes().split(b"\n")[:-1], 1):
            try:
                orjson.loads(line)
            except orjson.JSONDecodeError as error:
                bad.append(f"{path.relative_to(root)}:{number}: {error}: {line[:200]!r}")
    return bad


def report(case: TableCase, problems: list[str]) -> str:
    shown = problems[:MAX_REPORTED]
    more = f"\n... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
    return (
        f"{len(problems)} differences from docs/mapping.md's rules for this table:\n\n"
        + case.sql_script()
        + "\n\n"
        + "\n".join(f"- {p if len(p) < 4000 else p[:4000] + ' ...'}" for p in shown)
        + more
    )
