"""The one error type the source stage raises."""

from reverse_etl_assets.redaction import RedactedError


class SourceError(RedactedError):
    """The database could not be reached or the query failed; the message names the database."""
