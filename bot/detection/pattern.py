"""When a block bites: its hours of the week in the country's local time, and what that says.

A blocked network keeps two sets of hour-of-week bins (Monday 00:00 local = 0 … Sunday 23:00 = 167)
as integer bit masks: the hours in which its block showed itself, and the hours in which its data was
clean while the block lasted. From them: whether the block is continuous (it bit at every hour of the
day that was measured, with no long gap), the pattern to name ("daytime only, about 08:00–17:00
local time, off on weekends"), and whether a clean stretch covers the hours when it used to bite.
Pure: the country's zone comes from the tz database, no clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache
from importlib import resources
from typing import NamedTuple
from zoneinfo import ZoneInfo

HOURS_OF_WEEK = 168
WEEKEND = frozenset({5, 6})  # Saturday, Sunday
# countries spanning several zones: the zone most of their people live in (zone.tab lists the west first)
MAIN_ZONE = {
    "RU": "Europe/Moscow", "US": "America/New_York", "CA": "America/Toronto", "BR": "America/Sao_Paulo",
    "AU": "Australia/Sydney", "MX": "America/Mexico_City", "ID": "Asia/Jakarta", "KZ": "Asia/Almaty",
    "CN": "Asia/Shanghai", "UA": "Europe/Kyiv", "AR": "America/Argentina/Buenos_Aires", "CD": "Africa/Kinshasa",
}


class Pattern(NamedTuple):
    """An intermittent block's rhythm, as alerts and /status name it (hours are local, `until` exclusive)."""

    zone: str
    start_hour: int
    end_hour: int
    daily: bool  # it is off for part of every day (a daytime- or night-only block)
    weekends_off: bool  # seen off on Saturday or Sunday while it bit on weekdays
    last_blocked: datetime | None  # end of the newest data that showed it
    last_clean: datetime | None  # end of the newest clean data


@lru_cache(maxsize=None)
def zone_of(country: str) -> ZoneInfo:
    """The country's main time zone from the tz database's zone.tab; UTC when it is not listed."""
    name = MAIN_ZONE.get(country.upper())
    if name is None:
        try:
            text = resources.files("tzdata").joinpath("zoneinfo/zone.tab").read_text(encoding="utf-8")
        except (ModuleNotFoundError, FileNotFoundError):
            text = ""
        for line in text.splitlines():
            parts = line.split("\t")
            if len(parts) >= 3 and parts[0] == country.upper():
                name = parts[2]
                break
    return ZoneInfo(name or "UTC")


def hour_of_week(start: datetime, end: datetime, zone: ZoneInfo) -> int | None:
    """The local hour-of-week bin of a bucket's middle; None for buckets too long to place (a day)."""
    if end - start > timedelta(hours=2):
        return None
    local = (start + (end - start) / 2).astimezone(zone)
    return local.weekday() * 24 + local.hour


def _hours_of_day(mask: int) -> list[int]:
    return sorted({i % 24 for i in range(HOURS_OF_WEEK) if mask >> i & 1})


def _days(mask: int) -> set[int]:
    return {i // 24 for i in range(HOURS_OF_WEEK) if mask >> i & 1}


def longest_gap(hours: list[int]) -> int:
    """The longest run of hours of the day (circular) with no bin in `hours`, plus one: 24 for one hour."""
    if not hours:
        return 24
    return max(((hours[(i + 1) % len(hours)] - h) % 24 or 24) for i, h in enumerate(hours))


def bite_arc(bites: int) -> tuple[int, int]:
    """The local hours [start, start + length) that hold every hour the block bit at (the complement of its longest gap)."""
    hours = _hours_of_day(bites)
    if not hours:
        return 0, 24
    gaps = [((hours[(i + 1) % len(hours)] - h) % 24 or 24, i) for i, h in enumerate(hours)]
    gap, i = max(gaps)
    start = hours[(i + 1) % len(hours)]
    return start, 24 - gap + 1


def continuous(bites: int, max_gap: timedelta) -> bool:
    """It bit around the clock: no stretch of the day longer than `max_gap` without a bite."""
    return longest_gap(_hours_of_day(bites)) <= max_gap / timedelta(hours=1)


def weekends_off(bites: int, clean: int) -> bool:
    """It bit on weekdays only, and clean data was seen on a weekend day during its hours."""
    if _days(bites) & WEEKEND or not _days(bites):
        return False
    start, length = bite_arc(bites)
    bite_hours = {(start + k) % 24 for k in range(length)}
    return any(clean >> i & 1 and i // 24 in WEEKEND and i % 24 in bite_hours for i in range(HOURS_OF_WEEK))


def pattern(zone: ZoneInfo, bites: int, clean: int, max_gap: timedelta,
            last_blocked: datetime | None, last_clean: datetime | None) -> Pattern:
    start, length = bite_arc(bites)
    daily = not continuous(bites, max_gap)
    return Pattern(str(zone.key), start if daily else 0, (start + length) % 24 if daily else 0, daily,
                   weekends_off(bites, clean), last_blocked, last_clean)


def covered(bites: int, clean_buckets: list[tuple[datetime, datetime, int]], zone: ZoneInfo, min_valid: int,
            now: datetime) -> bool:
    """Clean data covers one whole occurrence of the hours the block bit at, on a day it would bite
    (a weekday, unless it was seen biting on a weekend), after its last showing: `clean_buckets` are
    (start, end, valid) of the clean data since then, in order; at least `min_valid` inside."""
    if not clean_buckets:
        return False
    start_hour, length = bite_arc(bites)
    weekdays_only = not (_days(bites) & WEEKEND)
    first = clean_buckets[0][0].astimezone(zone)
    day = first.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    while True:
        occurrence = (day + timedelta(hours=start_hour)).astimezone(timezone.utc)
        end = occurrence + timedelta(hours=length)
        if end > now:
            return False
        if occurrence >= clean_buckets[0][0] and not (weekdays_only and day.weekday() in WEEKEND):
            inside = [valid for s, e, valid in clean_buckets if occurrence <= s and e <= end]
            if sum(inside) >= min_valid:
                return True
        day = (day + timedelta(days=1, hours=3)).replace(hour=0)  # next local day, across DST changes
