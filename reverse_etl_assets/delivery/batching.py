"""Pack serialized calls into `/batch` request bodies of bounded size.

Where each request ends is found from the calls' lengths with NumPy, and each body is joined by
Arrow: nothing here runs per call.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reverse_etl_assets.mapping import text_buffers
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
        bodies = self.calls.bodies
        one_list = pa.ListArray.from_arrays(pa.array([0, len(bodies)], pa.int32()), bodies)
        joined = pc.binary_join(one_list, ",")[0]
        return b"".join((_PREFIX, joined.as_buffer() or b"", _SUFFIX))

    def split(self) -> tuple[BatchRequest, BatchRequest]:
        middle = len(self.calls) // 2
        return _request(self.calls.slice(0, middle)), _request(self.calls.slice(middle))


def _request(calls: Calls) -> BatchRequest:
    return BatchRequest(
        calls, _EMPTY_SIZE + int(text_buffers.lengths(calls.bodies).sum()) + max(len(calls) - 1, 0)
    )


class RequestPacker:
    """Fills a request until the next call would push it past `max_bytes` (or `max_calls`); a call
    too large for any request goes alone."""

    def __init__(self, max_bytes: int, max_calls: int | None = None) -> None:
        self.max_bytes = max_bytes
        self.max_calls = max_calls or 2**62
        self._parts: list[Calls] = []  # of the request being filled
        self._size = _EMPTY_SIZE
        self._count = 0

    def add(self, calls: Calls) -> Iterator[BatchRequest]:
        """Add calls; yield each request as it becomes full."""
        # cost[i]: the bytes of the first i calls, each with the comma that may go before it.
        cost = np.concatenate(([0], np.cumsum(text_buffers.lengths(calls.bodies) + 1)))
        start, total = 0, len(calls)
        while start < total:
            # An empty request has no comma before its first call.
            budget = self.max_bytes - self._size + (0 if self._count else 1)
            fits = int(np.searchsorted(cost, cost[start] + budget, side="right")) - 1 - start
            take = min(fits, total - start, self.max_calls - self._count)
            if take <= 0 and not self._count:
                take = 1
            if take > 0:
                self._parts.append(calls.slice(start, start + take))
                self._size += int(cost[start + take] - cost[start]) - (0 if self._count else 1)
                self._count += take
                start += take
            if start < total:  # the next call does not fit: this request is full
                yield self._take()

    def flush(self) -> Iterator[BatchRequest]:
        if self._count:
            yield self._take()

    def _take(self) -> BatchRequest:
        request = BatchRequest(Calls.concat(self._parts), self._size)
        self._parts, self._size, self._count = [], _EMPTY_SIZE, 0
        return request
