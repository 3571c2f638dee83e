"""The one error type the source stage raises."""


class SourceError(Exception):
    """The database could not be reached or the query failed; the message names the database."""
