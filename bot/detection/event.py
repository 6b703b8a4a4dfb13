"""`Event`: what the detector tells watchers about a (country, platform), and its JSON line (CONTRACT.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from bot.detection.isotime import iso, parse_iso
from bot.detection.pattern import Pattern

ADDED, CLEARED = "added", "cleared"


class Change(NamedTuple):
    """One network joining (`added`) or leaving (`cleared`) a block, and when its data showed it."""

    asn: int
    kind: str  # ADDED | CLEARED
    time: datetime | None  # added: its block's first anomalous data; cleared: the end of its last

    def to_dict(self) -> dict[str, Any]:
        return {"asn": self.asn, "change": self.kind, "time": iso(self.time)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Change:
        return cls(int(d["asn"]), d["change"], parse_iso(d.get("time")))


def pattern_to_dict(p: Pattern | None) -> dict[str, Any] | None:
    if p is None:
        return None
    return {**p._asdict(), "last_blocked": iso(p.last_blocked), "last_clean": iso(p.last_clean)}


def pattern_from_dict(d: dict[str, Any] | None) -> Pattern | None:
    if not d:
        return None
    return Pattern(d["zone"], int(d["start_hour"]), int(d["end_hour"]), bool(d["daily"]), bool(d["weekends_off"]),
                   parse_iso(d.get("last_blocked")), parse_iso(d.get("last_clean")))


@dataclass(frozen=True)
class Event:
    """A change worth telling watchers about, for one (country, platform)."""

    kind: str  # "blocked" | "unblocked" | "changed"
    country: str
    platform: str
    time: datetime  # the `now` of the detect call that found it
    asns: tuple[int, ...]  # blocked networks after the event (unblocked: every one blocked during the period)
    added: tuple[int, ...] = ()
    cleared: tuple[int, ...] = ()
    method: str | None = None  # "dns" | "tcp" | "tls" | "http" | None
    since: datetime | None = None  # when the block started (first anomalous bucket)
    anomalies: int = 0  # anomalous + confirmed measurements of the networks in `asns` over their blocks
    measurements: int = 0  # valid measurements over the same networks and stretches
    confirmed: bool = False  # OONI confirmed it (block page), rather than "signs of blocking"
    intermittent: bool = False
    evidence: tuple[str, ...] = ()  # the source's evidence links, a few per network
    duration: timedelta | None = None  # unblocked: from `since` to the end of the last anomalous data
    ended: datetime | None = None  # unblocked: end of the last anomalous data
    changes: tuple[Change, ...] = ()  # changed: each network added or cleared, with its time, oldest first
    pattern: Pattern | None = None  # an intermittent block's rhythm, when the data shows it

    def to_json(self) -> dict[str, Any]:
        """The backtest's JSON line (CONTRACT.md): the contract's keys first, in its order, then extras."""
        return {
            "time": iso(self.time, seconds=True),
            "country": self.country,
            "platform": self.platform,
            "kind": self.kind,
            "asns": list(self.asns),
            "method": self.method,
            "evidence": list(self.evidence),
            "added": list(self.added),
            "cleared": list(self.cleared),
            "since": iso(self.since),
            "anomalies": self.anomalies,
            "measurements": self.measurements,
            "confirmed": self.confirmed,
            "intermittent": self.intermittent,
            "duration_seconds": None if self.duration is None else int(self.duration.total_seconds()),
            "ended": iso(self.ended),
            "changes": [c.to_dict() for c in self.changes],
            "pattern": pattern_to_dict(self.pattern),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Event:
        """The Event back from `to_json()` (e.g. a stored row); unknown keys are ignored."""
        duration = d.get("duration_seconds")
        return cls(
            kind=d["kind"],
            country=d["country"],
            platform=d["platform"],
            time=parse_iso(d["time"]),
            asns=tuple(d.get("asns", ())),
            added=tuple(d.get("added", ())),
            cleared=tuple(d.get("cleared", ())),
            method=d.get("method"),
            since=parse_iso(d.get("since")),
            anomalies=int(d.get("anomalies", 0)),
            measurements=int(d.get("measurements", 0)),
            confirmed=bool(d.get("confirmed", False)),
            intermittent=bool(d.get("intermittent", False)),
            evidence=tuple(d.get("evidence", ())),
            duration=None if duration is None else timedelta(seconds=duration),
            ended=parse_iso(d.get("ended")),
            changes=tuple(Change.from_dict(c) for c in d.get("changes", ())),
            pattern=pattern_from_dict(d.get("pattern")),
        )
