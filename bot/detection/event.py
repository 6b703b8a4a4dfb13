"""`Event`: what the detector tells watchers about a (country, platform), and its JSON line (CONTRACT.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.detection.isotime import iso, parse_iso


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
        )
