"""A Customer.io-compatible `/v1/batch` endpoint for the benchmark, run in a process of its own.

    python bench/fake_cio_server.py --api-key KEY [--port 0] [--latency-ms 20] [--verify]

It prints `PORT <n>` on stdout once it listens. Each connection gets a thread (HTTP/1.1, kept
alive); each request is checked for HTTP Basic auth with the key, held for the latency, and
answered `200 {}`. Calls are counted cheaply as occurrences of `"type":` in the body; with
`--verify` every body is parsed instead, the limits (500 KB a request, 32 KB a call) are checked
and the distinct userIds counted.

Control endpoints for the benchmark: `GET /_stats` (counters, the server's own CPU seconds, the
most requests it had in flight at once) and `POST /_reset`.
"""

from __future__ import annotations

import argparse
import base64
import json
import resource
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:  # orjson keeps --verify cheap enough not to slow the server down much
    from orjson import dumps as _dumps
    from orjson import loads as _loads
except ImportError:
    from json import loads as _loads

    def _dumps(value: object) -> bytes:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


MAX_REQUEST_BYTES = 500 * 1024
MAX_CALL_BYTES = 32 * 1024


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.calls = 0
        self.bytes = 0
        self.unauthorized = 0
        self.invalid = 0  # --verify: bodies or calls that break the API's rules
        self.strict_mode_requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.handling_seconds = 0.0  # time spent on requests, without the added latency
        self.user_ids: set[str] = set()
        self.first_request_at: float | None = None
        self.last_response_at: float | None = None

    def snapshot(self) -> dict[str, object]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "requests": self.requests,
            "calls": self.calls,
            "bytes": self.bytes,
            "unauthorized": self.unauthorized,
            "invalid": self.invalid,
            "strict_mode_requests": self.strict_mode_requests,
            "max_in_flight": self.max_in_flight,
            "handling_seconds": round(self.handling_seconds, 4),
            "distinct_user_ids": len(self.user_ids),
            "active_seconds": (
                round(self.last_response_at - self.first_request_at, 4)
                if self.first_request_at and self.last_response_at
                else 0.0
            ),
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "threads": threading.active_count(),
        }


def make_handler(api_key: str, latency: float, verify: bool, stats: Stats) -> type[BaseHTTPRequestHandler]:
    expected_auth = "Basic " + base64.b64encode(f"{api_key}:".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/_stats":
                with stats.lock:
                    self._answer(200, json.dumps(stats.snapshot()).encode())
            else:
                self._answer(404, b'{"meta":{"errors":["not found"]}}')

        def do_POST(self) -> None:
            began = time.perf_counter()
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/_reset":
                with stats.lock:
                    stats.reset()
                self._answer(200, b"{}")
                return
            if not self.path.endswith("/batch"):
                self._answer(404, b'{"meta":{"errors":["not found"]}}')
                return
            with stats.lock:
                if stats.first_request_at is None:
                    stats.first_request_at = began
                stats.in_flight += 1
                stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
            try:
                if self.headers.get("Authorization") != expected_auth:
                    with stats.lock:
                        stats.unauthorized += 1
                    self._answer(401, b'{"meta":{"errors":["unauthorized"]}}')
                    return
                if verify:
                    calls, invalid, user_ids = _verify(body)
                else:
                    calls, invalid, user_ids = body.count(b'"type":'), 0, ()
                handled = time.perf_counter() - began
                time.sleep(latency)
                with stats.lock:
                    stats.requests += 1
                    stats.calls += calls
                    stats.bytes += len(body)
                    stats.invalid += invalid
                    stats.strict_mode_requests += self.headers.get("X-Strict-Mode") == "1"
                    stats.handling_seconds += handled
                    stats.user_ids.update(user_ids)
                self._answer(200, b"{}")
            finally:
                with stats.lock:
                    stats.in_flight -= 1
                    stats.last_response_at = time.perf_counter()

    return Handler


def _verify(body: bytes) -> tuple[int, int, list[str]]:
    invalid = int(len(body) > MAX_REQUEST_BYTES)
    try:
        batch = _loads(body)["batch"]
    except (ValueError, KeyError, TypeError):
        return 0, 1, []
    user_ids = []
    for call in batch:
        if not isinstance(call, dict) or "type" not in call or len(_dumps(call)) > MAX_CALL_BYTES:
            invalid += 1
            continue
        if call.get("userId"):
            user_ids.append(str(call["userId"]))
        if not call.get("messageId"):
            invalid += 1
    return len(batch), invalid, user_ids


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--verify", action="store_true")
    args = parser.parse_args()
    stats = Stats()
    handler = make_handler(args.api_key, args.latency_ms / 1000, args.verify, stats)
    server = _Server(("127.0.0.1", args.port), handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        sys.exit(0)


if __name__ == "__main__":
    main()
