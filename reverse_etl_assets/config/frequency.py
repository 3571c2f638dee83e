"""Turn a sync's `frequency` (an interval such as `15m`, or a cron expression) into cron."""

from __future__ import annotations

import re

_INTERVAL = re.compile(r"^\s*(\d+)\s*(m|min|h|d)\s*$")


def frequency_to_cron(frequency: str) -> str:
    """Return the cron expression for `frequency`, or raise ValueError saying what would work.

    Intervals must divide their unit evenly (`15m`, `2h`), because cron restarts its count every
    hour or day: `7m` would run at :56 and again at :00.
    """
    match = _INTERVAL.match(frequency)
    if match is None:
        # Dagster evaluates the schedules, so its own parser decides which cron strings are valid.
        # (Imported here: the query reader process loads the configuration models without Dagster.)
        from dagster._utils.schedules import is_valid_cron_string

        cron = " ".join(frequency.split())
        if not is_valid_cron_string(cron):
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


def _uneven(frequency: str, unit: str, per: int) -> str:
    divisors = ", ".join(str(n) for n in range(1, per + 1) if per % n == 0)
    return (
        f"{frequency!r}: an interval in {unit} must divide {per} evenly ({divisors}); "
        "use a cron expression for anything else"
    )
