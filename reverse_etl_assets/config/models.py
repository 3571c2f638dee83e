"""The declarative configuration: databases, destinations and syncs, validated with pydantic.

Every model forbids unknown keys, so a typo such as `destination:` instead of `destinations:` is an
error that names the field rather than a setting silently ignored.
"""

from __future__ import annotations

import keyword
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from reverse_etl_assets.config.frequency import frequency_to_cron
from reverse_etl_assets.sql.statement_guard import check_read_only

CallType = Literal["identify", "track", "group", "page", "screen", "alias"]

# How a column's values are read when its database type does not say (sync option `column_types`).
ColumnType = Literal["json", "boolean", "string", "base64", "hex"]

# Every pattern here is matched against the whole value (fullmatch): `^...$` would accept a value
# ending in a newline, which `$` matches before.
#
# Names of syncs, destinations, databases and groups: Dagster asset and partition names allow
# letters, digits and underscores.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A name also becomes part of longer names and paths: Dagster asset keys, partition keys, job and
# schedule names (`preview_<sync>`, `<sync>__<destination>_schedule`), concurrency pools, and
# keys in the state store (at most 255 characters) and the outbox's files
# (`outbox/<destination>/<sync>.jsonl`), where a file name holds at most 255 bytes. 64 characters
# (MySQL's limit for its own names) keeps every one of them well inside its limit, and is plenty
# for a name people read.
MAX_NAME_LENGTH = 64
# Dagster refuses these as asset and op names (DISALLOWED_NAMES in its private definition utils),
# and a sync's name is both. Copied, not imported: the query reader process loads these models
# without Dagster (a test checks the copy).
DAGSTER_RESERVED_NAMES = frozenset(
    [
        *("context", "conf", "config", "meta", "arg_dict", "dict", "input_arg_dict", "output_arg_dict"),
        *("int", "str", "float", "bool", "input", "output", "type"),
        *keyword.kwlist,
    ]
)
_ENV_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OFFSET = re.compile(r"[+-](0\d|1[0-4]):[0-5]\d")
# Owners as Dagster accepts them (its private is_valid_email), or team:name.
_EMAIL = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._%+-]*@[A-Za-z0-9.-]+\.[A-Za-z]{2,7}")
_TEAM = re.compile(r"team:[A-Za-z0-9_.-]+")
_ASSET_KEY = re.compile(r"[A-Za-z0-9_]+(/[A-Za-z0-9_]+)*")
_URL = re.compile(r"https?://[^/\s]+(/\S*)?")
_USERINFO = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP field name (a token, RFC 9110)
# A cron expression listing every value of every field is under 400 characters; Dagster's cron
# parser would take minutes over a far longer one.
_MAX_FREQUENCY_LENGTH = 400


def shown(value: str, limit: int = 60) -> str:
    """`value` quoted for a message, cut short if long."""
    return repr(value) if len(value) <= limit else f"{value[: limit - 3]!r}... ({len(value)} characters)"


def check_name(value: str, what: str) -> str:
    """A sync, destination, database or group name: see _NAME and MAX_NAME_LENGTH."""
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"{shown(value)}: a {what} name may hold only letters, digits and underscores, "
            "and must not start with a digit"
        )
    if len(value) > MAX_NAME_LENGTH:
        raise ValueError(
            f"{shown(value)}: a {what} name must be at most {MAX_NAME_LENGTH} characters long "
            "(it becomes part of job, schedule and file names)"
        )
    return value


DatabaseName = Annotated[str, AfterValidator(lambda value: check_name(value, "database"))]
DestinationName = Annotated[str, AfterValidator(lambda value: check_name(value, "destination"))]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_env_var_name(value: str | None) -> str | None:
    if value is not None and not _ENV_VAR.fullmatch(value):
        raise ValueError(
            f"{shown(value)} is not an environment variable name: name the variable that holds the "
            "secret (e.g. APP_DB_PASSWORD), never the secret itself"
        )
    return value


def check_time_zone(value: str, offsets: bool = True) -> str:
    """Accept an offset such as `+00:00` (when `offsets`) or an IANA name such as `Europe/Paris`."""
    if offsets and _OFFSET.fullmatch(value):
        return value
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder of zones, e.g. America
        expected = "an offset such as +00:00 or " if offsets else ""
        raise ValueError(f"{shown(value)} is not {expected}a time zone name such as Europe/Paris") from None
    return value


