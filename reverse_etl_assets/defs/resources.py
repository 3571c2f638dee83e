"""The delivery resource: opens the client that sends one sync's calls to one destination."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from reverse_etl_assets.config.models import Destination
from reverse_etl_assets.delivery.destinations import DestinationClient, open_destination


class DeliveryResource(dg.ConfigurableResource):
    """Sends calls to Customer.io, Segment-compatible APIs, or outbox files."""

    outbox_dir: str = Field(
        default="outbox",
        description="Where an outbox destination without its own `path` writes, relative to the "
        "working directory.",
    )

    def open(self, destination_name: str, config: Destination, sync_name: str) -> DestinationClient:
        return open_destination(destination_name, config, sync_name, Path(self.outbox_dir).resolve())
