"""How many requests per second the shared rate limit lets through, per store, side by side.

    python bench/rate_limit_store.py [--workers 2] [--threads 8] [--seconds 6]

Each worker is a process with `--threads` sending threads, as a sync run's sender has; every
thread takes slots from one RateLimiter, as it does before each request (nothing is sent). The
limit is Customer.io's (3000 requests per 3 s). Printed per store: the rate reached, its share of
the limit, the busiest 3-second window (which must not exceed the limit), and the store's
transactions per request. Stores: this process's memory (no sharing: the ceiling), SQLite (one
machine), PostgreSQL (every worker; `--postgres`, default the local server).
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reverse_etl_assets.delivery.rate_limit import RateLimiter
from reverse_etl_assets.state.rate_window import StoreWindow
from reverse_etl_assets.state.store import StateStore

REQUESTS, PER_SECONDS = 3000, 3.0


def worker(
    url: str | None, key: str, threads: int, seconds: float, limit: int, queue: multiprocessing.Queue
) -> None:
    window = None
    takes = [0]
    if url is not None:
        window = StoreWindow(StateStore(url), key, limit, PER_SECONDS)
        take = window.take

        def counted(wanted: int) -> tuple[int, float, float]:
            takes[0] += 1
            return take(wanted)

        window.take = counted  # type: ignore[method-assign]
    limiter = RateLimiter(limit, PER_SECONDS, window)
    stop = threading.Event()
    times: list[float] = []
    end = time.time() + seconds

    def send() -> None:
        while time.time() < end:
            limiter.acquire(stop)
            times.append(time.time())

    pool = [threading.Thread(target=send) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    queue.put((times, takes[0]))


def measure(label: str, url: str | None, workers: int, threads: int, seconds: float, limit: int) -> None:
    key = f"bench-{uuid.uuid4().hex[:8]}"
    if url is not None:
        StoreWindow(StateStore(url), key, limit, PER_SECONDS)  # created before the clock starts
    queue: multiprocessing.Queue = multiprocessing.Queue()
    processes = [
        multiprocessing.Process(target=worker, args=(url, key, threads, seconds, limit, queue))
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    results = [queue.get() for _ in processes]
    for process in processes:
        process.join()
    times = sorted(t for result, _ in results for t in result)
    transactions = sum(takes for _, takes in results)
    busiest = 0
    j = 0
    for i, start in enumerate(times):
        while j < len(times) and times[j] < start + PER_SECONDS:
            j += 1
        busiest = max(busiest, j - i)
    span = times[-1] - times[0]
    rate = len(times) / span
    shared = "" if url is not None else "  (not shared: each worker has its own)"
    per_request = f"{transactions / len(times):.2f}" if url is not None else "-"
    print(
        f"{label:<11} {workers} workers × {threads} threads: {rate:8,.0f} requests/s "
        f"({rate / (limit / PER_SECONDS):4.0%} of the limit), busiest {PER_SECONDS:g} s window "
        f"{busiest:,} (limit {limit:,}), store transactions per request {per_request}{shared}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument(
        "--limit", type=int, default=REQUESTS, help="requests per 3 s (raise it to find the store's ceiling)"
    )
    parser.add_argument("--postgres", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        measure("memory", None, args.workers, args.threads, args.seconds, args.limit)
        measure(
            "sqlite", f"sqlite:///{folder}/state.sqlite", args.workers, args.threads, args.seconds, args.limit
        )
        measure("postgresql", args.postgres, args.workers, args.threads, args.seconds, args.limit)


if __name__ == "__main__":
    main()