class TlsConfig(StrictModel):
    """TLS to MySQL, with the modes of the `mysql` client's `--ssl-mode`."""

    mode: Literal["disabled", "preferred", "required", "verify-ca", "verify-identity"] = "preferred"
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None


class MySQLDatabase(StrictModel):
    """A MySQL 5.7+/8.x or MariaDB server, read through SQLAlchemy and PyMySQL."""

    kind: Literal["mysql"] = "mysql"
    # pymysql (pure Python, the default), mysqlclient (a C driver) or connectorx (Rust, straight
    # into Arrow: the fast path). The last two need the `fast` extra. All give the same payloads.
    driver: Literal["pymysql", "mysqlclient", "connectorx"] = "pymysql"
    host: str
    port: int = Field(default=3306, ge=1, le=65535)
    database: str
    user: str
    password_env: str | None = None
    ssl: TlsConfig = TlsConfig()
    time_zone: str = "+00:00"
    connect_timeout_seconds: float = Field(default=10, gt=0)
    # How long to wait for the server to send anything (a query's first rows, the next packet):
    # beyond it, a connection that died silently is given up on.
    read_timeout_seconds: float = Field(default=3600, gt=0)
    # The server stops the query after this long (MariaDB max_statement_time, MySQL
    # max_execution_time). It counts until the last row is read, delivery included; off by default.
    statement_timeout_seconds: float | None = Field(default=None, gt=0)

    _check_password_env = field_validator("password_env")(_check_env_var_name)

    @field_validator("time_zone")
    @classmethod
    def _time_zone(cls, value: str) -> str:
        return check_time_zone(value)

    @model_validator(mode="after")
    def _connectorx_without_tls(self) -> MySQLDatabase:
        if self.driver == "connectorx" and self.ssl.mode != "disabled":
            raise ValueError(
                "driver connectorx cannot use TLS here (it would not verify the server against ssl.ca): "
                "set ssl: {mode: disabled} where the network is trusted (the same host, a private "
                "network, an SSH tunnel), or use driver mysqlclient, which supports every ssl.mode"
            )
        return self


class SQLiteDatabase(StrictModel):
    """A SQLite file, opened read-only: the bundled demo uses one so it runs without MySQL."""

    kind: Literal["sqlite"]
    path: Path
    time_zone: Literal["+00:00"] = "+00:00"


def _database_kind(value: Any) -> str | None:
    # `kind` may be left out of a MySQL database, the common case.
    return value.get("kind", "mysql") if isinstance(value, dict) else getattr(value, "kind", None)


Database = Annotated[
    Annotated[MySQLDatabase, Tag("mysql")] | Annotated[SQLiteDatabase, Tag("sqlite")],
    Discriminator(_database_kind),
]


def _check_url(value: str | None) -> str | None:
    if value is not None and _USERINFO.match(value):
        # Never echoed: what stands before the @ is a secret.
        raise ValueError(
            "the URL holds credentials (user:password@): they would be printed with every error; "
            "remove them and put the key in its variable (api_key_env, write_key_env, basic_key_env "
            "or header_value_env)"
        )
    if value is not None and not _URL.fullmatch(value):
        raise ValueError(f"{shown(value)} is not an http(s) URL (without spaces)")
    return value.rstrip("/") if value else value


class RateLimit(StrictModel):
    requests: int = Field(default=3000, ge=1)
    per_seconds: float = Field(default=3.0, gt=0)


class HttpDelivery(StrictModel):
    """How calls are sent to any Segment-compatible `/batch` endpoint."""

    base_url: str | None = None
    max_request_bytes: int = Field(default=500_000, ge=1_000)
    max_call_bytes: int = Field(default=32_000, ge=100)
    max_calls_per_request: int | None = Field(default=None, ge=1)
    max_in_flight: int = Field(default=8, ge=1, le=64)
    # Customer.io publishes 3000 requests per 3 seconds per workspace.
    rate_limit: RateLimit = RateLimit()
    # The whole of one attempt: connecting, sending, and the last byte of the answer.
    timeout_seconds: float = Field(default=30, gt=0)
    retry_budget_seconds: float = Field(default=300, ge=0)
    # The longest Retry-After a run waits; a longer one stops the run (the next one sends the rows).
    max_retry_after_seconds: float = Field(default=120, ge=0)

    _check_base_url = field_validator("base_url")(_check_url)
    REGION_URLS: ClassVar[dict[str, str]] = {}

    def resolved_base_url(self) -> str:
        region = getattr(self, "region", "")
        return self.base_url or self.REGION_URLS[region]


