"""One HTTP transport for every Segment-compatible API: Customer.io, Segment, or any such endpoint.

A transport makes one attempt and says what the destination answered; retrying, splitting and
pacing are the sender's job (sender.py).
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from typing import Any

import orjson
import requests
import urllib3

from reverse_etl_assets import PACKAGE_NAME, __version__
from reverse_etl_assets.delivery.batching import BatchRequest

_MAX_ERROR_TEXT = 2_000
_CONNECT_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Answer:
    status: int
    text: str = ""
    retry_after: float | None = None  # seconds, from a Retry-After header

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

    def post(self, request: BatchRequest) -> Answer:
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
            raise TransportError(f"no answer within {self.settings.timeout_seconds:g} s") from None
        except urllib3.exceptions.HTTPError as error:
            raise TransportError(f"connection failed ({_root_cause(error)})") from None
        text = response.data[:_MAX_ERROR_TEXT].decode(errors="replace").strip()
        return Answer(
            status=response.status,
            text=text or response.reason or "",
            retry_after=_retry_after(response.headers.get("Retry-After")),
        )

    def flush(self) -> None:
        pass  # an answer is the acknowledgement

    def close(self) -> None:
        self._pool.clear()


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
