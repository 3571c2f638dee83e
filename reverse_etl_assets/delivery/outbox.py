"""The `outbox` destination: appends the calls it would send to a JSONL file, one call a line."""

from __future__ import annotations

import os
from pathlib import Path

from reverse_etl_assets.delivery.batching import BatchRequest


class OutboxDestination:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("ab")

    def send(self, request: BatchRequest) -> None:
        self._file.write(b"".join(call + b"\n" for call in request.calls))

    def flush(self) -> None:
        # The file on disk is this destination's acknowledgement: make it durable.
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()
