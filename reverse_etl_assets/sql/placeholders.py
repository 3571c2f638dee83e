"""The sync's SQL: find and fill in `{{last_sync_time}}`."""

from __future__ import annotations

import re

from reverse_etl_assets.sql.lexer import statement_body

# `{{last_sync_time}}`, with any spaces inside the braces.
LAST_SYNC_TIME = re.compile(r"\{\{\s*last_sync_time\s*\}\}")
_ANY_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


def uses_last_sync_time(query: str) -> bool:
    return LAST_SYNC_TIME.search(query) is not None


def unknown_placeholders(query: str) -> list[str]:
    """`{{...}}` other than `{{last_sync_time}}`: probably a typo (they reach the database as written)."""
    return [m.group(0) for m in _ANY_PLACEHOLDER.finditer(query) if not LAST_SYNC_TIME.fullmatch(m.group(0))]


def render_query(query: str, last_sync_time: int) -> str:
    """Replace every `{{last_sync_time}}` with the integer Unix time.

    The value is an integer we produce, never user input, so plain substitution is safe. A
    semicolon that ends the statement is dropped (with any comment after it): the driver runs one
    statement.
    """
    if not isinstance(last_sync_time, int) or isinstance(last_sync_time, bool):
        raise TypeError(f"last_sync_time must be an integer Unix time, got {last_sync_time!r}")
    return statement_body(LAST_SYNC_TIME.sub(str(last_sync_time), query))
