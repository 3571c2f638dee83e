"""Open the destination a sync sends to, from its configuration."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from reverse_etl_assets.config.models import CustomerIoDestination, Destination
from reverse_etl_assets.config.models import OutboxDestination as OutboxConfig
from reverse_etl_assets.delivery.batching import BatchRequest
from reverse_etl_assets.delivery.errors import DeliveryError
from reverse_etl_assets.delivery.http_api import HttpDestination, HttpSettings
from reverse_etl_assets.delivery.outbox import OutboxDestination


class DestinationClient(Protocol):
    def send(self, request: BatchRequest) -> None:
        """Deliver one request, or raise DeliveryError."""

    def flush(self) -> None:
        """Make everything sent so far durable: after it returns, the calls count as delivered."""

    def close(self) -> None: ...


def open_destination(name: str, config: Destination, sync_name: str, outbox_dir: Path) -> DestinationClient:
    """`outbox_dir` is where an outbox without its own `path` writes."""
    if isinstance(config, OutboxConfig):
        folder = config.path if config.path is not None else outbox_dir / name
        return OutboxDestination(folder / f"{sync_name}.jsonl")
    if isinstance(config, CustomerIoDestination):
        return HttpDestination(
            HttpSettings(
                destination_name=name,
                base_url=config.resolved_base_url(),
                auth=(_secret(name, config.api_key_env, "api_key_env"), ""),
                timeout_seconds=config.timeout_seconds,
                # Without strict mode the API answers 200 and silently drops invalid calls.
                headers=(("X-Strict-Mode", "1"),),
            )
        )
    raise TypeError(f"unsupported destination kind: {config!r}")


def max_request_bytes(config: Destination) -> int:
    return getattr(config, "max_request_bytes", 500_000)


def _secret(destination: str, variable: str, field: str) -> str:
    value = os.environ.get(variable)
    if not value:
        raise DeliveryError(
            f"destination {destination!r}: the environment variable {variable} ({field}) is not set"
        )
    return value
