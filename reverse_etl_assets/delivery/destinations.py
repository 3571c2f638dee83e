"""Open the sender for one destination, from its configuration."""

from __future__ import annotations

import logging
from pathlib import Path

from reverse_etl_assets.config.models import (
    CustomerIoDestination,
    Destination,
    HttpDestination,
    HttpEndpointDestination,
    OutboxDestination,
    SegmentDestination,
)
from reverse_etl_assets.delivery.errors import DeliveryError
from reverse_etl_assets.delivery.http_api import HttpSettings, HttpTransport
from reverse_etl_assets.delivery.outbox import OutboxTransport
from reverse_etl_assets.delivery.sender import Sender, SenderSettings
from reverse_etl_assets.redaction import UNSET_HINT, secret_from_env
from reverse_etl_assets.state.rate_window import StoreWindow, limit_key
from reverse_etl_assets.state.store import StateStore


def open_destination(
    name: str,
    config: Destination,
    sync_name: str,
    outbox_dir: Path,
    log: logging.Logger | None = None,
    store: StateStore | None = None,
    accept_refusals: bool = False,
) -> Sender:
    """`outbox_dir` is where an outbox without its own `path` writes. With `store`, every process
    that opens the destination with the same store shares one rate limit (and its pauses). With
    `accept_refusals`, calls refused all alike become rejected rows instead of failing the run."""
    if isinstance(config, OutboxDestination):
        folder = config.path if config.path is not None else outbox_dir / name
        path = folder / f"{sync_name}.jsonl"
        # One writer keeps the file in the order of the query's rows.
        return Sender(OutboxTransport(path), SenderSettings(name, str(path), max_in_flight=1), log)
    transport = HttpTransport(_http_settings(name, config))
    limit = config.rate_limit
    shared_window = (
        StoreWindow(
            store, limit_key(name, limit.requests, limit.per_seconds), limit.requests, limit.per_seconds
        )
        if store is not None
        else None
    )
    settings = SenderSettings(
        destination_name=name,
        url=transport.url,
        max_in_flight=config.max_in_flight,
        rate_limit_requests=limit.requests,
        rate_limit_seconds=limit.per_seconds,
        rate_limit_window=shared_window,
        retry_budget_seconds=config.retry_budget_seconds,
        max_retry_after_seconds=config.max_retry_after_seconds,
        accept_refusals=accept_refusals,
    )
    return Sender(transport, settings, log)


def _http_settings(name: str, config: HttpDestination) -> HttpSettings:
    headers: list[tuple[str, str]] = []
    auth: tuple[str, str] | None = None
    if isinstance(config, CustomerIoDestination):
        auth = (_secret(name, config.api_key_env, "api_key_env"), "")
        # Without strict mode the API answers 200 and silently drops invalid calls.
        headers.append(("X-Strict-Mode", "1"))
    elif isinstance(config, SegmentDestination):
        auth = (_secret(name, config.write_key_env, "write_key_env"), "")
    elif isinstance(config, HttpEndpointDestination):
        if config.basic_key_env:
            auth = (_secret(name, config.basic_key_env, "basic_key_env"), "")
        if config.header_name and config.header_value_env:
            headers.append((config.header_name, _secret(name, config.header_value_env, "header_value_env")))
        if config.strict_mode:
            headers.append(("X-Strict-Mode", "1"))
    return HttpSettings(
        base_url=config.resolved_base_url(),
        auth=auth,
        timeout_seconds=config.timeout_seconds,
        headers=tuple(headers),
        connections=config.max_in_flight,
    )


def max_request_bytes(config: Destination) -> int:
    return getattr(config, "max_request_bytes", 500_000)


def max_calls_per_request(config: Destination) -> int | None:
    return getattr(config, "max_calls_per_request", None)


def _secret(destination: str, variable: str, field: str) -> str:
    value = secret_from_env(variable)
    if not value:
        raise DeliveryError(
            f"destination {destination!r}: the environment variable {variable} ({field}) is not set; "
            + UNSET_HINT
        )
    if any(ord(character) < 0x20 or ord(character) == 0x7F for character in value):
        # HTTP cannot carry it, and the HTTP library's own error would print the value.
        raise DeliveryError(
            f"destination {destination!r}: the environment variable {variable} ({field}) holds a line "
            "break or another control character, which an HTTP request cannot carry (a secret read from a "
            f"file with its final newline?): set it without, e.g. export {variable}=\"$(tr -d '\\n' < file)\""
        )
    return value