class CustomerIoDestination(HttpDelivery):
    """Customer.io Data Pipelines: `POST {base_url}/batch` with the source's API key."""

    kind: Literal["customerio"]
    region: Literal["us", "eu"] = "us"
    api_key_env: str

    _check_api_key_env = field_validator("api_key_env")(_check_env_var_name)
    REGION_URLS: ClassVar[dict[str, str]] = {
        "us": "https://cdp.customer.io/v1",
        "eu": "https://cdp-eu.customer.io/v1",
    }


class SegmentDestination(HttpDelivery):
    """Segment's HTTP Tracking API, with a source's write key."""

    kind: Literal["segment"]
    region: Literal["us", "eu"] = "us"
    write_key_env: str
    max_calls_per_request: int | None = Field(default=2500, ge=1)  # Segment's batch limit

    _check_write_key_env = field_validator("write_key_env")(_check_env_var_name)
    REGION_URLS: ClassVar[dict[str, str]] = {
        "us": "https://api.segment.io/v1",
        "eu": "https://events.eu1.segmentapis.com/v1",
    }


class HttpEndpointDestination(HttpDelivery):
    """Any Segment-compatible endpoint: `POST {base_url}/batch`."""

    kind: Literal["http"]
    base_url: str
    basic_key_env: str | None = None  # sent as HTTP Basic `key:`, like Segment and Customer.io
    header_name: str | None = None  # or a header of your own, e.g. Authorization: Bearer ...
    header_value_env: str | None = None
    strict_mode: bool = False  # send X-Strict-Mode: 1 (Customer.io-compatible servers)

    _check_env_names = field_validator("basic_key_env", "header_value_env")(_check_env_var_name)

    @field_validator("header_name")
    @classmethod
    def _header_name(cls, value: str | None) -> str | None:
        if value is not None and not _HEADER_NAME.fullmatch(value):
            raise ValueError(
                f"{shown(value)} is not an HTTP header name (letters, digits and - such as X-Token)"
            )
        return value

    @model_validator(mode="after")
    def _one_auth(self) -> HttpEndpointDestination:
        if (self.header_name is None) != (self.header_value_env is None):
            raise ValueError("header_name and header_value_env go together")
        if self.basic_key_env and self.header_name:
            raise ValueError("use basic_key_env or header_name/header_value_env, not both")
        return self


class OutboxDestination(StrictModel):
    """Appends the calls it would send to JSONL files: for dry runs and the demo."""

    kind: Literal["outbox"]
    path: Path | None = None
    max_call_bytes: int = Field(default=32_000, ge=100)


HttpDestination = CustomerIoDestination | SegmentDestination | HttpEndpointDestination
Destination = Annotated[
    CustomerIoDestination | SegmentDestination | HttpEndpointDestination | OutboxDestination,
    Field(discriminator="kind"),
]


class RejectedLimit(StrictModel):
    """When a run rejects so many rows that it is more likely broken than the rows are bad."""

    share: float = Field(default=0.5, ge=0, le=1)  # more than this share of the rows read...
    min_rows: int = Field(default=100, ge=1)  # ...of a run that read at least this many


