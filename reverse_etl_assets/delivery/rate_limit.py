"""A client-side rate limit per destination, shared by the threads that send to it and, through a
window kept in a shared store, by every process of every worker that sends to it.

A `Retry-After` pause is shared the same way, and belongs to the run that was told it: it ends when
that run's limiter closes, so that one answer cannot hold back later runs."""

from __future__ import annotations

import secrets
import threading
import time
from typing import Protocol

from reverse_etl_assets.state.rate_window import LEASE_SECONDS


class Stopped(Exception):
    """The run is stopping: nothing more is sent."""


class RateWindow(Protocol):
    """At most `requests` sends in any `per_seconds`, and a pause, wherever they are kept."""

    def take(self, wanted: int) -> tuple[int, float, float]:
        """Take up to `wanted` slots: (how many were taken, the seconds to wait before asking again
        when none were, the window's clock)."""
        ...

    def pause(self, seconds: float, owner: int) -> None: ...

    def end_pause(self, owner: int) -> None: ...


class MemoryWindow:
    """The window in this process only (the core used on its own, without a store)."""

    def __init__(self, requests: int, per_seconds: float) -> None:
        self.requests = requests
        self.per_seconds = per_seconds
        self._sent = [0.0] * requests  # a ring of send times; `_oldest` is the next slot to reuse
        self._oldest = 0
        self._paused_until = 0.0
        self._pause_owner = 0
        self._lock = threading.Lock()

    def take(self, wanted: int) -> tuple[int, float, float]:
        with self._lock:
            now = time.time()
            if self._paused_until > now:
                return 0, self._paused_until - now, now
            taken = 0
            while taken < wanted:
                sent = self._sent[self._oldest]
                delay = sent + self.per_seconds + LEASE_SECONDS - now  # as StoreWindow does
                if delay > 0 and sent <= now + self.per_seconds:  # busy, and not from a clock set back
                    return taken, (0.0 if taken else delay), now
                self._sent[self._oldest] = now
                self._oldest = (self._oldest + 1) % self.requests
                taken += 1
            return taken, 0.0, now

    def pause(self, seconds: float, owner: int) -> None:
        with self._lock:
            until = time.time() + seconds
            if until > self._paused_until:
                self._paused_until, self._pause_owner = until, owner

    def end_pause(self, owner: int) -> None:
        with self._lock:
            if self._pause_owner == owner:
                self._paused_until, self._pause_owner = 0.0, 0


class RateLimiter:
    """At most `requests` in any window of `per_seconds` (a sliding window, as the destination
    counts), plus a pause every sender honours when the destination asks for one (`Retry-After`).

    The threads of one process ask the window one at a time, and take a slot for every thread
    waiting at that moment, so a shared window is asked once per several requests."""

    def __init__(self, requests: int, per_seconds: float, window: RateWindow | None = None) -> None:
        self.requests = requests
        self.per_seconds = per_seconds
        self.window = window if window is not None else MemoryWindow(requests, per_seconds)
        self._owner = secrets.randbits(62) + 1  # this limiter's pauses
        self._lock = threading.Lock()
        self._waiting = 0
        self._leased = 0
        self._leased_until = 0.0

    def acquire(self, stop: threading.Event) -> float:
        """Wait for a slot; return the seconds waited. Raises Stopped once `stop` is set."""
        waited = 0.0
        with self._lock:
            self._waiting += 1
        try:
            while True:
                with self._lock:
                    if self._leased and time.monotonic() < self._leased_until:
                        self._leased -= 1
                        return waited
                    taken, delay, _now = self.window.take(self._waiting)
                    if taken:
                        self._leased = taken - 1
                        self._leased_until = time.monotonic() + LEASE_SECONDS
                        return waited
                delay = max(delay, 0.001)
                if stop.wait(delay):
                    raise Stopped()
                waited += delay
        finally:
            with self._lock:
                self._waiting -= 1

    def pause(self, seconds: float) -> None:
        """Hold every sender for `seconds` (a `Retry-After`), as this limiter's pause."""
        self.window.pause(seconds, self._owner)
        with self._lock:
            self._leased = 0

    def close(self) -> None:
        """End this limiter's pause, if it still holds."""
        self.window.end_pause(self._owner)
