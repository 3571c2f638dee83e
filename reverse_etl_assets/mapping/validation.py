"""The destination's rules for a valid call, checked before anything is sent.

They follow Customer.io's OpenAPI description (`customerio-pipelines-openapi.json`) plus the
product rules it is looser than (a group call needs a groupId). A call that breaks one is a
rejected row: reported with the field and the reason, never sent.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from reverse_etl_assets.config.models import CallType

_CHANNELS = ("browser", "server", "mobile")
_DEVICE_TYPES = ("android", "ios")
_OBJECT_TYPE_ID = re.compile(r"^[0-9]+$")
# RFC 3339 date-time: a date, a time, and a zone (Z or an offset).
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")

MAX_MESSAGE_ID_CHARS = 100  # Segment's limit

Problem = tuple[str, str]  # (field, reason)


def call_problem(call: dict[str, Any], call_type: CallType, email_identifies: bool) -> Problem | None:
    """The first rule `call` breaks, as (field, reason), or None when the call is valid."""
    return (
        _required(call, call_type, email_identifies)
        or _timestamp(call)
        or _context(call)
        or _integrations(call)
        or _object_type(call, call_type)
        or _message_id(call)
    )


def _present(call: dict[str, Any], field: str) -> bool:
    value = call.get(field)
    return isinstance(value, str) and value != ""


def _required(call: dict[str, Any], call_type: CallType, email_identifies: bool) -> Problem | None:
    has_person = _present(call, "userId") or _present(call, "anonymousId")
    if call_type == "alias":
        for field in ("previousId", "userId"):
            if not _present(call, field):
                return field, f"an alias call needs {field}"
        return None
    if call_type == "group":
        return None if _present(call, "groupId") else ("groupId", "a group call needs groupId")
    if call_type == "track":
        if not _present(call, "event"):
            return "event", "a track call needs an event name"
        if not (has_person or _present(call, "groupId")):
            return "userId", "a track call needs userId or anonymousId (or groupId for an object)"
        return None
    if has_person:
        return None
    if call_type == "identify" and email_identifies and has_email(call):
        return None  # Customer.io identifies the person by traits.email (the mapper sends userId "")
    hint = " (or traits.email, for Customer.io)" if call_type == "identify" and email_identifies else ""
    return "userId", f"a {call_type} call needs userId or anonymousId{hint}"


def has_email(call: dict[str, Any]) -> bool:
    traits = call.get("traits")
    return isinstance(traits, dict) and isinstance(traits.get("email"), str) and bool(traits["email"])


def _timestamp(call: dict[str, Any]) -> Problem | None:
    value = call.get("timestamp")
    if value is None:
        return None
    if not isinstance(value, str) or not _DATE_TIME.match(value):
        return (
            "timestamp",
            f"{value!r} is not an ISO-8601 date-time with a UTC offset "
            "(select a DATETIME/TIMESTAMP column, or FROM_UNIXTIME(epoch_column))",
        )
    try:
        dt.datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return "timestamp", f"{value!r} is not a real date-time"
    return None


def _context(call: dict[str, Any]) -> Problem | None:
    context = call.get("context")
    if not isinstance(context, dict):
        return None
    channel = context.get("channel")
    if channel is not None and channel not in _CHANNELS:
        return "context.channel", f"{channel!r} is not one of {', '.join(_CHANNELS)}"
    device = context.get("device")
    device_type = device.get("type") if isinstance(device, dict) else None
    if device_type is not None and device_type not in _DEVICE_TYPES:
        return "context.device.type", f"{device_type!r} is not one of {', '.join(_DEVICE_TYPES)}"
    return None


def _integrations(call: dict[str, Any]) -> Problem | None:
    integrations = call.get("integrations")
    if integrations is None:
        return None
    if not isinstance(integrations, dict):
        return "integrations", "integrations must be an object of true/false values"
    for name, enabled in integrations.items():
        if not isinstance(enabled, bool):
            return f"integrations.{name}", f"{enabled!r} is not true or false"
    return None


def _object_type(call: dict[str, Any], call_type: CallType) -> Problem | None:
    if call_type != "group":
        return None
    traits = call.get("traits")
    for field, value in (
        ("objectTypeId", call.get("objectTypeId")),
        ("traits.object_type_id", traits.get("object_type_id") if isinstance(traits, dict) else None),
    ):
        if value is not None and not (isinstance(value, str) and _OBJECT_TYPE_ID.match(value)):
            return field, f'{value!r} is not a stringified integer such as "1"'
    return None


def _message_id(call: dict[str, Any]) -> Problem | None:
    value = call.get("messageId")
    if value is not None and len(value) > MAX_MESSAGE_ID_CHARS:
        return "messageId", f"{len(value)} characters; a messageId may have at most {MAX_MESSAGE_ID_CHARS}"
    return None
