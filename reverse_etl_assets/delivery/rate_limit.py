"""A client-side rate limit per destination, shared by the threads that send to it."""

from __future__ import annotations

import threading
import time
from collections import deque


class RateLimiter:
    """At most `requests` in any window of `per_seconds` (a sliding window, as the destination
    counts), plus a pause every thread honours when the destination asks for one (`Retry-After`)."""

    def __init__(self, requests: int, per_seconds: float) -> None:
        self.requests = requests
        self.per_seconds = per_seconds
        self._sent: deque[float] = deque(maxlen=requests)  # when the last `requests` went out
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait for a slot; return the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = time.monotonic()
                delay = self._paused_until - now
                if delay <= 0:
                    if len(self._sent) < self.requests or now - self._sent[0] >= self.per_seconds:
                        self._sent.append(now)
                        return waited
                    delay = self._sent[0] + self.per_seconds - now
            time.sleep(delay)
            waited += delay

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)
