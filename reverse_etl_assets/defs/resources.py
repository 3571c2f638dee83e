"""The delivery resource: opens the sender for one sync's destination, and the delivery ledger."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import dagster as dg
from pydantic import Field

from reverse_etl_assets.config.models import Destination
from reverse_etl_assets.cursor.ledger import DeliveryLedger
from reverse_etl_assets.defs.instance_home import state_dir
from reverse_etl_assets.delivery.destinations import open_destination
from reverse_etl_assets.delivery.sender import Sender


class DeliveryResource(dg.ConfigurableResource):
    """Sends calls to Customer.io, Segment, Segment-compatible endpoints, or outbox files."""

    outbox_dir: str = Field(
        default="outbox",
        description="Where an outbox destination without its own `path` writes, relative to the "
        "working directory.",
    )
    ledger_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the delivery ledger used by syncs with lookback_seconds "
        "(default: SQLite in <DAGSTER_HOME>/reverse_etl/). Use PostgreSQL when runs happen on "
        "several machines. Set with $REVERSE_ETL_LEDGER_URL.",
    )

    def open(
        self,
        destination_name: str,
        config: Destination,
        sync_name: str,
        instance_root: str | None,
        log: logging.Logger | None = None,
        accept_refusals: bool = False,
    ) -> Sender:
        """The rate limit is shared by the runs of this instance on this machine."""
        return open_destination(
            destination_name,
            config,
            sync_name,
            Path(self.outbox_dir).resolve(),
            log,
            rate_limit_dir=state_dir(instance_root) / "rate_limits",
            accept_refusals=accept_refusals,
        )

    def open_ledger(self, instance_root: str | None) -> DeliveryLedger:
        if self.ledger_url:
            return DeliveryLedger(self.ledger_url)
        folder = state_dir(instance_root)
        folder.mkdir(parents=True, exist_ok=True)
        return DeliveryLedger(f"sqlite:///{folder / 'delivery_ledger.sqlite'}")


def delivery_resource() -> DeliveryResource:
    """The resource as configured by the environment ($REVERSE_ETL_LEDGER_URL)."""
    return DeliveryResource(ledger_url=os.environ.get("REVERSE_ETL_LEDGER_URL") or None)
