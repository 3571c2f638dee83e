"""`reverse-etl`: validate the configuration, run a sync once, or start the Dagster UI."""

from __future__ import annotations

import datetime as dt
import functools
import getpass
import os
import shutil
import socket
import sys
import time
from pathlib import Path

import click
import dagster as dg
import orjson
from tabulate import tabulate

from reverse_etl_assets.config.loading import CONFIG_ENV_VAR, ConfigError, LoadedConfig, load_config
from reverse_etl_assets.config.models import SyncConfig
from reverse_etl_assets.cursor import format_unix_time
from reverse_etl_assets.defs.alerts import Alert, AlertNotSent, rejected_rows_reason, send_alert, webhook_url
from reverse_etl_assets.defs.build import build_definitions
from reverse_etl_assets.defs.cursor_store import InstanceCursorStore
from reverse_etl_assets.defs.executor import ExecutorUnavailable
from reverse_etl_assets.defs.history import run_sizes
from reverse_etl_assets.defs.instance_home import NoInstance, dagster_home, ensure_dagster_home, open_instance
from reverse_etl_assets.defs.runs import run_in_progress, sync_job_name
from reverse_etl_assets.defs.state_store import state_store
from reverse_etl_assets.preview import preview_sync, render_preview, sample_calls, sample_findings
from reverse_etl_assets.source.connection import open_read_only_session
from reverse_etl_assets.source.errors import SourceError
from reverse_etl_assets.source.guards import Finding, database_findings, large_runs_finding
from reverse_etl_assets.sql.placeholders import render_query
from reverse_etl_assets.state.ledger import DeliveryLedger
from reverse_etl_assets.state.rejected_rows import RejectedRowStore

SAMPLE_ROWS = 20  # rows `validate` maps to find calls the destination would refuse
WAIT_POLL_SECONDS = 1.0  # how often `run` looks whether another run of the sync has ended

_config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"The YAML file (default: ${CONFIG_ENV_VAR}, else ./reverse_etl.yaml, else the demo).",
)


@click.group()
def main() -> None:
    """Reverse ETL on Dagster: MySQL rows → Customer.io / Segment calls."""


@main.command()
@_config_option
@click.option("--offline", is_flag=True, help="Check the file only; do not connect to the databases.")
def validate(config_file: Path | None, offline: bool) -> None:
    """Check the configuration file (errors name the file, line, sync and field), then connect to
    each sync's database and check the guards: an incremental query, a read-only user."""
    config = _load(config_file)
    dg.Definitions.validate_loadable(_definitions(config))
    for warning in config.warnings:
        click.echo(f"warning: {warning}", err=True)
    failed = False
    if not offline:
        for sync in config.project.syncs:
            try:
                findings = sync_findings(config, sync.name)
            except SourceError as error:
                click.echo(f"error: sync {sync.name!r}: {error}", err=True)
                failed = True
                continue
            for finding in findings:
                if finding.guard != "no_last_sync_time":  # the file check said so already
                    click.echo(f"warning: sync {sync.name!r}: {finding.message}", err=True)
    syncs = config.project.syncs
    click.echo(
        f"{config.path}: {'FAILED' if failed else 'OK'}, {len(syncs)} sync(s): "
        f"{', '.join(s.name for s in syncs) or 'none'}"
    )
    if failed:
        sys.exit(1)


@main.command()
@click.argument("sync_name", metavar="SYNC")
@click.option("--destination", help="Whose last_sync_time to use (default: the sync's first destination).")
@click.option("--limit", default=10, show_default=True, help="How many rows and payloads to show.")
@_config_option
def preview(sync_name: str, destination: str | None, limit: int, config_file: Path | None) -> None:
    """Show what the next run of SYNC would send: the rows, their payloads, the rejected rows, the
    number of rows (the API calls it would bill) and the guards. Sends nothing, moves no cursor."""
    config = _load(config_file)
    sync = _sync(config, sync_name)
    destination = destination or sync.destinations[0]
    _check_destination(sync, destination)
    if _instance_exists():
        last_sync_time = InstanceCursorStore(_instance()).read(sync_name, destination).last_sync_time
        history = _history(sync_name, destination)
    else:  # nothing ran here yet: the first run would read from 0 (and nothing is created)
        click.echo(
            f"no instance in {dagster_home()} yet: previewing the first run (last_sync_time 0)", err=True
        )
        last_sync_time, history = 0, []
    try:
        result = preview_sync(config, sync_name, destination, last_sync_time, limit, history)
    except SourceError as error:
        raise click.ClickException(str(error)) from None
    click.echo(render_preview(result))


