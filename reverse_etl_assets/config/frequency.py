"""Turn a sync's `frequency` (an interval such as `15m`, or a cron expression) into cron."""

from __future__ import annotations

import datetime as dt
import re

from croniter import CroniterBadDateError, croniter

_INTERVAL = re.compile(r"^\s*(\d+)\s*(m|min|h|d)\s*$")


def frequency_to_cron(frequency: str) -> str:
    """Return the cron expression for `frequency`, or raise ValueError saying what would work.

    Intervals must divide their unit evenly (`15m`, `2h`), because cron restarts its count every
    hour or day: `7m` would run at :56 and again at :00.
    """
    match = _INTERVAL.match(frequency)
    if match is None:
        cron = " ".join(frequency.split())
        if not is_valid_cron(cron):
            raise ValueError(
                f"{frequency!r} is neither an interval (1m, 15m, 2h, 1d) nor a valid cron expression"
            )
        return cron
    count, unit = int(match.group(1)), match.group(2)
    if count < 1:
        raise ValueError(f"{frequency!r}: the interval must be at least one minute")
    if unit in ("m", "min"):
        if count == 1:
            return "* * * * *"
        if 60 % count:
            raise ValueError(_uneven(frequency, "minutes", 60))
        return f"*/{count} * * * *" if count < 60 else "0 * * * *"
    if unit == "h":
        if 24 % count:
            raise ValueError(_uneven(frequency, "hours", 24))
        return "0 * * * *" if count == 1 else f"0 */{count} * * *" if count < 24 else "0 0 * * *"
    if count != 1:
        raise ValueError(f"{frequency!r}: use 1d, or a cron expression for other day intervals")
    return "0 0 * * *"


def is_valid_cron(cron: str) -> bool:
    """Five fields that Dagster's schedules take and that fire at least once in a few years.
    croniter alone also accepts a sixth field (seconds), `@daily`-style names, `W` (nearest
    weekday: Dagster refuses it) and dates that never come, such as the 31st of February."""
    if len(cron.split()) != 5 or "W" in cron.upper() or not croniter.is_valid(cron):
        return False
    fields = croniter.expand(cron)[0]
    if fields[3] == [2] and fields[2] in ([30], [31]):
        return False  # Dagster refuses February's 30th or 31st, whatever the weekday field says
    try:
        croniter(cron, dt.datetime(2026, 1, 1), max_years_between_matches=5).get_next(dt.datetime)
    except CroniterBadDateError:
        return False
    return True


def _uneven(frequency: str, unit: str, per: int) -> str:
    divisors = ", ".join(str(n) for n in range(1, per + 1) if per % n == 0)
    return (
        f"{frequency!r}: an interval in {unit} must divide {per} evenly ({divisors}); "
        "use a cron expression for anything else"
    )
