"""`reverse-etl`: validate the configuration, run a sync once, or start the Dagster UI."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import click
import dagster as dg

from reverse_etl_assets.config.loading import CONFIG_ENV_VAR, ConfigError, LoadedConfig, load_config
from reverse_etl_assets.defs.build import build_definitions
from reverse_etl_assets.defs.instance_home import ensure_dagster_home
from reverse_etl_assets.defs.runs import sync_job_name

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
def validate(config_file: Path | None) -> None:
    """Check the configuration file: errors name the file, line, sync and field."""
    config = _load(config_file)
    dg.Definitions.validate_loadable(build_definitions(config))
    for warning in config.warnings:
        click.echo(f"warning: {warning}", err=True)
    syncs = config.project.syncs
    click.echo(f"{config.path}: OK, {len(syncs)} sync(s): {', '.join(s.name for s in syncs) or 'none'}")


@main.command()
@click.argument("sync_name", metavar="SYNC")
@click.option("--destination", "destinations", multiple=True, help="Only this destination (repeatable).")
@_config_option
def run(sync_name: str, destinations: tuple[str, ...], config_file: Path | None) -> None:
    """Run SYNC once, now, for each of its destinations (or the ones named).

    It materializes the sync's asset in the project's Dagster instance, through the same code as
    the UI and the schedule, so the run and its cursor show up in the UI.
    """
    config = _load(config_file)
    try:
        sync = config.project.sync(sync_name)
    except KeyError as error:
        raise click.ClickException(error.args[0]) from None
    unknown = [d for d in destinations if d not in sync.destinations]
    if unknown:
        raise click.ClickException(
            f"sync {sync_name!r} does not send to {', '.join(unknown)}; "
            f"its destinations are: {', '.join(sync.destinations)}"
        )
    ensure_dagster_home()
    job = build_definitions(config).resolve_job_def(sync_job_name(sync_name))
    failed = False
    with dg.DagsterInstance.get() as instance:
        for destination in destinations or sync.destinations:
            result = job.execute_in_process(
                instance=instance,
                partition_key=destination,
                raise_on_error=False,
                tags={"reverse_etl/launched_by": "cli"},
            )
            failed |= not result.success
            click.echo(_summary(sync_name, destination, result))
    if failed:
        sys.exit(1)


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("dagster_args", nargs=-1, type=click.UNPROCESSED)
def dev(dagster_args: tuple[str, ...]) -> None:
    """Start the Dagster UI and daemon (`dagster dev`) on the project's persistent instance.

    DAGSTER_HOME defaults to ./.dagster, so cursors survive a restart. Extra arguments go to
    `dagster dev` (e.g. `reverse-etl dev -p 3001`).
    """
    home = ensure_dagster_home()
    target = (
        ["-w", "workspace.yaml"]
        if Path("workspace.yaml").exists()
        else ["-m", "reverse_etl_assets.definitions"]
    )
    dagster = shutil.which("dagster") or "dagster"
    click.echo(f"DAGSTER_HOME={home}", err=True)
    os.execv(dagster, [dagster, "dev", *target, *dagster_args])


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
        failures = [e.step_failure_data.error for e in result.get_step_failure_events()]
        reason = "; ".join(error.message.strip() for error in failures if error) or "the run failed"
        return f"FAILED {run}: {reason}"
    metadata = result.asset_materializations_for_node(sync_name)[-1].metadata

    def value(key: str) -> object:
        return metadata[key].value if key in metadata else "?"

    return (
        f"OK {run}: {value('rows_read')} rows read, {value('calls_sent')} calls sent, "
        f"{value('rows_rejected')} rejected, {value('requests')} requests in "
        f"{value('duration_seconds')} s; last_sync_time {value('previous_last_sync_time')} → "
        f"{value('last_sync_time')}"
    )


if __name__ == "__main__":
    main()
