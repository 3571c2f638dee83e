"""The store's tables. Names start with `reverse_etl_` so they can live beside Dagster's own."""

from __future__ import annotations

import sqlalchemy as sa

METADATA = sa.MetaData()

# The lookback's ledger: the message id last delivered per person (group, event) and destination.
DELIVERED = sa.Table(
    "reverse_etl_delivered",
    METADATA,
    # Names are at most 64 characters: the key (64 + 64 + 512 characters, 4 bytes each in MySQL's
    # utf8mb4) stays within InnoDB's 3072 bytes. entity_key holds a 32-digit digest (ledger.py);
    # its width stays as it was, for stores created before.
    sa.Column("sync", sa.String(64), primary_key=True),
    sa.Column("destination", sa.String(64), primary_key=True),
    sa.Column("entity_key", sa.String(512), primary_key=True),
    sa.Column("message_id", sa.String(100), nullable=False),
    sa.Column("delivered_at", sa.BigInteger, nullable=False, index=True),
)

# A rate limit: a ring of the last `requests` send times (`RATE_SENDS`), the slot of the oldest,
# and the `Retry-After` pause every sender honours, with the limiter that owns it.
RATE_LIMITS = sa.Table(
    "reverse_etl_rate_limits",
    METADATA,
    sa.Column("limit_key", sa.String(400), primary_key=True),
    sa.Column("oldest_slot", sa.Integer, nullable=False),
    sa.Column("paused_until", sa.Float(precision=53), nullable=False),
    sa.Column("pause_owner", sa.BigInteger, nullable=False),
)
RATE_SENDS = sa.Table(
    "reverse_etl_rate_sends",
    METADATA,
    sa.Column("limit_key", sa.String(400), primary_key=True),
    sa.Column("slot", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("sent_at", sa.Float(precision=53), nullable=False),
)

# Rows a run rejected (or the destination refused), with their reasons, kept for `retention`.
REJECTED_ROWS = sa.Table(
    "reverse_etl_rejected_rows",
    METADATA,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("sync", sa.String(255), nullable=False),
    sa.Column("destination", sa.String(255), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("recorded_at", sa.Float(precision=53), nullable=False, index=True),
    sa.Column("row", sa.Text().with_variant(sa.dialects.mysql.LONGTEXT(), "mysql"), nullable=False),
    sa.Index("reverse_etl_rejected_rows_by_run", "sync", "destination", "run_id"),
)

# The last sign of life of each sync run's worker, on the store's clock.
HEARTBEATS = sa.Table(
    "reverse_etl_heartbeats",
    METADATA,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("beat_at", sa.Float(precision=53), nullable=False),
)

# Each schedule tick's outcome: a run launched, or skipped because one was still in progress. The
# `sync_frequency` check reads the recent ones (Dagster's own tick records are not public API).
SCHEDULE_TICKS = sa.Table(
    "reverse_etl_schedule_ticks",
    METADATA,
    sa.Column("sync", sa.String(64), primary_key=True),
    sa.Column("destination", sa.String(64), primary_key=True),
    sa.Column("tick_at", sa.Float(precision=53), primary_key=True),
    sa.Column("skipped_busy", sa.Boolean, nullable=False),
)
