"""Time in one place: the clock the bot reads (injected, so tests and the backtest can set it) and
the one way a moment is stored — Unix seconds, UTC (storage/schema.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """Now, in UTC: the clock of a running bot."""
    return datetime.now(timezone.utc)


def unix(moment: datetime | int | float) -> int:
    """A moment as stored: whole Unix seconds (a naive datetime is taken as UTC)."""
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return int(moment.timestamp())
    return int(moment)


def utc(seconds: int | float) -> datetime:
    """Stored Unix seconds back to an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, timezone.utc)


def now_unix() -> int:
    """The system clock in stored form, for rows stamped when they are written (created_at)."""
    return unix(system_clock())
