"""Read the next batches in a thread of its own while the caller maps and sends the current one.

The driver holds the GIL while it decodes rows; Arrow's kernels and the network release it. With
reading in its own thread, the two halves of a sync overlap on two cores instead of taking turns.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator
from typing import TypeVar

T = TypeVar("T")
_ITEM, _ERROR, _DONE = "item", "error", "done"


def prefetched(items: Generator[T, None, None], depth: int = 2) -> Generator[T, None, None]:
    """Yield what `items` yields, reading up to `depth` items ahead. If the caller stops early, the
    reading stops too and `items` is closed (for a query stream: its connection is dropped)."""
    ahead: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(kind: str, value: object) -> bool:
        while not stop.is_set():
            try:
                ahead.put((kind, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(_ITEM, item):
                    return
            put(_DONE, None)
        except BaseException as error:  # handed to the caller's thread, which raises it
            put(_ERROR, error)
        finally:
            items.close()

    reader = threading.Thread(target=produce, name="source-prefetch", daemon=True)
    reader.start()
    try:
        while True:
            kind, value = ahead.get()
            if kind == _ITEM:
                yield value  # type: ignore[misc]
            elif kind == _ERROR:
                raise value  # type: ignore[misc]
            else:
                return
    finally:
        stop.set()
        reader.join()
