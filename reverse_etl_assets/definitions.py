"""Dagster's entry point (workspace.yaml): the syncs of the configuration file, as definitions."""

import logging

from reverse_etl_assets.config.loading import load_config
from reverse_etl_assets.defs.build import build_definitions

config = load_config()
for warning in config.warnings:
    logging.getLogger("reverse_etl").warning("%s", warning)

defs = build_definitions(config)
