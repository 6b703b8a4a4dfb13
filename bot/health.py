"""What GET /healthz answers (CONTRACT.md), from figures handed in: no clock, no database, no network.

Healthy means the poller gets data: a cycle succeeded within the last STALE_AFTER poll intervals.
Before the first success the process's start counts instead, so a fresh start is given that long.
"""

from __future__ import annotations

from datetime import datetime, timezone

STALE_AFTER = 3  # poll intervals without a successful cycle before the bot is "stale"


def health(*, now: datetime, started: datetime, last_poll: datetime | None, poll_interval: float,
           outbox_waiting: int) -> tuple[int, dict]:
    """(HTTP status, JSON body): 200 ok, or 503 stale when no cycle succeeded for STALE_AFTER intervals."""
    since = last_poll if last_poll is not None else started
    stale = (now - since).total_seconds() > STALE_AFTER * poll_interval
    body = {
        "status": "stale" if stale else "ok",
        "last_poll": _iso(last_poll) if last_poll is not None else None,
        "outbox_waiting": outbox_waiting,
    }
    return (503 if stale else 200), body


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