@main.group()
def cursor() -> None:
    """Show or move a sync's last_sync_time, per destination."""


@cursor.command("show")
@click.argument("sync_name", metavar="SYNC")
@_config_option
def cursor_show(sync_name: str, config_file: Path | None) -> None:
    """Every destination's last_sync_time, and when and by whom it was set."""
    sync = _sync(_load(config_file), sync_name)
    store = InstanceCursorStore(_instance())
    rows = []
    for destination in sync.destinations:
        position = store.read(sync_name, destination)
        set_at = position.set_at.isoformat(timespec="seconds") if position.set_at else "never"
        rows.append(
            [destination, position.last_sync_time, position.last_sync_time_iso, set_at, position.set_by or ""]
        )
    click.echo(tabulate(rows, headers=["destination", "last_sync_time", "UTC", "set at", "set by"]))


@cursor.command("set")
@click.argument("sync_name", metavar="SYNC")
@click.option("--destination", required=True)
@click.option("--to", "to", required=True, help="Unix time, or an ISO-8601 date-time (UTC when no zone).")
@_config_option
def cursor_set(sync_name: str, destination: str, to: str, config_file: Path | None) -> None:
    """Move a destination's last_sync_time: back to replay a window, ahead to skip history."""
    sync = _sync(_load(config_file), sync_name)
    _check_destination(sync, destination)
    value = _unix_time(to)
    before = _move_cursor(sync, destination, value, "set")
    click.echo(f"{sync_name} → {destination}: last_sync_time {before} → {value} ({format_unix_time(value)})")


