"""Alerts to a webhook (Slack-compatible JSON) when a sync run fails or rejects too many rows.

One function posts them, whoever saw the run end: the alert sensors (runs launched by the UI,
schedules and sensors) and `reverse-etl run` (whose runs carry no code location, so the sensors
never see them). A post that fails is retried with backoff; the webhook's URL is a secret (a Slack
webhook's path is its key), so no error names more of it than its host.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from reverse_etl_assets.redaction import RedactedError, secret_from_env

WEBHOOK_ENV = "REVERSE_ETL_ALERT_WEBHOOK_URL"
UI_URL_ENV = "REVERSE_ETL_DAGSTER_URL"  # where run links point; default http://127.0.0.1:3000
ATTEMPTS = 5
_FIGURES = (
    ("rows_read", "rows read"),
    ("calls_sent", "calls sent"),
    ("rows_rejected", "rejected"),
    ("last_sync_time", "last_sync_time"),
)


class AlertNotSent(RedactedError):
    """Every attempt to post the alert failed; the message names the webhook's host only."""


@dataclass(frozen=True)
class Alert:
    what: str  # FAILED, REJECTED ROWS
    sync: str
    destination: str
    run_id: str
    reason: str
    counts: dict[str, Any]

    def payload(self) -> dict[str, Any]:
        link = f"{os.environ.get(UI_URL_ENV, 'http://127.0.0.1:3000').rstrip('/')}/runs/{self.run_id}"
        figures = ", ".join(f"{label} {self.counts[key]}" for key, label in _FIGURES if key in self.counts)
        title = f"reverse-etl: {self.what}: sync {self.sync} → {self.destination}"
        text = "\n".join(line for line in (title, self.reason, figures, f"Run: {link}") if line)
        return {
            "text": text,
            "blocks": [
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": f"*{self.what}*: sync `{self.sync}` → `{self.destination}`",
                    },
                },
                {"type": "section", "text": {"type": "mrkdwn", "text": self.reason[:2900]}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": figures or "no figures"}]},
                {"type": "section", "text": {"type": "mrkdwn", "text": f"<{link}|Run {self.run_id}>"}},
            ],
            "sync": self.sync,
            "destination": self.destination,
            "run_id": self.run_id,
            "run_url": link,
        }


def rejected_rows_reason(max_rejected_share: float, counts: dict[str, Any]) -> str | None:
    """Why a successful run deserves an alert: it rejected more than `max_rejected_share`."""
    read, rejected = counts.get("rows_read", 0), counts.get("rows_rejected", 0)
    if not read or rejected / read <= max_rejected_share:
        return None
    return (
        f"{rejected} of {read} rows rejected ({rejected / read:.1%}), above max_rejected_share "
        f"{max_rejected_share:.0%}"
    )


def webhook_url() -> str | None:
    return secret_from_env(WEBHOOK_ENV)


def send_alert(alert: Alert, url: str, *, wait_max_seconds: float = 10.0) -> None:
    """Post `alert`, retrying a failed post (no answer, 429, 5xx) with exponential backoff."""
    host = urlsplit(url).hostname or "?"
    retrying = Retrying(
        retry=retry_if_exception_type(_Retry),
        stop=stop_after_attempt(ATTEMPTS),
        wait=wait_exponential_jitter(multiplier=0.5, max=wait_max_seconds, jitter=0.5),
        reraise=True,
    )
    try:
        for attempt in retrying:
            with attempt:
                _post(url, alert.payload())
    except _Retry as failure:
        raise AlertNotSent(
            f"the alert webhook ({host}, ${WEBHOOK_ENV}) did not take the alert after {ATTEMPTS} attempts: "
            f"{failure}"
        ) from None
    except _Refused as refused:
        raise AlertNotSent(
            f"the alert webhook ({host}, ${WEBHOOK_ENV}) refused the alert: {refused}"
        ) from None


class _Retry(Exception):
    pass


class _Refused(Exception):
    pass


def _post(url: str, payload: dict[str, Any]) -> None:
    try:
        response = requests.post(url, json=payload, timeout=10)
    except requests.RequestException as error:
        raise _Retry(f"no answer ({type(error).__name__})") from None
    if response.status_code == 429 or response.status_code >= 500:
        raise _Retry(f"answered {response.status_code}")
    if response.status_code >= 300:
        raise _Refused(f"answered {response.status_code}: {response.text[:200]}")
