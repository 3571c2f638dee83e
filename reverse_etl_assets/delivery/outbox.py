"""The `outbox` destination: appends the calls it would send to a JSONL file, one call a line."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from reverse_etl_assets.delivery.batching import BatchRequest
from reverse_etl_assets.delivery.http_api import Answer


class OutboxTransport:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("ab")
        self._lock = threading.Lock()

    def post(self, request: BatchRequest) -> Answer:
        lines = "".join(body + "\n" for body in request.calls.bodies.to_pylist()).encode()
        with self._lock:
            self._file.write(lines)
            self._file.flush()  # to the OS: a killed process cannot lose what it acknowledged
        return Answer(200)

    def abort(self) -> None:
        pass  # a write to a file is not left half-way

    def flush(self) -> None:
        # Durable on disk too, before the cursor moves.
        with self._lock:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()