@cursor.command("reset")
@click.argument("sync_name", metavar="SYNC")
@click.option("--destination", required=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_config_option
def cursor_reset(sync_name: str, destination: str, yes: bool, config_file: Path | None) -> None:
    """Set a destination's last_sync_time back to 0: its next run sends every row again."""
    config = _load(config_file)
    sync = _sync(config, sync_name)
    _check_destination(sync, destination)
    try:
        with open_read_only_session(sync.database, config.project.databases[sync.database]) as session:
            rows = session.count_rows(render_query(sync.query, 0))
    except SourceError as error:
        raise click.ClickException(f"cannot count the rows a reset would re-send: {error}") from None
    question = (
        f"Reset {sync_name} → {destination} to last_sync_time 0? Its next run will send {rows:,} rows "
        f"({rows:,} API calls) again."
    )
    if not yes and not click.confirm(question, default=False):
        raise click.Abort()
    before = _move_cursor(sync, destination, 0, "reset")
    click.echo(f"{sync_name} → {destination}: last_sync_time {before} → 0; the next run sends {rows:,} rows")


def _move_cursor(sync: SyncConfig, destination: str, value: int, change: str) -> int:
    """Record the move and return the cursor it replaced. A run in progress would overwrite the
    move when it ends: refused. A cursor moved back means "send these rows again", so the
    lookback's ledger forgets what it delivered (it would skip them)."""
    instance = _instance()
    running = run_in_progress(instance, sync.name, destination)
    if running is not None:
        raise click.ClickException(
            f"run {running.run_id} of {sync.name} → {destination} is in progress and would overwrite "
            "the cursor when it ends: move it once that run is over"
        )
    before = InstanceCursorStore(instance).write(sync.name, destination, value, change, _who())
    if value <= before:
        # In the state store every worker shares: none of them skips what is to be replayed.
        forgotten = DeliveryLedger(state_store(instance)).forget(sync.name, destination)
        if forgotten:
            click.echo(f"forgot {forgotten:,} deliveries recorded for the lookback")
    return before


@main.command()
@click.argument("sync_name", metavar="SYNC")
@click.option("--destination", "destinations", multiple=True, help="Only this destination (repeatable).")
@click.option(
    "--new-instance",
    is_flag=True,
    help="Without $DAGSTER_HOME, create ./.dagster if it does not exist (a new instance: every row is sent).",
)
@_config_option
def run(sync_name: str, destinations: tuple[str, ...], new_instance: bool, config_file: Path | None) -> None:
    """Run SYNC once, now, for each of its destinations (or the ones named).

    It materializes the sync's asset in the project's Dagster instance, through the same code as
    the UI and the schedule, so the run and its cursor show up in the UI.
    """
    config = _load(config_file)
    sync = _sync(config, sync_name)
    for destination in destinations:
        _check_destination(sync, destination)
    job = _definitions(config).resolve_job_def(sync_job_name(sync_name))
    failed = False
    with _open(create=new_instance) as instance:
        for destination in destinations or sync.destinations:
            _wait_for_other_runs(instance, sync_name, destination)
            result = job.execute_in_process(
                instance=instance,
                partition_key=destination,
                raise_on_error=False,
                tags={"reverse_etl/launched_by": "cli"},
            )
            failed |= not result.success
            click.echo(_summary(sync_name, destination, result))
            _alert(sync, destination, result)
    if failed:
        sys.exit(1)


@main.command()
@click.argument("sync_name", metavar="SYNC")
@click.option("--destination", help="Only the rows rejected for this destination.")
@click.option("--run", "run_id", help="Only the rows of this run.")
@_config_option
def rejected(sync_name: str, destination: str | None, run_id: str | None, config_file: Path | None) -> None:
    """Print SYNC's rejected rows kept in the state store, one JSON object per line (with its
    destination and run), whichever worker ran the sync."""
    sync = _sync(_load(config_file), sync_name)
    if destination is not None:
        _check_destination(sync, destination)
    store = RejectedRowStore(state_store(_instance()))
    out = click.get_binary_stream("stdout")
    for found_destination, found_run, row in store.rows(sync_name, destination, run_id):
        record = {"destination": found_destination, "run_id": found_run, **orjson.loads(row)}
        out.write(orjson.dumps(record) + b"\n")


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("dagster_args", nargs=-1, type=click.UNPROCESSED)
def dev(dagster_args: tuple[str, ...]) -> None:
    """Start the Dagster UI and daemon (`dagster dev`) on the project's persistent instance.

    DAGSTER_HOME defaults to ./.dagster, so cursors survive a restart. Extra arguments go to
    `dagster dev` (e.g. `reverse-etl dev -p 3001`). Each edit of the configuration file reloads
    the code location within seconds.
    """
    home = ensure_dagster_home()
    target = (
        ["-w", "workspace.yaml"]
        if Path("workspace.yaml").exists()
        else ["-m", "reverse_etl_assets.definitions"]
    )
    # The `dagster` of this environment, even when its bin folder is not on PATH.
    beside = Path(sys.executable).with_name("dagster")
    dagster = str(beside) if beside.exists() else shutil.which("dagster") or "dagster"
    click.echo(f"DAGSTER_HOME={home}", err=True)
    from reverse_etl_assets.dev_server import run_dagster_dev  # the GraphQL client: only here

    sys.exit(run_dagster_dev([dagster, "dev", *target, *dagster_args], dagster_args))


def sync_findings(config: LoadedConfig, sync_name: str) -> list[Finding]:
    sync = config.project.sync(sync_name)
    database = config.project.databases[sync.database]
    with open_read_only_session(sync.database, database) as session:
        findings = database_findings(session, sync.query, database)
    # A sample of calls, as the first destination would get them: rows it would reject or refuse.
    rendered = render_query(sync.query, 0)
    findings += sample_findings(sample_calls(config, sync_name, sync.destinations[0], rendered, SAMPLE_ROWS))
    home = dagster_home()
    if (home / "dagster.yaml").exists():  # the instance exists: its history tells about large runs
        for destination in sync.destinations:
            large = large_runs_finding(_history(sync_name, destination), sync.large_run_rows)
            findings += [large] if large else []
    return findings


def _sync(config: LoadedConfig, sync_name: str) -> SyncConfig:
    try:
        return config.project.sync(sync_name)
    except KeyError as error:
        raise click.ClickException(error.args[0]) from None


def _check_destination(sync: SyncConfig, destination: str) -> None:
    if destination not in sync.destinations:
        raise click.ClickException(
            f"sync {sync.name!r} does not send to {destination}; "
            f"its destinations are: {', '.join(sync.destinations)}"
        )


@functools.cache
def _instance() -> dg.DagsterInstance:
    """One instance for the whole command."""
    return _open()


def _definitions(config: LoadedConfig) -> dg.Definitions:
    try:
        return build_definitions(config)
    except ExecutorUnavailable as error:
        raise click.ClickException(f"{config.path}: {error}") from None


def _instance_exists() -> bool:
    return bool(os.environ.get("DAGSTER_HOME")) or dagster_home().exists()


def _open(create: bool = False) -> dg.DagsterInstance:
    """The instance, said on stderr (which one a command uses is never a guess)."""
    try:
        instance = open_instance(create)
    except NoInstance as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"instance: {dagster_home()}; state store: {state_store(instance).describe()}", err=True)
    return instance


