"""Run a sync's query where reading it costs least, and stream its Arrow record batches back.

PyMySQL decodes rows in Python and mysqlclient builds Python objects for them: with them the query
runs in a process of its own, so that this work runs on one core while mapping and delivery run on
another, instead of taking turns on Python's lock. The reading process is the same code as the
in-process session (connection.py): read-only transaction, time zone, the server's clock.
ConnectorX reads rows into Arrow in Rust, without that lock: its query runs in this process (in
the caller's prefetch thread), which saves starting a Python process (about half a second) and
copying every batch through a pipe.

Protocol with the reading process: the parent writes the request (JSON) to the child's stdin; the
child writes Arrow IPC streams to stdout, one per result schema, whose schema metadata carries the
server's clock at the start of the run; on an error it writes `{"error": ...}` to stderr and exits
with status 3.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, Protocol

import pyarrow as pa
from pydantic import TypeAdapter

from reverse_etl_assets.config.models import Database, MySQLDatabase
from reverse_etl_assets.source.drivers import database_password
from reverse_etl_assets.source.errors import SourceError

SERVER_TIME = b"reverse_etl.server_time"
_FAILED = 3
_PR_SET_PDEATHSIG = 1


class RunningQuery(Protocol):
    """A query being read: iterate `batches()` (once); then `server_time` is set."""

    server_time: int | None
    peak_memory_kb: int | None  # a reading process's peak RSS, once it has finished

    def batches(self) -> Iterator[pa.RecordBatch]: ...

    def first_server_time(self) -> int: ...

    def stop(self) -> None: ...


@dataclass
class ChildQuery:
    """The query running in the child: read `batches()`, then `server_time` is set."""

    process: subprocess.Popen[bytes]
    database_name: str
    server_time: int | None = None
    peak_memory_kb: int | None = None  # the reading process's peak RSS, once it has finished

    def batches(self) -> Iterator[pa.RecordBatch]:
        output: IO[bytes] = self.process.stdout  # type: ignore[assignment]
        try:
            while output.peek(1):  # type: ignore[attr-defined]
                stream = pa.ipc.open_stream(output)
                self.server_time = int(stream.schema.metadata[SERVER_TIME])
                yield from stream
        except (pa.ArrowInvalid, OSError) as error:
            self._check()  # the child's own error says more than a truncated stream
            raise SourceError(
                f"database {self.database_name!r}: the query's rows were cut off ({error})"
            ) from None
        self._check()

    def first_server_time(self) -> int:
        """The server's clock when the run began (known once the first stream has opened)."""
        if self.server_time is None:
            raise SourceError(f"database {self.database_name!r}: the query process sent nothing")
        return self.server_time

    def _check(self) -> None:
        status = self.process.wait()
        raw = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
        try:
            report = json.loads(raw.strip().splitlines()[-1])
        except (ValueError, IndexError):
            report = {}
        if status == 0:
            self.peak_memory_kb = report.get("peak_memory_kb")
            return
        message = report.get("error") or f"the query process failed (status {status}): {raw.strip()[-2000:]}"
        raise SourceError(message)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()  # the server ends the query when the connection drops
        self.process.wait()
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


@dataclass
class InProcessQuery:
    """The query read in this process, by a driver that does not hold Python's lock (ConnectorX)."""

    database: Database
    database_name: str
    sql: str
    batch_rows: int
    server_time: int | None = None
    peak_memory_kb: int | None = None  # counted in this process's own

    def batches(self) -> Iterator[pa.RecordBatch]:
        from reverse_etl_assets.source.connection import open_read_only_session

        with open_read_only_session(self.database_name, self.database) as session:
            self.server_time = session.server_time()
            yield from session.stream_batches(self.sql, self.batch_rows)

    def first_server_time(self) -> int:
        if self.server_time is None:
            raise SourceError(f"database {self.database_name!r}: the query was not read")
        return self.server_time

    def stop(self) -> None:
        pass  # closing `batches()` closes the session and ends ConnectorX's reading


def start_query(name: str, database: Database, sql: str, batch_rows: int) -> RunningQuery:
    if isinstance(database, MySQLDatabase) and database.driver == "connectorx":
        return InProcessQuery(database, name, sql, batch_rows)
    if isinstance(database, MySQLDatabase):
        database_password(name, database)  # read here too, so that this process redacts it
    request = {
        "name": name,
        "database": TypeAdapter(Database).dump_python(database, mode="json"),
        "sql": sql,
        "batch_rows": batch_rows,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", __name__],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),  # the password is read from its variable there, never passed
    )
    assert process.stdin is not None
    process.stdin.write(json.dumps(request).encode())
    process.stdin.close()
    return ChildQuery(process, name)


def _serve(request: dict[str, Any], output: IO[bytes]) -> None:
    """The child: read the query as InProcessQuery does, and write its batches as Arrow IPC streams."""
    import gc

    gc.set_threshold(100_000, 50, 100)  # see sync_run._fewer_gc_passes
    database = TypeAdapter(Database).validate_python(request["database"])
    query = InProcessQuery(database, request["name"], request["sql"], request["batch_rows"])
    writer: pa.ipc.RecordBatchStreamWriter | None = None
    schema: pa.Schema | None = None
    for batch in query.batches():
        if schema is None or not batch.schema.equals(schema, check_metadata=True):
            if writer is not None:
                writer.close()  # a new schema: a new stream
            schema = batch.schema
            writer = pa.ipc.new_stream(
                output, schema.with_metadata({**(schema.metadata or {}), **_clock(query)})
            )
        writer.write_batch(batch)
    if writer is None:  # no rows: a stream anyway, to carry the server's clock
        writer = pa.ipc.new_stream(output, pa.schema([], metadata=_clock(query)))
    writer.close()


def _clock(query: InProcessQuery) -> dict[bytes, bytes]:
    return {SERVER_TIME: str(query.first_server_time()).encode()}


def _die_with_parent() -> None:
    """A parent killed outright (SIGKILL) cannot stop this process: ask Linux to, rather than read
    on for nobody."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return  # not Linux: the broken pipe ends it at the next batch
    if os.getppid() == 1:  # the parent died before the request above
        sys.exit(_FAILED)


def main() -> None:
    _die_with_parent()
    try:
        _serve(json.loads(sys.stdin.buffer.read()), sys.stdout.buffer)
        sys.stdout.buffer.flush()
        sys.stderr.write(json.dumps({"peak_memory_kb": _peak_memory_kb()}) + "\n")
    except SourceError as error:
        sys.stderr.write(json.dumps({"error": str(error)}) + "\n")
        sys.exit(_FAILED)
    except BrokenPipeError:
        sys.exit(_FAILED)  # the parent stopped reading: nothing to say


def _peak_memory_kb() -> int | None:
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return None


if __name__ == "__main__":
    main()
