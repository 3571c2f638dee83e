"""One HTTP client for every Segment-compatible API: Customer.io, Segment, or any such endpoint."""

from __future__ import annotations

from dataclasses import dataclass

import requests

from reverse_etl_assets import PACKAGE_NAME, __version__
from reverse_etl_assets.delivery.batching import BatchRequest
from reverse_etl_assets.delivery.errors import AuthenticationError, DeliveryError

_MAX_ERROR_TEXT = 2_000


@dataclass(frozen=True)
class HttpSettings:
    destination_name: str
    base_url: str  # e.g. https://cdp.customer.io/v1; requests go to {base_url}/batch
    auth: tuple[str, str]  # HTTP Basic
    timeout_seconds: float
    headers: tuple[tuple[str, str], ...] = ()


class HttpDestination:
    """Posts `/batch` requests over one kept-alive session."""

    def __init__(self, settings: HttpSettings) -> None:
        self.settings = settings
        self.url = f"{settings.base_url}/batch"
        self._session = requests.Session()
        self._session.auth = settings.auth
        self._session.headers.update(
            {
                "Content-Type": "application/json",
                "User-Agent": f"{PACKAGE_NAME}/{__version__}",
                **dict(settings.headers),
            }
        )

    def send(self, request: BatchRequest) -> None:
        """Deliver one request, or raise DeliveryError with the server's own error text."""
        name = self.settings.destination_name
        try:
            response = self._session.post(
                self.url, data=request.body(), timeout=self.settings.timeout_seconds
            )
        except requests.RequestException as error:
            raise DeliveryError(f"destination {name!r}: POST {self.url} failed: {error}") from None
        if response.ok:
            return
        text = response.text[:_MAX_ERROR_TEXT].strip() or response.reason
        message = f"destination {name!r}: POST {self.url} answered {response.status_code}: {text}"
        if response.status_code in (401, 403):
            raise AuthenticationError(f"{message} (check the API key)")
        raise DeliveryError(message)

    def flush(self) -> None:
        pass  # every request was acknowledged when send() returned

    def close(self) -> None:
        self._session.close()
