"""The measurements that do not use our package: the driver alone, and the tools users reach for today.

Each function runs in a child process of its own (see worker.py) and returns `rows`, `seconds` and
`cpu_seconds` for its timed part. Libraries are imported inside the functions, so this module also
loads in the peers' virtual environment, which does not have our package.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from measure import Stopwatch

FETCH_ROWS = 10_000


def _connect(db: dict[str, Any], cursorclass: Any) -> Any:
    import pymysql

    return pymysql.connect(
        host=db["host"],
        port=db["port"],
        user=db["user"],
        password=db.get("password") or "",
        database=db["database"],
        charset="utf8mb4",
        cursorclass=cursorclass,
    )


def pymysql_stream(db: dict[str, Any], sql: str, fetch_rows: int = FETCH_ROWS) -> dict[str, Any]:
    """(2) PyMySQL alone: tuples from a server-side cursor, fetched in chunks and dropped."""
    import pymysql.cursors

    rows = 0
    watch = Stopwatch()
    with watch:
        connection = _connect(db, pymysql.cursors.SSCursor)
        with connection, connection.cursor() as cursor:
            cursor.execute(sql)
            while chunk := cursor.fetchmany(fetch_rows):
                rows += len(chunk)
    return {"rows": rows, "seconds": watch.seconds, "cpu_seconds": watch.cpu_seconds}


def customerio_identify(
    db: dict[str, Any], sql: str, host: str, api_key: str, lossless: bool = True
) -> dict[str, Any]:
    """(6) What users write by hand today: PyMySQL rows, one `identify` each, with
    customerio-cdp-analytics' default settings (one thread, 100 calls a request, a queue of 10,000).

    The library drops a call, returning `(False, msg)`, when its queue is full. With `lossless`, the
    script then waits for room (`queue.put` blocks), as a careful user would have to; otherwise the
    return value is ignored, as in the library's examples, and `dropped` counts what was lost.
    """
    import logging

    import pymysql.cursors
    from customerio import analytics

    # One "queue is full" warning per dropped call would flood the log: count them instead.
    logging.getLogger("customerio").setLevel(logging.ERROR)
    analytics.write_key = api_key
    analytics.host = host
    dropped = rows = 0
    watch = Stopwatch()
    with watch:
        connection = _connect(db, pymysql.cursors.SSDictCursor)
        with connection, connection.cursor() as cursor:
            cursor.execute(sql)
            for row in cursor:
                user_id = str(row.pop("userId"))
                preferences = row["preferences"]
                row["preferences"] = json.loads(preferences) if preferences is not None else None
                row["is_active"] = bool(row["is_active"])
                queued, message = analytics.identify(user_id, row)
                rows += 1
                if not queued:
                    if lossless:
                        analytics.default_client.queue.put(message)
                    else:
                        dropped += 1
        analytics.flush()  # waits until the consumer thread has sent everything queued
    analytics.shutdown()
    return {
        "rows": rows - dropped,
        "rows_read": rows,
        "dropped": dropped,
        "seconds": watch.seconds,
        "cpu_seconds": watch.cpu_seconds,
        "threads_seen": threading.active_count(),
    }


def dlt_extract(db: dict[str, Any], view: str, chunk_size: int | None = None) -> dict[str, Any]:
    """(7) dlt's sql_database source, pyarrow backend, over a view of the sync query: iterate the
    resource (Arrow tables), count the rows, load nothing."""
    from dlt.sources.sql_database import sql_table

    credentials = f"mysql+pymysql://{db['user']}@{db['host']}:{db['port']}/{db['database']}"
    kwargs = {"chunk_size": chunk_size} if chunk_size else {}
    rows = chunks = 0
    watch = Stopwatch()
    with watch:
        resource = sql_table(credentials=credentials, table=view, backend="pyarrow", **kwargs)
        for item in resource:
            rows += item.num_rows
            chunks += 1
    return {"rows": rows, "seconds": watch.seconds, "cpu_seconds": watch.cpu_seconds, "chunks": chunks}


def server_capacity(
    base_url: str, api_key: str, connections: int = 8, requests_each: int = 25, body_kb: int = 480
) -> dict[str, Any]:
    """Not a peer: checks that the fake server keeps up, with `connections` kept-alive clients each
    posting `requests_each` bodies of `body_kb` KB back to back (stdlib only)."""
    import base64
    import http.client
    from urllib.parse import urlsplit

    url = urlsplit(base_url)
    call = b'{"type":"identify","userId":"1","traits":{"email":"a@example.com"},"messageId":"%08d"}'
    per_body = body_kb * 1000 // (len(call % 1) + 1)
    body = b'{"batch":[' + b",".join(call % i for i in range(per_body)) + b"]}"
    auth = "Basic " + base64.b64encode(f"{api_key}:".encode()).decode()
    headers = {"Content-Type": "application/json", "Authorization": auth}
    failures: list[str] = []

    def client() -> None:
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        for _ in range(requests_each):
            connection.request("POST", f"{url.path}/batch", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                failures.append(str(response.status))
        connection.close()

    watch = Stopwatch()
    with watch:
        threads = [threading.Thread(target=client) for _ in range(connections)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    requests = connections * requests_each
    return {
        "rows": requests * per_body,
        "seconds": watch.seconds,
        "cpu_seconds": watch.cpu_seconds,
        "requests": requests,
        "calls_per_request": per_body,
        "body_bytes": len(body),
        "failures": len(failures),
        "connections": connections,
    }
