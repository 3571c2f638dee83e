"""Pack serialized calls into `/batch` request bodies of bounded size."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from reverse_etl_assets.mapping.calls import MappedCall

_PREFIX = b'{"batch":['
_SUFFIX = b"]}"
_EMPTY_SIZE = len(_PREFIX) + len(_SUFFIX)


@dataclass
class BatchRequest:
    """The calls of one `POST /batch` (each knows the result row it came from)."""

    calls: list[MappedCall] = field(default_factory=list)
    size: int = _EMPTY_SIZE  # the body's length in bytes

    def body(self) -> bytes:
        return _PREFIX + b",".join(call.body for call in self.calls) + _SUFFIX

    def split(self) -> tuple[BatchRequest, BatchRequest]:
        middle = len(self.calls) // 2
        return _request(self.calls[:middle]), _request(self.calls[middle:])


def _request(calls: list[MappedCall]) -> BatchRequest:
    return BatchRequest(calls, _EMPTY_SIZE + sum(len(c.body) for c in calls) + max(len(calls) - 1, 0))


class RequestPacker:
    """Fills a request until the next call would push it past `max_bytes` (or `max_calls`)."""

    def __init__(self, max_bytes: int, max_calls: int | None = None) -> None:
        self.max_bytes = max_bytes
        self.max_calls = max_calls
        self._current = BatchRequest()

    def add(self, calls: Sequence[MappedCall]) -> Iterator[BatchRequest]:
        """Add calls; yield each request as it becomes full."""
        for call in calls:
            current = self._current
            grown = current.size + len(call.body) + (1 if current.calls else 0)
            if current.calls and (grown > self.max_bytes or len(current.calls) == self.max_calls):
                yield current
                current = self._current = BatchRequest()
                grown = current.size + len(call.body)
            current.calls.append(call)
            current.size = grown

    def flush(self) -> Iterator[BatchRequest]:
        if self._current.calls:
            yield self._current
            self._current = BatchRequest()
