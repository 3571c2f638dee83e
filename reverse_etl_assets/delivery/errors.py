"""The errors the delivery stage raises."""

from reverse_etl_assets.redaction import RedactedError


class DeliveryError(RedactedError):
    """The destination did not accept the calls; the message names the destination and the answer."""


class AuthenticationError(DeliveryError):
    """401/403: the API key is wrong. Nothing more is sent in this run."""
