"""A chat's clock, pure: its time zone (`/timezone`), quiet hours (`/quiet`) and daily digest time
(`/digest`) as typed, checked and applied — no database, no clock of its own (pass `now`).

A zone is stored as its name: an IANA name ("Asia/Baku", from the standard library's zoneinfo;
tzdata supplies the database where the system has none) or a fixed offset written "UTC+04:00".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

UTC_NAME = "UTC"
_OFFSET = re.compile(r"^(?:utc|gmt)?\s*([+\-−])\s*(\d{1,2})(?::?(\d{2}))?$", re.I)
_CLOCK = re.compile(r"^(\d{1,2})[:.h](\d{2})$|^(\d{1,2})$")


class BadClock(ValueError):
    """Input that names no zone, time or window; `kind` says which (the errors template explains it)."""

    def __init__(self, kind: str, text: str):
        super().__init__(kind)
        self.kind, self.text = kind, text


@cache
def _zone_names() -> dict[str, str]:
    """lower-case name or city ("asia/baku", "baku") → the IANA name; a city shared by two zones is left out."""
    names: dict[str, str] = {}
    cities: dict[str, list[str]] = {}
    for name in available_timezones():
        names[name.lower()] = name
        if "/" in name and not name.startswith("Etc/"):
            cities.setdefault(name.rsplit("/", 1)[1].lower().replace("_", " "), []).append(name)
    for city, zones in cities.items():
        if len(zones) == 1:
            names.setdefault(city, zones[0])
    return names


def parse_zone(text: str) -> str:
    """"Asia/Baku", "baku", "UTC+4", "+04:00", "GMT-3:30", "UTC" → the name stored for it; BadClock otherwise."""
    cleaned = text.strip()
    if cleaned.upper() in ("UTC", "GMT", "Z", "UTC+0", "UTC-0", "+0", "0"):
        return UTC_NAME
    if match := _OFFSET.match(cleaned):
        sign = -1 if match.group(1) in "-−" else 1
        hours, minutes = int(match.group(2)), int(match.group(3) or 0)
        if minutes >= 60 or hours * 60 + minutes > 14 * 60 or (sign < 0 and hours * 60 + minutes > 12 * 60):
            raise BadClock("unknown_zone", text)
        if hours == minutes == 0:
            return UTC_NAME
        return f"UTC{'+' if sign > 0 else '-'}{hours:02d}:{minutes:02d}"
    name = _zone_names().get(cleaned.lower().replace("_", " ")) or _zone_names().get(cleaned.lower())
    if name is None:
        raise BadClock("unknown_zone", text)
    return name


@cache
def zone(name: str | None) -> tzinfo:
    """The tzinfo of a stored zone name; UTC for None or a name this system does not know."""
    if not name or name == UTC_NAME:
        return timezone.utc
    if name.startswith("UTC") and len(name) == 9:  # "UTC+04:00"
        sign = -1 if name[3] == "-" else 1
        return timezone(sign * timedelta(hours=int(name[4:6]), minutes=int(name[7:9])))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return timezone.utc


def offset_label(moment: datetime) -> str:
    """The offset of an aware moment as people write it: "UTC", "UTC+4", "UTC+5:30", "UTC−3"."""
    offset = moment.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    if minutes == 0:
        return "UTC"
    sign = "+" if minutes > 0 else "−"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


def parse_clock(text: str) -> time:
    """"09:00", "9:00", "9.30", "21h15", "9" → a time of day; BadClock("bad_time") otherwise."""
    match = _CLOCK.match(text.strip())
    if not match:
        raise BadClock("bad_time", text)
    hours = int(match.group(1) or match.group(3))
    minutes = int(match.group(2) or 0)
    if hours > 23 or minutes > 59:
        raise BadClock("bad_time", text)
    return time(hours, minutes)


@dataclass(frozen=True)
class Window:
    """Quiet hours in local time; `end` may be on the next day (23:00–07:00)."""

    start: time
    end: time

    def contains(self, local: time) -> bool:
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def text(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def parse_window(text: str) -> Window:
    """"23:00-07:00" (also "23-7", "23:00–07:00") → a Window; BadClock("bad_window") otherwise."""
    parts = re.split(r"\s*[-–—]\s*", text.strip())
    if len(parts) != 2:
        raise BadClock("bad_window", text)
    try:
        window = Window(parse_clock(parts[0]), parse_clock(parts[1]))
    except BadClock:
        raise BadClock("bad_window", text) from None
    if window.start == window.end:
        raise BadClock("bad_window", text)
    return window


def stored_window(text: str | None) -> Window | None:
    return parse_window(text) if text else None


def is_quiet(now: datetime, zone_name: str | None, window: str | None) -> bool:
    """Whether `now` falls in the chat's quiet hours, read on the chat's clock."""
    quiet = stored_window(window)
    return quiet is not None and quiet.contains(now.astimezone(zone(zone_name)).time().replace(second=0, microsecond=0))


def local_day(now: datetime, zone_name: str | None) -> date:
    return now.astimezone(zone(zone_name)).date()


def digest_due(now: datetime, zone_name: str | None, at: str | None, last_day: str | None) -> date | None:
    """The local day whose digest is due now (its time has come and it was not queued yet), else None."""
    if not at:
        return None
    local = now.astimezone(zone(zone_name))
    if local.time() < parse_clock(at):
        return None
    today = local.date()
    return None if last_day is not None and last_day >= today.isoformat() else today


MAX_MUTE = timedelta(days=30)
_DURATION = re.compile(r"^(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m(?:in)?)?$", re.I)


def parse_duration(text: str) -> timedelta:
    """"30m", "6h", "2d", "1h30m" → a length of time up to 30 days; BadClock("bad_duration") otherwise."""
    match = _DURATION.match(text.strip())
    if not match or not any(match.groups()):
        raise BadClock("bad_duration", text)
    days, hours, minutes = (int(group or 0) for group in match.groups())
    length = timedelta(days=days, hours=hours, minutes=minutes)
    if not timedelta(minutes=1) <= length <= MAX_MUTE:
        raise BadClock("bad_duration", text)
    return length
