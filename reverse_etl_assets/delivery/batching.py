"""Pack serialized calls into `/batch` request bodies of bounded size."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

_PREFIX = b'{"batch":['
_SUFFIX = b"]}"


@dataclass
class BatchRequest:
    """The calls of one `POST /batch`, with the result rows they came from."""

    calls: list[bytes] = field(default_factory=list)
    row_numbers: list[int] = field(default_factory=list)
    size: int = len(_PREFIX) + len(_SUFFIX)

    def body(self) -> bytes:
        return _PREFIX + b",".join(self.calls) + _SUFFIX

    def split(self) -> tuple[BatchRequest, BatchRequest]:
        middle = len(self.calls) // 2
        return (
            _request(self.calls[:middle], self.row_numbers[:middle]),
            _request(self.calls[middle:], self.row_numbers[middle:]),
        )


def _request(calls: list[bytes], row_numbers: list[int]) -> BatchRequest:
    size = len(_PREFIX) + len(_SUFFIX) + sum(map(len, calls)) + max(len(calls) - 1, 0)
    return BatchRequest(calls, row_numbers, size)


class RequestPacker:
    """Fills a request until the next call would push it past `max_bytes` (or `max_calls`)."""

    def __init__(self, max_bytes: int, max_calls: int | None = None) -> None:
        self.max_bytes = max_bytes
        self.max_calls = max_calls
        self._current = BatchRequest()

    def add(self, calls: list[bytes], row_numbers: list[int]) -> Iterator[BatchRequest]:
        """Add calls; yield each request that is full."""
        current = self._current
        for call, row_number in zip(calls, row_numbers, strict=True):
            grown = current.size + len(call) + (1 if current.calls else 0)
            full = current.calls and (
                grown > self.max_bytes or (self.max_calls and len(current.calls) >= self.max_calls)
            )
            if full:
                yield current
                current = self._current = BatchRequest()
                grown = current.size + len(call)
            current.calls.append(call)
            current.row_numbers.append(row_number)
            current.size = grown

    def flush(self) -> Iterator[BatchRequest]:
        if self._current.calls:
            yield self._current
            self._current = BatchRequest()
