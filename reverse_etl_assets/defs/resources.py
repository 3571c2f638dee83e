"""The delivery resource: opens the sender for one sync's destination."""

from __future__ import annotations

import logging
from pathlib import Path

import dagster as dg
from pydantic import Field

from reverse_etl_assets.config.models import Destination
from reverse_etl_assets.delivery.destinations import open_destination
from reverse_etl_assets.delivery.sender import Sender
from reverse_etl_assets.state.store import StateStore


class DeliveryResource(dg.ConfigurableResource):
    """Sends calls to Customer.io, Segment, Segment-compatible endpoints, or outbox files."""

    outbox_dir: str = Field(
        default="outbox",
        description="Where an outbox destination without its own `path` writes, relative to the "
        "working directory. Outboxes are for development: on several workers, each writes its own.",
    )

    def open(
        self,
        destination_name: str,
        config: Destination,
        sync_name: str,
        store: StateStore,
        log: logging.Logger | None = None,
        accept_refusals: bool = False,
    ) -> Sender:
        """The rate limit is shared through the store by every worker of the instance."""
        return open_destination(
            destination_name,
            config,
            sync_name,
            Path(self.outbox_dir).resolve(),
            log,
            store=store,
            accept_refusals=accept_refusals,
        )