class SyncConfig(StrictModel):
    """One SQL query whose rows become one API call each, sent to one or more destinations."""

    name: str
    description: str = ""
    # Shown in the Dagster UI: the asset's group, and who owns it (emails, or team:name).
    group: str = "reverse_etl"
    owners: list[str] = Field(default_factory=list)
    type: CallType
    database: str
    destinations: list[str] = Field(min_length=1)
    frequency: str | None = None
    # Dagster assets (keys written `a/b/c`, e.g. a dbt model) whose updates also trigger the sync.
    after_assets: list[str] = Field(default_factory=list)
    start_at: datetime | None = None
    enabled: bool = True
    query: str = Field(min_length=1)
    batch_rows: int = Field(default=10_000, ge=1, le=1_000_000)
    send_nulls: bool = False
    # Re-read this many seconds before last_sync_time, for rows committed late (see docs/cursor.md).
    lookback_seconds: int = Field(default=0, ge=0, le=7 * 86_400)
    max_rejected_share: float = Field(default=0.05, ge=0, le=1)  # the rejected_rows check: an error above
    # A run that rejects more fails and leaves the cursor where it was (share: 1 accepts anything).
    rejected_limit: RejectedLimit = RejectedLimit()
    # Warn when more than one run a day reads more rows than this.
    large_run_rows: int = Field(default=1_000_000, ge=1)
    column_types: dict[str, ColumnType] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        check_name(value, "sync")
        if value in DAGSTER_RESERVED_NAMES:
            raise ValueError(
                f"{value!r}: Dagster reserves this name (a Python keyword or its own); choose another"
            )
        return value

    @field_validator("query")
    @classmethod
    def _read_only(cls, value: str) -> str:
        # Refused here, before anything reaches the database; the read-only transaction is the
        # second line of defence.
        check_read_only(value)
        return value

    @field_validator("group")
    @classmethod
    def _group(cls, value: str) -> str:
        return check_name(value, "group")

    @field_validator("owners")
    @classmethod
    def _owners(cls, value: list[str]) -> list[str]:
        for owner in value:
            if not (_EMAIL.fullmatch(owner) or _TEAM.fullmatch(owner)):
                raise ValueError(f"{shown(owner)}: an owner is an email address or team:name")
        return value

    @field_validator("destinations")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        duplicates = sorted(name for name, count in Counter(value).items() if count > 1)
        if duplicates:
            raise ValueError(f"listed more than once: {', '.join(duplicates)}")
        return value

    @field_validator("frequency")
    @classmethod
    def _frequency(cls, value: str | None) -> str | None:
        if value is not None:
            if len(value) > _MAX_FREQUENCY_LENGTH:
                raise ValueError(
                    f"{shown(value)} is longer than any interval or cron expression "
                    f"({_MAX_FREQUENCY_LENGTH} characters)"
                )
            frequency_to_cron(value)
        return value

    @field_validator("after_assets")
    @classmethod
    def _asset_keys(cls, value: list[str]) -> list[str]:
        for key in value:
            if not _ASSET_KEY.fullmatch(key):
                raise ValueError(f"{shown(key)} is not an asset key such as 'dbt/orders' (parts joined by /)")
        return value

    @model_validator(mode="after")
    def _triggered_somehow(self) -> SyncConfig:
        if self.frequency is None and not self.after_assets:
            raise ValueError("give the sync a frequency, after_assets, or both")
        return self

    @field_validator("start_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        # A start time without a zone is read as UTC, the zone the documentation uses.
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @property
    def cron(self) -> str | None:
        return frequency_to_cron(self.frequency) if self.frequency else None


class ExecutorConfig(StrictModel):
    """Where a sync run's step executes: in the run's own process (Dagster's default), or on Celery
    workers (`dagster-celery`, the `celery` extra), which may be other machines."""

    kind: Literal["default", "celery"] = "default"
    # The environment variables holding the Celery broker's and result backend's URLs (they may
    # hold passwords). Unset: Celery's defaults, RabbitMQ on localhost and the rpc:// backend.
    broker_env: str | None = None
    backend_env: str | None = None


class ProjectConfig(StrictModel):
    """The whole file: named databases and destinations, and the syncs that use them."""

    databases: dict[DatabaseName, Database] = Field(default_factory=dict)
    destinations: dict[DestinationName, Destination] = Field(default_factory=dict)
    syncs: list[SyncConfig] = Field(default_factory=list)
    schedule_timezone: str = "UTC"
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    # How long the state store keeps rejected rows (pruned at every run).
    rejected_rows_retention_days: float = Field(default=30, gt=0, le=3650)

    @field_validator("schedule_timezone")
    @classmethod
    def _schedule_timezone(cls, value: str) -> str:
        return check_time_zone(value, offsets=False)

    def sync_to(self, name: str, destination: str) -> SyncConfig:
        """The sync, after checking it sends to `destination`."""
        sync = self.sync(name)
        if destination not in sync.destinations:
            raise KeyError(
                f"sync {name!r} does not send to {destination!r}; its destinations are: "
                f"{', '.join(sync.destinations)}"
            )
        return sync

    def sync(self, name: str) -> SyncConfig:
        for sync in self.syncs:
            if sync.name == name:
                return sync
        known = ", ".join(s.name for s in self.syncs) or "none"
        raise KeyError(f"no sync named {name!r}; the syncs are: {known}")
