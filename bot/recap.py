"""Looking back, pure: the bot's own events (their stored JSON, storage/events.py) turned into what
/history, the daily digest and a mute's summary show. No database, no clock: callers pass `now`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot import catalog
from bot.detection.event import pattern_from_dict
from bot.detection.pattern import Pattern

STARTS = ("blocked", "outage")  # IODA's outage/restored read like OONI's blocked/unblocked
ENDS = ("unblocked", "restored")


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


@dataclass(frozen=True)
class Block:
    """One block of a platform, from its `blocked` event to its `unblocked` one (or still going on)."""

    country: catalog.Country
    platform: catalog.Platform
    start: datetime
    end: datetime | None  # None: ongoing
    duration: timedelta
    networks: tuple[tuple[int, str | None], ...]  # every network blocked at some point, with its name
    method: str | None
    intermittent: bool
    pattern: Pattern | None = None  # its rhythm, as the newest of its events that saw one named it


def blocks(events: list[dict], now: datetime) -> list[Block]:
    """The blocks the events describe, newest first. Events are event JSON dicts in any order."""
    open_: dict[tuple[str, str], dict] = {}
    found: list[Block] = []

    def close(key, end: datetime | None, duration: timedelta | None = None) -> None:
        b = open_.pop(key)
        start = b["start"]
        found.append(Block(
            catalog.find_country(key[0]) or catalog.Country(key[0], key[0]), catalog.PLATFORMS[key[1]], start, end,
            duration if duration is not None else (end or now) - start,
            tuple((asn, catalog.network_name(asn)) for asn in sorted(b["asns"])), b["method"], b["intermittent"],
            b["pattern"],
        ))

    for event in sorted(events, key=lambda e: (e["time"], e.get("id", 0))):
        key = (event["country"], event["platform"])
        if key[1] not in catalog.PLATFORMS:
            continue
        kind = event["kind"]
        if kind in STARTS:
            if key in open_:
                close(key, _time(event["time"]))
            open_[key] = {"start": _time(event.get("since")) or _time(event["time"]), "asns": set(event.get("asns", ())),
                          "method": event.get("method"), "intermittent": bool(event.get("intermittent")),
                          "pattern": pattern_from_dict(event.get("pattern"))}
        elif key in open_:
            b = open_[key]
            b["asns"].update(event.get("asns", ()))
            b["method"] = event.get("method") or b["method"]
            b["intermittent"] = b["intermittent"] or bool(event.get("intermittent"))
            b["pattern"] = pattern_from_dict(event.get("pattern")) or b["pattern"]
            if kind in ENDS:
                seconds = event.get("duration_seconds")
                close(key, _time(event.get("ended")) or _time(event["time"]),
                      timedelta(seconds=seconds) if seconds is not None else None)
    for key in list(open_):
        close(key, None)
    return sorted(found, key=lambda b: b.start, reverse=True)


@dataclass(frozen=True)
class Line:
    """One event as a line of a digest or a mute's summary."""

    time: datetime
    kind: str
    country: catalog.Country
    platform: catalog.Platform
    networks: tuple[tuple[int, str | None], ...]
    duration: timedelta | None


def lines(events: list[dict], watched: set[tuple[str, str]]) -> list[Line]:
    """The events of the watched (country, platform) pairs, oldest first."""
    out = []
    for event in sorted(events, key=lambda e: (e["time"], e.get("id", 0))):
        if (event["country"], event["platform"]) not in watched or event["platform"] not in catalog.PLATFORMS:
            continue
        asns = event.get("asns") or ()
        if event["kind"] == "changed":
            asns = tuple(event.get("added") or ()) or asns
        seconds = event.get("duration_seconds")
        out.append(Line(
            _time(event["time"]), event["kind"],
            catalog.find_country(event["country"]) or catalog.Country(event["country"], event["country"]),
            catalog.PLATFORMS[event["platform"]], tuple((asn, catalog.network_name(asn)) for asn in asns),
            timedelta(seconds=seconds) if seconds is not None else None,
        ))
    return out
