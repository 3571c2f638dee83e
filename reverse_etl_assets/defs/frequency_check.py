"""The `sync_frequency` check: is the sync scheduled more often than its runs can keep up with?

It warns when more than half of the destination's recent schedule ticks were skipped because a run
was still in progress, or when recent runs take longer than the interval, and says what frequency
would fit.
"""

from __future__ import annotations

import datetime as dt
import itertools
import statistics
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import dagster as dg
from croniter import croniter

from reverse_etl_assets.config.models import SyncConfig
from reverse_etl_assets.defs.history import recent_runs
from reverse_etl_assets.defs.state_store import state_store
from reverse_etl_assets.state.schedule_ticks import ScheduleTicks

SYNC_FREQUENCY = "sync_frequency"
RECENT_TICKS = 20
RECENT_RUNS = 10
# Frequencies to suggest, in seconds: each divides its unit, so each is also a valid `frequency`.
_CHOICES = [
    (60, "1m"), (120, "2m"), (300, "5m"), (600, "10m"), (900, "15m"), (1200, "20m"), (1800, "30m"),
    (3600, "1h"), (7200, "2h"), (10800, "3h"), (14400, "4h"), (21600, "6h"), (28800, "8h"),
    (43200, "12h"), (86400, "1d"),
]  # fmt: skip


@dataclass(frozen=True)
class FrequencyFindings:
    interval_seconds: float
    ticks: int
    skipped_busy: int
    durations: list[float]

    @property
    def typical_duration(self) -> float:
        return statistics.median(self.durations) if self.durations else 0.0

    def problems(self) -> list[str]:
        found = []
        if self.ticks >= 4 and self.skipped_busy * 2 > self.ticks:
            found.append(
                f"{self.skipped_busy} of the last {self.ticks} ticks were skipped because a run was "
                "still in progress"
            )
        if len(self.durations) >= 3 and self.typical_duration > self.interval_seconds:
            found.append(
                f"recent runs take {self.typical_duration:.0f} s (median of {len(self.durations)}), "
                f"longer than the {self.interval_seconds:.0f} s between ticks"
            )
        return found

    def suggestion(self) -> str:
        longest = max(self.durations, default=self.interval_seconds)
        needed = max(self.typical_duration * 1.5, longest, self.interval_seconds * 2)
        return next((name for seconds, name in _CHOICES if seconds >= needed), "1d")


def check_spec(sync: SyncConfig) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        SYNC_FREQUENCY,
        asset=sync.name,
        description="Warns when the sync is scheduled more often than its runs can keep up with "
        "(most recent ticks skipped, or runs longer than the interval), with a frequency that fits.",
    )


def frequency_check(
    instance: dg.DagsterInstance, sync: SyncConfig, destination: str, timezone: str, this_run_seconds: float
) -> dg.AssetCheckResult:
    if sync.cron is None:
        return dg.AssetCheckResult(
            check_name=SYNC_FREQUENCY, passed=True, description="no schedule: runs after upstream assets only"
        )
    recent = ScheduleTicks(state_store(instance)).recent(sync.name, destination, RECENT_TICKS)
    findings = FrequencyFindings(
        interval_seconds=interval_seconds(sync.cron, timezone),
        ticks=recent.ticks,
        skipped_busy=recent.skipped_busy,
        durations=[this_run_seconds]
        + [run.duration_seconds for run in recent_runs(instance, sync.name, destination, RECENT_RUNS - 1)],
    )
    problems = findings.problems()
    metadata = {
        "interval_seconds": dg.MetadataValue.float(findings.interval_seconds),
        "recent_ticks": dg.MetadataValue.int(findings.ticks),
        "ticks_skipped_busy": dg.MetadataValue.int(findings.skipped_busy),
        "median_run_seconds": dg.MetadataValue.float(round(findings.typical_duration, 3)),
    }
    if not problems:
        return dg.AssetCheckResult(check_name=SYNC_FREQUENCY, passed=True, metadata=metadata)
    advice = f"; a frequency of {findings.suggestion()} would fit (now: {sync.frequency})"
    return dg.AssetCheckResult(
        check_name=SYNC_FREQUENCY,
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{sync.name} → {destination}: " + "; ".join(problems) + advice,
        metadata={**metadata, "suggested_frequency": findings.suggestion()},
    )


def interval_seconds(cron: str, timezone: str, now: dt.datetime | None = None) -> float:
    """The shortest gap between the next few ticks (cron schedules need not be regular), in the
    schedule's time zone, as the daemon counts them."""
    ticks = croniter(cron, now or dt.datetime.now(ZoneInfo(timezone)))
    times = [ticks.get_next(dt.datetime).timestamp() for _ in range(6)]
    return min(later - earlier for earlier, later in itertools.pairwise(times))
