"""Send requests to a destination: several in flight, paced, retried, split around bad calls.

- 429, 5xx, timeouts and connection errors are retried with exponential backoff and jitter,
  honouring `Retry-After`, until the request's retry budget is spent. A `Retry-After` longer than
  `max_retry_after_seconds`, or than what is left of the budget, stops the run at once.
- A 400 carrying `meta.errors` is not retried as a whole: the request is split in two, again and
  again, until the calls the destination refuses stand alone; those become rejected rows with the
  destination's reason and the rest are delivered. When every call of a request is refused with the
  same answer, the answer is not about the calls (a wrong endpoint, a proxy): the run stops.
- 413 (a request too large for the endpoint, or a proxy in front of it) and 401/403 stop the run at
  once: nothing more is sent.
- `stop()` ends the run within seconds, whatever it is waiting for: the answers that arrive within
  `stop_grace_seconds` still count, then the connections still waiting are cut.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for_futures
from dataclasses import dataclass
from typing import Protocol

import orjson
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_before_delay,
    wait_exponential_jitter,
)

from reverse_etl_assets.delivery.batching import BatchRequest
from reverse_etl_assets.delivery.errors import AuthenticationError, DeliveryError
from reverse_etl_assets.delivery.http_api import Answer, TransportError
from reverse_etl_assets.delivery.rate_limit import RateLimiter, RateWindow, Stopped
from reverse_etl_assets.mapping.calls import Calls, RejectedRow


class Transport(Protocol):
    def post(self, request: BatchRequest) -> Answer:
        """One attempt; raises TransportError when there is no answer."""

    def abort(self) -> None:
        """Cut off the attempts in progress (a stopping run)."""

    def flush(self) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SenderSettings:
    destination_name: str
    url: str
    max_in_flight: int = 8
    rate_limit_requests: int = 3000
    rate_limit_seconds: float = 3.0
    rate_limit_window: RateWindow | None = None  # shared with other processes (else this one's)
    retry_budget_seconds: float = 300.0
    max_retry_after_seconds: float = 120.0
    initial_backoff_seconds: float = 0.5
    max_backoff_seconds: float = 30.0
    stop_grace_seconds: float = 2.0  # how long a stopping run waits for answers already on their way
    accept_refusals: bool = False  # every call of a request refused alike: rejected rows, not a failure


@dataclass
class DeliveryStats:
    calls_delivered: int = 0
    requests: int = 0  # acknowledged requests
    bytes_sent: int = 0  # bodies of acknowledged requests
    attempts: int = 0  # every HTTP attempt, retries and splits included
    retried_requests: int = 0  # attempts that repeated an earlier one
    split_requests: int = 0
    calls_refused: int = 0  # by the destination (400), reported as rejected rows
    throttled_seconds: float = 0.0  # waiting for the client-side rate limit or a Retry-After pause
    backoff_seconds: float = 0.0  # sleeping between retries


class _Retryable(Exception):  # never leaves the sender: DeliveryError carries its text out
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


# `batch[3]: ` and the like: a refusal's reason without the call's place in its request.
_PLACE = re.compile(r"\bbatch\[\d+\]\s*:?\s*")


class Sender:
    """Delivers the requests of one run to one destination."""

    def __init__(
        self, transport: Transport, settings: SenderSettings, log: logging.Logger | None = None
    ) -> None:
        self.transport = transport
        self.settings = settings
        self.log = log or logging.getLogger(__name__)
        self.stats = DeliveryStats()
        self._limiter = RateLimiter(
            settings.rate_limit_requests, settings.rate_limit_seconds, settings.rate_limit_window
        )
        self._pool = ThreadPoolExecutor(
            settings.max_in_flight, thread_name_prefix=f"send-{settings.destination_name}"
        )
        self._slots = threading.BoundedSemaphore(settings.max_in_flight * 2)  # queued + in flight
        self._lock = threading.Lock()
        self._pending: set[Future[None]] = set()
        self._stopping = threading.Event()
        self._failure: DeliveryError | None = None
        self._delivered: list[Calls] = []
        self._refused: list[RejectedRow] = []
        self._backoff = wait_exponential_jitter(
            multiplier=settings.initial_backoff_seconds,
            max=settings.max_backoff_seconds,
            jitter=settings.initial_backoff_seconds,
        )

    # -- what the run calls ------------------------------------------------------------------

    def submit(self, request: BatchRequest) -> None:
        """Queue a request; blocks while enough are in flight. Raises once a request has failed."""
        self._raise_failure()
        self._slots.acquire()
        self._raise_failure()
        future = self._pool.submit(self._deliver, request)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)

    def take_delivered(self) -> list[Calls]:
        """The calls of the requests acknowledged since the last time (for the delivery ledger)."""
        with self._lock:
            taken, self._delivered = self._delivered, []
        return taken

    def take_refused(self) -> list[RejectedRow]:
        with self._lock:
            taken, self._refused = self._refused, []
        return taken

    def finish(self) -> DeliveryStats:
        """Wait for every request; raise DeliveryError if any failed; make the delivery durable."""
        while True:
            with self._lock:
                pending = list(self._pending)
            if not pending:
                break
            for future in pending:
                future.exception()
        self._raise_failure()
        self.transport.flush()
        return self.stats

    def stop(self) -> None:
        """Send nothing more, and stop waiting: sleeps and rate-limit waits end at once; answers
        already on their way still count (`take_delivered` sees them) for `stop_grace_seconds`,
        then the attempts still waiting are cut off."""
        with self._lock:
            if self._failure is None:
                self._failure = DeliveryError("the run stopped")
            pending = list(self._pending)
        self._stopping.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        wait_for_futures(pending, timeout=self.settings.stop_grace_seconds)
        self.transport.abort()
        self._pool.shutdown(wait=True)

    def close(self) -> None:
        self.stop()
        self.transport.close()
        self._limiter.close()  # and with it, a Retry-After pause this run was told

    # -- one request --------------------------------------------------------------------------

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)
        self._slots.release()
        error = future.exception() if not future.cancelled() else None
        if error is not None and not isinstance(error, Stopped):
            with self._lock:
                if self._failure is None:
                    self._failure = (
                        error
                        if isinstance(error, DeliveryError)
                        else DeliveryError(f"{type(error).__name__}: {error}")
                    )

    def _raise_failure(self) -> None:
        with self._lock:
            failure = self._failure
        if failure is not None:
            raise failure

    def _deliver(self, request: BatchRequest) -> None:
        """Send one request of the run, splitting it around the calls the destination refuses."""
        refused: list[tuple[Calls, str]] = []
        self._send_part(request, refused)
        reasons = {_PLACE.sub("", reason) for _, reason in refused}
        blanket = len(request.calls) > 1 and len(refused) == len(request.calls) and len(reasons) == 1
        if blanket and not self.settings.accept_refusals:
            raise DeliveryError(
                f"destination {self.settings.destination_name!r}: POST {self.settings.url} refused every "
                f"one of the {len(refused)} calls of a request with the same answer ({reasons.pop()}): most "
                "likely about the destination, not the calls (a wrong endpoint, workspace or proxy?); the "
                "run stops without moving the cursor. If the calls really are wrong, fix the rows, or set "
                "`rejected_limit: {share: 1}` on the sync to reject them and send the rest"
            )
        for call, reason in refused:
            self._refuse(call, reason)

    def _send_part(self, request: BatchRequest, refused: list[tuple[Calls, str]]) -> None:
        """Deliver `request`, or the parts of it the destination accepts; add the calls it refuses
        to `refused`."""
        answer = self._post_with_retries(request)
        name, url = self.settings.destination_name, self.settings.url
        if answer.ok:
            with self._lock:  # acknowledged: recorded at once, whatever happens to the rest
                self.stats.calls_delivered += len(request.calls)
                self.stats.requests += 1
                self.stats.bytes_sent += request.size
                self._delivered.append(request.calls)
            return
        if answer.status in (401, 403):
            raise AuthenticationError(
                f"destination {name!r}: POST {url} answered {answer.status}: {answer.text} "
                "(check the API key; nothing more is sent in this run)"
            )
        if answer.status == 413:
            raise DeliveryError(
                f"destination {name!r}: POST {url} answered 413 (too large) to a request of "
                f"{request.size:,} bytes: {answer.text}. The endpoint, or a proxy in front of it, accepts "
                "less than max_request_bytes: lower it (and max_call_bytes, if single calls are refused)"
            )
        errors = answer.errors
        if answer.status == 400 and errors:
            if len(request.calls) == 1:
                refused.append((request.calls, f"the destination refused it (400): {'; '.join(errors)}"))
                return
            with self._lock:
                self.stats.split_requests += 1
            for half in request.split():
                self._send_part(half, refused)
            return
        raise DeliveryError(f"destination {name!r}: POST {url} answered {answer.status}: {answer.text}")

    def _refuse(self, call: Calls, reason: str) -> None:
        """`call` holds the one call the destination refused."""
        try:
            row = orjson.loads(call.body(0))
        except orjson.JSONDecodeError:
            row = {}
        with self._lock:
            self.stats.calls_refused += 1
            self._refused.append(RejectedRow(call.row_numbers[0].as_py(), "(call)", reason, row=row))

    def _post_with_retries(self, request: BatchRequest) -> Answer:
        started = time.monotonic()
        retrying = Retrying(
            retry=retry_if_exception_type(_Retryable),
            stop=stop_before_delay(self.settings.retry_budget_seconds),
            wait=self._wait,
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._attempt(request, attempt.retry_state.attempt_number > 1, started)
        except _Retryable as error:
            attempts = retrying.statistics.get("attempt_number", 1)
            settings = self.settings
            raise DeliveryError(
                f"destination {settings.destination_name!r}: POST {settings.url} still failing after "
                f"{attempts} attempts within {settings.retry_budget_seconds:g} s (retry_budget_seconds): "
                f"{error}"
            ) from None
        raise AssertionError("unreachable")

    def _attempt(self, request: BatchRequest, retry: bool, started: float) -> Answer:
        with self._lock:
            if self._failure is not None:
                raise Stopped()
        waited = self._limiter.acquire(self._stopping)
        with self._lock:
            self.stats.attempts += 1
            self.stats.retried_requests += retry
            self.stats.throttled_seconds += waited
        try:
            answer = self.transport.post(request)
        except TransportError as error:
            raise _Retryable(str(error)) from None
        if answer.status == 429 or answer.status >= 500:
            if answer.retry_after is not None:
                self._check_retry_after(answer, started)
                self._limiter.pause(answer.retry_after)  # every sender waits, not just this one
            raise _Retryable(f"answered {answer.status}: {answer.text}", answer.retry_after)
        return answer

    def _check_retry_after(self, answer: Answer, started: float) -> None:
        """A pause longer than the run may wait stops it now rather than sleep through it."""
        settings = self.settings
        left = settings.retry_budget_seconds - (time.monotonic() - started)
        limit, because = settings.max_retry_after_seconds, "max_retry_after_seconds"
        if left < limit:
            limit, because = left, "what is left of retry_budget_seconds"
        if answer.retry_after is not None and answer.retry_after > limit:
            raise DeliveryError(
                f"destination {settings.destination_name!r}: POST {settings.url} answered {answer.status} "
                f"with Retry-After: {answer.retry_after_text} ({answer.retry_after:,.0f} s), longer than "
                f"{because} ({max(limit, 0):,.0f} s): the run stops without moving the cursor, and the next "
                "run sends these rows"
            )

    def _sleep(self, seconds: float) -> None:
        if self._stopping.wait(seconds):
            raise Stopped()

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        retry_after = getattr(error, "retry_after", None)
        if retry_after is None:
            return self._backoff(state)
        return max(retry_after, 0.1)  # `Retry-After: 0` must not become a busy loop

    def _before_sleep(self, state: RetryCallState) -> None:
        seconds = state.next_action.sleep if state.next_action else 0.0
        with self._lock:
            self.stats.backoff_seconds += seconds
        error = state.outcome.exception() if state.outcome else None
        self.log.warning(
            "%s: attempt %d failed (%s); retrying in %.1f s",
            self.settings.destination_name,
            state.attempt_number,
            error,
            seconds,
        )
