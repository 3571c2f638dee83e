"""Secrets never leave the process in text: every value read from an environment variable that the
configuration names (passwords, API keys, header values, the alert webhook's URL) is remembered
here when it is read, and `redact` takes it, in every form it travels in (an Authorization header's
Base64, a URL's percent-encoding), and any URL's `user:password@`, out of text that could reach
output, logs, metadata, tick errors or alerts. The errors of every stage redact their own message.
"""

from __future__ import annotations

import base64
import os
import re
import threading
from urllib.parse import quote, urlsplit

MASK = "***"
_MIN_LENGTH = 3  # shorter "secrets" would mask every such run of letters in a message
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]+@")

_known: set[str] = set()
_lock = threading.Lock()


# A running Dagster (`reverse-etl dev`, a code server, a worker) keeps the environment it started
# with: a variable exported afterwards reaches none of its runs.
UNSET_HINT = (
    "export it, then restart what runs the syncs (`reverse-etl dev`, or the code server and workers): "
    "they keep the environment they started with"
)


def secret_from_env(variable: str) -> str | None:
    """The variable's value, remembered as a secret."""
    value = os.environ.get(variable)
    if value:
        remember(value)
    return value


def remember(secret: str) -> None:
    forms = {
        secret,
        secret.strip(),
        quote(secret, safe=""),
        base64.b64encode(secret.encode()).decode(),
        base64.b64encode(f"{secret}:".encode()).decode(),  # HTTP Basic with an empty password
    }
    parts = urlsplit(secret) if "://" in secret else None
    if parts is not None and len(parts.path) > 1:
        forms.add(parts.path)  # a webhook's secret is its path: it may be logged without the host
    with _lock:
        _known.update(form for form in forms if len(form) >= _MIN_LENGTH)


def redact(text: str) -> str:
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    return _USERINFO.sub(rf"\g<scheme>{MASK}@", text)


class RedactedError(Exception):
    """An error whose message never holds a secret."""

    def __init__(self, message: str = "") -> None:
        super().__init__(redact(message))
