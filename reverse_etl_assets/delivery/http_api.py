"""One HTTP transport for every Segment-compatible API: Customer.io, Segment, or any such endpoint.

A transport makes one attempt and says what the destination answered; retrying, splitting and
pacing are the sender's job (sender.py). Each attempt has a deadline for the whole exchange
(connecting, sending, and the last byte of the answer): a server that trickles its answer a byte at
a time never trips a timeout per read, so a watchdog shuts the attempt's socket when the deadline
passes, and `abort()` shuts every socket in use at once, for a run that is stopping.
"""

from __future__ import annotations

import contextlib
import email.utils
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import orjson
import requests
import urllib3
from urllib3.connectionpool import HTTPConnectionPool

from reverse_etl_assets import PACKAGE_NAME, __version__
from reverse_etl_assets.delivery.batching import BatchRequest
from reverse_etl_assets.redaction import redact

_MAX_ERROR_TEXT = 2_000
_CONNECT_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Answer:
    status: int
    text: str = ""
    retry_after: float | None = None  # seconds, from a Retry-After header
    retry_after_text: str = ""  # the header as it came

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def errors(self) -> list[str]:
        """`meta.errors` of a 400 answer: the calls the destination refuses, and why."""
        try:
            errors = orjson.loads(self.text).get("meta", {}).get("errors")
        except (orjson.JSONDecodeError, AttributeError):
            return []
        return [str(e) for e in errors] if isinstance(errors, list) else []


class TransportError(Exception):
    """No answer: a timeout, a refused or reset connection."""


@dataclass(frozen=True)
class HttpSettings:
    base_url: str  # e.g. https://cdp.customer.io/v1; requests go to {base_url}/batch
    auth: tuple[str, str] | None  # HTTP Basic
    timeout_seconds: float
    headers: tuple[tuple[str, str], ...] = ()
    connections: int = 8  # kept alive: one per request in flight


class HttpTransport:
    """Posts `/batch` requests through one pool of kept-alive connections, shared by the sending
    threads. It is urllib3's own pool, without requests' session on top: that layer cost about
    half a millisecond of CPU per request, a tenth of a core at 150,000 calls a second."""

    def __init__(self, settings: HttpSettings) -> None:
        self._in_use: dict[int, Any] = {}  # sending thread → the connection it holds
        self._expired: set[int] = set()  # threads whose attempt the watchdog cut off
        self.settings = settings
        self.url = f"{settings.base_url}/batch"
        self._headers = {
            "Content-Type": "application/json",
            "User-Agent": f"{PACKAGE_NAME}/{__version__}",
            **dict(settings.headers),
        }
        if settings.auth is not None:
            self._headers.update(urllib3.make_headers(basic_auth=":".join(settings.auth)))
        self._timeout = urllib3.Timeout(connect=_CONNECT_TIMEOUT_SECONDS, read=settings.timeout_seconds)
        # As requests would: its CA bundle, and the environment's proxy (HTTPS_PROXY, NO_PROXY), read
        # once rather than on every request.
        options: dict[str, Any] = {"maxsize": settings.connections, "ca_certs": requests.certs.where()}
        proxies = requests.utils.get_environ_proxies(self.url)
        proxy = proxies.get(urllib3.util.parse_url(self.url).scheme or "https") or proxies.get("all")
        if proxy:
            auth = urllib3.util.parse_url(proxy).auth
            headers = urllib3.make_headers(proxy_basic_auth=auth) if auth else None
            self._pool: urllib3.PoolManager = urllib3.ProxyManager(proxy, proxy_headers=headers, **options)
        else:
            self._pool = urllib3.PoolManager(**options)
        self._pool.pool_classes_by_scheme = {
            scheme: _tracking(pool_class, self._in_use)
            for scheme, pool_class in self._pool.pool_classes_by_scheme.items()
        }

    def post(self, request: BatchRequest) -> Answer:
        thread = threading.get_ident()
        watchdog = threading.Timer(self.settings.timeout_seconds, self._cut_off, (thread,))
        watchdog.daemon = True
        watchdog.start()
        try:
            response = self._pool.request(
                "POST",
                self.url,
                body=request.body(),
                headers=self._headers,
                timeout=self._timeout,
                retries=False,  # the sender retries, with its own budget
            )
        except urllib3.exceptions.NewConnectionError as error:  # before TimeoutError: a subclass
            raise TransportError(f"connection failed ({_root_cause(error)})") from None
        except urllib3.exceptions.TimeoutError:
            raise TransportError(self._no_answer()) from None
        except urllib3.exceptions.HTTPError as error:
            if thread in self._expired:
                raise TransportError(self._no_answer()) from None
            raise TransportError(f"connection failed ({_root_cause(error)})") from None
        finally:
            watchdog.cancel()
            self._in_use.pop(thread, None)
            self._expired.discard(thread)
        text = response.data[:_MAX_ERROR_TEXT].decode(errors="replace").strip()
        return Answer(
            status=response.status,
            text=redact(text or response.reason or ""),
            retry_after=_retry_after(response.headers.get("Retry-After")),
            retry_after_text=redact(response.headers.get("Retry-After", ""))[:100],
        )

    def abort(self) -> None:
        """Cut off every attempt in progress: their threads get a TransportError at once."""
        for thread in list(self._in_use):
            self._cut_off(thread)

    def flush(self) -> None:
        pass  # an answer is the acknowledgement

    def close(self) -> None:
        self.abort()
        self._pool.clear()

    def _cut_off(self, thread: int) -> None:
        connection = self._in_use.get(thread)
        sock = getattr(connection, "sock", None)
        if sock is None:
            return
        self._expired.add(thread)
        with contextlib.suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)  # the blocked read or write returns with an error

    def _no_answer(self) -> str:
        return (
            f"no complete answer within {self.settings.timeout_seconds:g} s (timeout_seconds bounds "
            "the whole attempt: connecting, sending and the last byte of the answer)"
        )


def _tracking(pool_class: type[HTTPConnectionPool], in_use: dict[int, Any]) -> type[HTTPConnectionPool]:
    """`pool_class`, noting which connection each thread takes, so that the watchdog finds it."""

    class Tracking(pool_class):  # type: ignore[valid-type,misc]
        def _get_conn(self, timeout: float | None = None) -> Any:
            connection = super()._get_conn(timeout)
            in_use[threading.get_ident()] = connection
            return connection

    return Tracking


def _retry_after(value: str | None) -> float | None:
    """Retry-After is either seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _root_cause(error: BaseException) -> str:
    while error.__context__ is not None and error.__context__ is not error:
        error = error.__context__
    return f"{type(error).__name__}: {error}"[:300]
