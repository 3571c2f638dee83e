"""One HTTP transport for every Segment-compatible API: Customer.io, Segment, or any such endpoint.

A transport makes one attempt and says what the destination answered; retrying, splitting and
pacing are the sender's job (sender.py).
"""

from __future__ import annotations

import email.utils
import threading
import time
from dataclasses import dataclass

import orjson
import requests

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


class HttpTransport:
    """Posts `/batch` requests; one kept-alive session per sending thread."""

    def __init__(self, settings: HttpSettings) -> None:
        self.settings = settings
        self.url = f"{settings.base_url}/batch"
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    def post(self, request: BatchRequest) -> Answer:
        try:
            response = self._session().post(
                self.url,
                data=request.body(),
                timeout=(_CONNECT_TIMEOUT_SECONDS, self.settings.timeout_seconds),
            )
        except requests.Timeout:
            raise TransportError(f"no answer within {self.settings.timeout_seconds:g} s") from None
        except requests.ConnectionError as error:
            raise TransportError(f"connection failed ({_root_cause(error)})") from None
        return Answer(
            status=response.status_code,
            text=response.text[:_MAX_ERROR_TEXT].strip() or response.reason or "",
            retry_after=_retry_after(response.headers.get("Retry-After")),
        )

    def flush(self) -> None:
        pass  # an answer is the acknowledgement

    def close(self) -> None:
        with self._lock:
            for session in self._sessions:
                session.close()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            # The environment's proxies (HTTPS_PROXY, NO_PROXY), read once: with trust_env, requests
            # reads the whole environment and ~/.netrc on every request, a third of its CPU here.
            session.proxies = requests.utils.get_environ_proxies(self.url)
            session.trust_env = False
            session.auth = self.settings.auth
            session.headers.update(
                {
                    "Content-Type": "application/json",
                    "User-Agent": f"{PACKAGE_NAME}/{__version__}",
                    **dict(self.settings.headers),
                }
            )
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session


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
