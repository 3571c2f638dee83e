"""Database passwords and API keys never appear in logs, metadata, error messages, rendered
queries, previews or the Dagster instance: failing and succeeding syncs are run with known secrets,
and every captured output and every file of the instance is searched for them."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

from reverse_etl_tests.conftest import (
    ScratchDatabase,
    customerio_destination,
    reverse_etl,
    sync_entry,
    write_config,
)
from reverse_etl_tests.fake_customerio import FakeCustomerIo

QUERY = "SELECT id AS userId, email FROM people WHERE updated_at >= FROM_UNIXTIME({{last_sync_time}})"


def run(*args: str, cwd: Path, env: dict[str, str]) -> str:
    done = reverse_etl(*args, cwd=cwd, env=env)
    return done.stdout + done.stderr


def forms(secret: str) -> list[str]:
    """The secret, and the ways it could leak disguised (an Authorization header, say)."""
    return [
        secret,
        base64.b64encode(f"{secret}:".encode()).decode(),
        base64.b64encode(secret.encode()).decode(),
    ]


def test_no_secret_leaks_anywhere(tmp_path: Path, mysql_db: ScratchDatabase):
    db_password = f"DbPass-{secrets.token_hex(8)}"
    wrong_password = f"WrongPass-{secrets.token_hex(8)}"
    api_key = f"CioKey-{secrets.token_hex(8)}"
    user = f"sec_{mysql_db.name[-8:]}"
    mysql_db.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{db_password}'")
    mysql_db.execute(f"GRANT SELECT ON `{mysql_db.name}`.* TO '{user}'@'%'")
    mysql_db.execute(
        "CREATE TABLE people (id INT PRIMARY KEY, email VARCHAR(100), updated_at DATETIME NOT NULL)"
    )
    mysql_db.executemany(
        "INSERT INTO people VALUES (%s, %s, NOW())", [(1, "a@x.io"), (2, None), (3, "c@x.io")]
    )
    server = FakeCustomerIo(api_key=api_key).start()
    outputs: list[str] = []
    try:
        write_config(
            tmp_path / "reverse_etl.yaml",
            {
                "databases": {"app_db": mysql_db.config(user=user, password_env="APP_DB_PASSWORD")},
                "destinations": {
                    "cio": customerio_destination(server, api_key_env="CIO_API_KEY"),
                    "dry_run": {"kind": "outbox"},
                },
                "syncs": [
                    sync_entry("people", QUERY, ["cio", "dry_run"]),
                    # A row without an id is rejected: the rejected-rows file is searched too.
                    sync_entry(
                        "strict",
                        QUERY.replace("id AS userId", "IF(email IS NULL, NULL, id) AS userId"),
                        ["dry_run"],
                    ),
                ],
            },
        )
        good = {"APP_DB_PASSWORD": db_password, "CIO_API_KEY": api_key}
        outputs.append(run("validate", cwd=tmp_path, env=good))
        outputs.append(run("preview", "people", cwd=tmp_path, env=good))
        outputs.append(run("run", "people", cwd=tmp_path, env=good))
        outputs.append(run("run", "strict", cwd=tmp_path, env=good))
        assert "OK people → cio" in outputs[-2] and len(server.accepted) == 3
        # Failing runs: a key the destination refuses, a password the database refuses.
        server.api_key = "something-else"
        outputs.append(
            run("cursor", "reset", "people", "--destination", "cio", "--yes", cwd=tmp_path, env=good)
        )
        outputs.append(run("run", "people", "--destination", "cio", cwd=tmp_path, env=good))
        assert "FAILED people → cio" in outputs[-1] and "401" in outputs[-1]
        bad_db = {"APP_DB_PASSWORD": wrong_password, "CIO_API_KEY": api_key}
        outputs.append(run("run", "people", cwd=tmp_path, env=bad_db))
        assert "Access denied" in outputs[-1]
        outputs.append(run("preview", "people", cwd=tmp_path, env=bad_db))
        outputs.append(run("validate", cwd=tmp_path, env=bad_db))
        outputs.append(run("cursor", "show", "people", cwd=tmp_path, env=good))
    finally:
        server.stop()

    # Everything the instance stored (event log, run storage, compute logs), the outbox and the
    # rejected-rows files, as bytes.
    files = [path for path in tmp_path.rglob("*") if path.is_file() and path.name != "reverse_etl.yaml"]
    assert any(path.suffix == ".db" for path in files)  # the instance's SQLite storage was searched
    assert any("rejected_rows" in str(path) for path in files)
    for secret in (db_password, wrong_password, api_key):
        for form in forms(secret):
            for output in outputs:
                assert form not in output, output
            for path in files:
                assert form.encode() not in path.read_bytes(), path
