"""Times as the detector's JSON writes them: UTC ISO 8601 with a Z."""

from __future__ import annotations

from datetime import datetime, timezone


def iso(dt: datetime | None, seconds: bool = False) -> str | None:
    """UTC ISO 8601 with a Z, e.g. 2022-09-14T12:00:00Z (microseconds only when there are some)."""
    if dt is None:
        return None
    dt = dt.astimezone(timezone.utc)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond and not seconds:
        text += f".{dt.microsecond:06d}"
    return text + "Z"


def parse_iso(text: str | None) -> datetime | None:
    if text is None:
        return None
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
