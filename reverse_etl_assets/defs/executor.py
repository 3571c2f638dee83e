"""The executor the configuration asks for (`executor:` in the file): Dagster's default, or
dagster-celery's, configured from environment variables so that no URL or password is stored."""

from __future__ import annotations

import dagster as dg

from reverse_etl_assets.config.models import ExecutorConfig


class ExecutorUnavailable(Exception):
    pass


def build_executor(config: ExecutorConfig) -> dg.ExecutorDefinition | None:
    if config.kind == "default":
        return None
    try:
        from dagster_celery import celery_executor
    except ImportError:
        raise ExecutorUnavailable(
            "executor.kind is celery, but dagster-celery is not installed: pip install 'reverse-etl[celery]'"
        ) from None
    settings: dict[str, object] = {}
    if config.broker_env:
        settings["broker"] = {"env": config.broker_env}
    if config.backend_env:
        settings["backend"] = {"env": config.backend_env}
    return celery_executor.configured(settings, name="reverse_etl_celery")
