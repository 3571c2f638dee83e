"""A real HTTP server on 127.0.0.1 that speaks Customer.io's Data Pipelines batch API.

It checks Basic auth (401), answers invalid calls and oversized requests with 400 and
`{"meta": {"errors": [...]}}` as strict mode does (and silently drops them without
`X-Strict-Mode: 1`, as the real API does), and records every call it accepted. Its rules are
written here from the API description, independently of the project's own validation, so the two
check each other. Tests can inject faults (status codes, `Retry-After`, delays, dropped
connections) with `fail_next` or a `hook`.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_REQUEST_BYTES = 500 * 1024
MAX_CALL_BYTES = 32 * 1024
CALL_TYPES = ("identify", "track", "page", "screen", "group", "alias")


@dataclass
class Fault:
    """What to answer instead of processing a request."""

    status: int = 500
    body: bytes = b'{"meta":{"errors":["internal error"]}}'
    headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0  # sleep before answering (a timeout when longer than the client's)
    drop_connection: bool = False  # close the socket without answering (a connection reset)
    process: bool = False  # after the delay, handle the request normally (it is accepted)
    trickle_seconds: float = 0.0  # write the answer a byte at a time, this long between bytes


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0
    received_at: float = 0.0
    client_port: int = 0
    in_flight: int = 0  # requests being handled at the moment this one arrived, itself included

    def calls(self) -> list[dict[str, Any]]:
        try:
            return json.loads(self.body).get("batch", [])
        except (ValueError, AttributeError):
            return []


class FakeCustomerIo:
    def __init__(self, api_key: str = "test-api-key", auth_header: tuple[str, str] | None = None) -> None:
        self.api_key = api_key
        self.auth_header = auth_header  # instead of Basic auth: (name, value) the request must carry
        self.in_flight = 0
        self.max_in_flight_seen = 0
        self.accepted: list[dict[str, Any]] = []
        self.dropped: list[dict[str, Any]] = []  # invalid calls dropped in permissive mode
        self.requests: list[RecordedRequest] = []
        self.faults: deque[Fault] = deque()
        self.hook: Callable[[RecordedRequest], Fault | None] | None = None
        self.latency_seconds = 0.0
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> FakeCustomerIo:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_next(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    def accepted_by(self, key: str) -> dict[str, list[dict[str, Any]]]:
        grouped: dict[str, list[dict[str, Any]]] = {}
        for call in self.accepted:
            grouped.setdefault(str(call.get(key)), []).append(call)
        return grouped

    # -- the API ----------------------------------------------------------------------------

    def handle(self, request: RecordedRequest) -> tuple[int, dict[str, Any], dict[str, str]]:
        if request.path.rstrip("/") != "/v1/batch":
            return 404, {"meta": {"errors": [f"no such endpoint {request.path}"]}}, {}
        if not self._authorized(request):
            return 401, {"meta": {"errors": ["Unauthorized: invalid API key"]}}, {}
        strict = request.headers.get("x-strict-mode") == "1"
        if len(request.body) > MAX_REQUEST_BYTES:
            if not strict:
                return 200, {}, {}
            return 400, {"meta": {"errors": [f"request body is {len(request.body)} bytes; max 500KB"]}}, {}
        try:
            payload = json.loads(request.body)
        except ValueError as error:
            return 400, {"meta": {"errors": [f"invalid JSON: {error}"]}}, {}
        calls = payload.get("batch") if isinstance(payload, dict) else None
        if not isinstance(calls, list):
            return 400, {"meta": {"errors": ["body must be an object with a batch array"]}}, {}
        errors = [f"batch[{i}]: {problem}" for i, call in enumerate(calls) if (problem := _problem(call))]
        if errors and strict:
            return 400, {"meta": {"errors": errors}}, {}
        with self.lock:
            for call in calls:
                (self.dropped if _problem(call) else self.accepted).append(call)
        return 200, {}, {}

    def _authorized(self, request: RecordedRequest) -> bool:
        if self.auth_header is not None:
            name, value = self.auth_header
            return request.headers.get(name.lower()) == value
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, _password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == self.api_key


def _problem(call: Any) -> str | None:
    """The reason the API refuses one call, or None."""
    if not isinstance(call, dict):
        return "a call must be an object"
    size = len(json.dumps(call, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_CALL_BYTES:
        return f"call is {size} bytes; max 32KB"
    kind = call.get("type")
    if kind not in CALL_TYPES:
        return f"unknown type {kind!r}"

    def has(name: str) -> bool:
        return isinstance(call.get(name), str) and call[name] != ""

    person = has("userId") or has("anonymousId")
    traits = call.get("traits") if isinstance(call.get("traits"), dict) else {}
    if kind == "identify" and not (person or (call.get("userId") == "" and traits.get("email"))):
        return "identify requires userId or anonymousId"
    if kind == "track" and not has("event"):
        return "track requires event"
    if kind == "track" and not (person or has("groupId")):
        return "track requires userId or anonymousId"
    if kind in ("page", "screen") and not person:
        return f"{kind} requires userId or anonymousId"
    if kind == "group" and not has("groupId"):
        return "group requires groupId"
    if kind == "alias" and not (has("previousId") and has("userId")):
        return "alias requires previousId and userId"
    context = call.get("context") if isinstance(call.get("context"), dict) else {}
    if "channel" in context and context["channel"] not in ("browser", "server", "mobile"):
        return "context.channel must be browser, server or mobile"
    if "messageId" in call and (not isinstance(call["messageId"], str) or len(call["messageId"]) > 100):
        return "messageId must be a string of at most 100 characters"
    return None


def _handler_for(fake: FakeCustomerIo) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse can be observed

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            request = RecordedRequest(
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                received_at=time.monotonic(),
                client_port=self.client_address[1],
            )
            with fake.lock:
                fake.in_flight += 1
                fake.max_in_flight_seen = max(fake.max_in_flight_seen, fake.in_flight)
                request.in_flight = fake.in_flight
                fake.requests.append(request)
                fault = fake.faults.popleft() if fake.faults else None
            try:
                if fault is None and fake.hook is not None:
                    fault = fake.hook(request)
                if fake.latency_seconds:
                    time.sleep(fake.latency_seconds)
                if fault is not None and not fault.process:
                    self._fault(request, fault)
                    return
                if fault is not None:
                    time.sleep(fault.delay_seconds)
                status, answer, headers = fake.handle(request)
                request.status = status
                self._answer(status, json.dumps(answer).encode(), headers)
            finally:
                with fake.lock:
                    fake.in_flight -= 1

        def _fault(self, request: RecordedRequest, fault: Fault) -> None:
            if fault.delay_seconds:
                time.sleep(fault.delay_seconds)
            if fault.drop_connection:
                request.status = -1
                self.close_connection = True
                self.connection.shutdown(2)
                return
            request.status = fault.status
            self._answer(fault.status, fault.body, fault.headers, fault.trickle_seconds)

        def _answer(self, status: int, body: bytes, headers: dict[str, str], trickle: float = 0.0) -> None:
            try:
                if trickle:  # the status line, headers and body, a byte at a time
                    head = f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\n"
                    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
                    head += f"Content-Length: {len(body)}\r\n\r\n"
                    for byte in head.encode() + body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(trickle)
                    return
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError, OSError):
                pass  # the client gave up (a timeout test)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class FakeCustomerIoProcess:
    """A FakeCustomerIo in a process of its own (spawned: a small heap), for tests that time what
    the server sees. In the test's own process a long test session's heap makes the collector
    pause the server now and then, and requests queued meanwhile would look sent in a burst."""

    def __init__(self, api_key: str = "test-api-key") -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_serve_in_process, args=(api_key, child), daemon=True)
        self._process.start()
        self.api_key = api_key
        self.base_url: str = self._connection.recv()

    def finish(self) -> tuple[list[float], int]:
        """Stop the server; return when each request was received, and how many calls it accepted."""
        self._connection.send("stop")
        received, accepted = self._connection.recv()
        self._process.join(timeout=30)
        return received, accepted


def _serve_in_process(api_key: str, connection: Any) -> None:
    server = FakeCustomerIo(api_key).start()
    connection.send(server.base_url)
    connection.recv()
    with server.lock:
        connection.send(([r.received_at for r in server.requests], len(server.accepted)))
    server.stop()
