"""Reverse ETL on Dagster: MySQL rows → Segment-spec calls → Customer.io, Segment or any compatible API."""

from importlib.metadata import PackageNotFoundError, version

PACKAGE_NAME = "reverse-etl"

try:
    __version__ = version(PACKAGE_NAME)
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0+unknown"
