"""Pack serialized calls into `/batch` request bodies of bounded size."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from reverse_etl_assets.mapping.calls import Calls

_PREFIX = b'{"batch":['
_SUFFIX = b"]}"
_EMPTY_SIZE = len(_PREFIX) + len(_SUFFIX)


@dataclass
class BatchRequest:
    """The calls of one `POST /batch` (each knows the result row it came from)."""

    calls: Calls = field(default_factory=Calls)
    size: int = _EMPTY_SIZE  # the body's length in bytes

    def body(self) -> bytes:
        return _PREFIX + b",".join(self.calls.bodies) + _SUFFIX

    def split(self) -> tuple[BatchRequest, BatchRequest]:
        middle = len(self.calls) // 2
        return _request(self.calls.slice(0, middle)), _request(self.calls.slice(middle))


def _request(calls: Calls) -> BatchRequest:
    return BatchRequest(calls, _EMPTY_SIZE + sum(map(len, calls.bodies)) + max(len(calls) - 1, 0))


class RequestPacker:
    """Fills a request until the next call would push it past `max_bytes` (or `max_calls`)."""

    def __init__(self, max_bytes: int, max_calls: int | None = None) -> None:
        self.max_bytes = max_bytes
        self.max_calls = max_calls or 0
        self._current = BatchRequest()

    def add(self, calls: Calls) -> Iterator[BatchRequest]:
        """Add calls; yield each request as it becomes full."""
        current, start = self._current, 0
        size, count = current.size, len(current.calls)
        for index, body in enumerate(calls.bodies):
            grown = size + len(body) + (1 if count else 0)
            if count and (grown > self.max_bytes or count == self.max_calls):
                current.calls.extend(calls, start, index)
                current.size = size
                yield current
                current, start = BatchRequest(), index
                count, grown = 0, _EMPTY_SIZE + len(body)
            size, count = grown, count + 1
        current.calls.extend(calls, start)
        current.size = size
        self._current = current

    def flush(self) -> Iterator[BatchRequest]:
        if len(self._current.calls):
            yield self._current
            self._current = BatchRequest()
