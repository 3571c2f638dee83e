"""A client-side rate limit per destination, shared by the threads that send to it and, through a
file, by every process on this machine that sends to it (runs of different syncs at once).

A `Retry-After` pause is shared the same way, and belongs to the run that was told it: it ends when
that run's limiter closes, so that one answer cannot hold back later runs."""

from __future__ import annotations

import fcntl
import mmap
import os
import secrets
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# The window is a ring of the last `requests` send times (Unix time), after a header: the slot of
# the oldest send, the time until which a `Retry-After` pauses everyone, and whose pause it is.
_HEADER = struct.Struct("<qdq")
_SLOT = struct.Struct("<d")


class Stopped(Exception):
    """The run is stopping: nothing more is sent."""


def shared_window_file(folder: Path, destination: str, requests: int, per_seconds: float) -> Path:
    """The limit is in the name, so runs configured with another limit never share a window."""
    return folder / f"{destination}.{requests}-per-{per_seconds:g}s.v2.window"


class RateLimiter:
    """At most `requests` in any window of `per_seconds` (a sliding window, as the destination
    counts), plus a pause every sender honours when the destination asks for one (`Retry-After`).

    With `shared_file`, the window lives in that file (memory-mapped, locked with `flock`), so
    concurrent runs on one machine share the limit; without, it lives in this process."""

    def __init__(self, requests: int, per_seconds: float, shared_file: Path | None = None) -> None:
        self.requests = requests
        self.per_seconds = per_seconds
        self._owner = secrets.randbits(62) + 1  # this limiter's pauses
        self._lock = threading.Lock()  # flock does not separate the threads of one process
        self._fd: int | None = None
        size = _HEADER.size + _SLOT.size * requests
        if shared_file is None:
            self._window = mmap.mmap(-1, size)
            return
        shared_file.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(shared_file, os.O_RDWR | os.O_CREAT, 0o600)
        with self._file_lock():
            if os.fstat(self._fd).st_size != size:  # new (its name fixes the size)
                os.ftruncate(self._fd, size)
        self._window = mmap.mmap(self._fd, size)

    def acquire(self, stop: threading.Event) -> float:
        """Wait for a slot; return the seconds waited. Raises Stopped once `stop` is set."""
        waited = 0.0
        while True:
            with self._lock, self._file_lock():
                now = time.time()
                oldest, paused_until, owner = _HEADER.unpack_from(self._window, 0)
                delay = paused_until - now
                if delay <= 0:
                    offset = _HEADER.size + _SLOT.size * oldest
                    (sent,) = _SLOT.unpack_from(self._window, offset)
                    delay = sent + self.per_seconds - now
                    # Free, or stamped before the clock was set back.
                    if delay <= 0 or sent > now + self.per_seconds:
                        _SLOT.pack_into(self._window, offset, now)
                        _HEADER.pack_into(self._window, 0, (oldest + 1) % self.requests, paused_until, owner)
                        return waited
            if stop.wait(delay):
                raise Stopped()
            waited += delay

    def pause(self, seconds: float) -> None:
        """Hold every sender for `seconds` (a `Retry-After`), as this limiter's pause."""
        with self._lock, self._file_lock():
            oldest, paused_until, _owner = _HEADER.unpack_from(self._window, 0)
            until = time.time() + seconds
            if until > paused_until:
                _HEADER.pack_into(self._window, 0, oldest, until, self._owner)

    def close(self) -> None:
        """End this limiter's pause, if it still holds, and let go of the window."""
        with self._lock, self._file_lock():
            oldest, _paused_until, owner = _HEADER.unpack_from(self._window, 0)
            if owner == self._owner:
                _HEADER.pack_into(self._window, 0, oldest, 0.0, 0)
        self._window.close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        if self._fd is None:
            yield
            return
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