def _wait_for_other_runs(instance: dg.DagsterInstance, sync_name: str, destination: str) -> None:
    """One run of a sync at a time: wait, asleep, while another holds the destination (a dead one
    is failed and its slot freed by `run_in_progress`). Ctrl-C or SIGTERM end the wait."""
    said = False
    while (running := run_in_progress(instance, sync_name, destination)) is not None:
        if not said:
            click.echo(f"waiting for run {running.run_id} of {sync_name} → {destination} to end", err=True)
            said = True
        time.sleep(WAIT_POLL_SECONDS)


def _history(sync_name: str, destination: str) -> list[tuple[float, int]]:
    return run_sizes(_instance(), sync_name, destination)


def _unix_time(text: str) -> int:
    if text.strip().isdigit():
        return int(text)
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is neither a Unix time nor an ISO-8601 date-time", param_hint="--to"
        ) from None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp())


def _who() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()} (reverse-etl cursor)"


def _load(config_file: Path | None) -> LoadedConfig:
    if config_file is not None:
        os.environ[CONFIG_ENV_VAR] = str(config_file.resolve())
    try:
        return load_config()
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


def _summary(sync_name: str, destination: str, result: dg.ExecuteInProcessResult) -> str:
    run = f"{sync_name} → {destination} (run {result.run_id})"
    if not result.success:
        return f"FAILED {run}: {_failure_reason(result)}"
    counts = _counts(sync_name, result)

    def value(key: str) -> object:
        return counts.get(key, "?")

    return (
        f"OK {run}: {value('rows_read')} rows read, {value('calls_sent')} calls sent, "
        f"{value('rows_rejected')} rejected, {_plural(counts.get('requests'), 'request')} in "
        f"{value('duration_seconds')} s; last_sync_time {value('previous_last_sync_time')} → "
        f"{value('last_sync_time')}"
    )


def _alert(sync: SyncConfig, destination: str, result: dg.ExecuteInProcessResult) -> None:
    """The alert the sensors would post for a run they see; they never see the CLI's runs."""
    url = webhook_url()
    if not url:
        return
    if result.success:
        counts = _counts(sync.name, result)
        what, reason = "REJECTED ROWS", rejected_rows_reason(sync.max_rejected_share, counts)
    else:
        counts = {}
        for event in result.get_step_failure_events():
            failure = event.step_failure_data.user_failure_data
            counts.update({k: v.value for k, v in (failure.metadata if failure else {}).items()})
        what, reason = "FAILED", _failure_reason(result)
    if reason:
        try:
            send_alert(Alert(what, sync.name, destination, result.run_id, reason, counts), url)
        except AlertNotSent as error:
            click.echo(f"warning: {error}", err=True)


def _failure_reason(result: dg.ExecuteInProcessResult) -> str:
    failures = [event.step_failure_data.error for event in result.get_step_failure_events()]
    return "; ".join(error.message.strip() for error in failures if error) or "the run failed"


def _counts(sync_name: str, result: dg.ExecuteInProcessResult) -> dict[str, object]:
    metadata = result.asset_materializations_for_node(sync_name)[-1].metadata
    return {key: value.value for key, value in metadata.items()}


def _plural(count: object, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


if __name__ == "__main__":
    main()
