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
from reverse_etl_tests.fake_customerio import FakeCustomerIo, Fault

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
    # state store (rejected rows among it), as bytes.
    files = [path for path in tmp_path.rglob("*") if path.is_file() and path.name != "reverse_etl.yaml"]
    assert any(path.suffix == ".db" for path in files)  # the instance's SQLite storage was searched
    assert any(path.name == "state.sqlite" for path in files)
    for secret in (db_password, wrong_password, api_key):
        for form in forms(secret):
            for output in outputs:
                assert form not in output, output
            for path in files:
                assert form.encode() not in path.read_bytes(), path


def test_no_secret_leaks_from_hostile_failures(tmp_path: Path, mysql_db: ScratchDatabase):
    """Failure modes that used to print a secret: a header value the HTTP library refuses (a
    secret file's final newline), a destination that echoes the credentials it was sent, an alert
    webhook that fails, a password for the fast driver's connection string."""
    token = f"Token-{secrets.token_hex(8)}"
    api_key = f"CioKey-{secrets.token_hex(8)}"
    db_password = f"DbPass-{secrets.token_hex(8)}"
    hook_path = f"services/T0/B0/{secrets.token_hex(12)}"
    user = f"sec_{mysql_db.name[-8:]}"
    mysql_db.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{db_password}'")
    mysql_db.execute(f"GRANT SELECT ON `{mysql_db.name}`.* TO '{user}'@'%'")
    mysql_db.execute("CREATE TABLE people (id INT, email VARCHAR(100), updated_at DATETIME NOT NULL)")
    mysql_db.executemany("INSERT INTO people VALUES (%s, %s, NOW())", [(1, "a@x.io"), (2, "b@x.io")])
    echoing = FakeCustomerIo(api_key=api_key).start()
    # It answers 500 with the request's own Authorization header in the body, as some proxies do.
    echoing.hook = lambda request: Fault(status=500, body=request.headers["authorization"].encode())
    collector = FakeCustomerIo(auth_header=("X-Token", token)).start()
    failing_hook = f"http://127.0.0.1:9/{hook_path}"  # nothing listens on port 9
    outputs: list[str] = []
    try:
        write_config(
            tmp_path / "reverse_etl.yaml",
            {
                "databases": {
                    "app_db": mysql_db.config(user=user, password_env="APP_DB_PASSWORD"),
                    "fast_db": mysql_db.config(
                        user=user, password_env="APP_DB_PASSWORD", driver="connectorx", port=9
                    ),
                },
                "destinations": {
                    "echoing": customerio_destination(
                        echoing, api_key_env="CIO_API_KEY", retry_budget_seconds=1
                    ),
                    "collector": {
                        "kind": "http",
                        "base_url": collector.base_url,
                        "header_name": "X-Token",
                        "header_value_env": "COLLECTOR_TOKEN",
                    },
                },
                "syncs": [
                    sync_entry("people", QUERY, ["echoing", "collector"]),
                    sync_entry("fast", QUERY, ["collector"], database="fast_db"),
                ],
            },
        )
        env = {
            "APP_DB_PASSWORD": db_password,
            "CIO_API_KEY": api_key,
            "COLLECTOR_TOKEN": token + "\n",  # read from a file with its final newline
            "REVERSE_ETL_ALERT_WEBHOOK_URL": failing_hook,
        }
        outputs.append(run("run", "people", "--destination", "collector", cwd=tmp_path, env=env))
        assert "COLLECTOR_TOKEN (header_value_env) holds a line break" in outputs[-1], outputs[-1]
        outputs.append(run("run", "people", "--destination", "echoing", cwd=tmp_path, env=env))
        assert "FAILED people → echoing" in outputs[-1] and "answered 500" in outputs[-1], outputs[-1]
        assert "warning: the alert webhook (127.0.0.1" in outputs[-1]
        outputs.append(run("run", "fast", cwd=tmp_path, env=env))
        assert "FAILED fast → collector" in outputs[-1], outputs[-1]
        outputs.append(run("preview", "fast", cwd=tmp_path, env=env))
    finally:
        echoing.stop()
        collector.stop()

    files = [path for path in tmp_path.rglob("*") if path.is_file() and path.name != "reverse_etl.yaml"]
    assert any(path.suffix == ".db" for path in files)
    for secret in (token, api_key, db_password, hook_path):
        for form in forms(secret):
            for output in outputs:
                assert form not in output, output
            for path in files:
                assert form.encode() not in path.read_bytes(), path
