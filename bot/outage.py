"""Internet outages from IODA's own alerts: pure, like bot/detector.py (no network, database or clock).

IODA's detector (watchtower) raises an alert per signal — a country's or a network's BGP (visible
/24s), active probing (`ping-slash24`, /24s that answer) or telescope (`merit-nt`) — each time its
level changes: `critical` when the value falls below its threshold of the past week's prediction,
`normal` when it is back. `detect_outage` folds those alerts into an `OutageState` per country and
raises an `outage` event when a signal has stayed critical for `HOLD`, and a `restored` event when
every signal of the outage is back to normal, with how long it lasted.

The threshold: a signal counts once IODA has held it `critical` for an hour without closing it —
warnings do not count (watchtower itself emits only critical/normal; warning is a UI level), and BGP
flaps and probing gaps that IODA closes within the hour are noise no journalist should be woken for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

CRITICAL, WARNING, NORMAL = "critical", "warning", "normal"
# The three signals the alerts name, in the order they are shown; IODA's other datasources (Google
# traffic, latency) are not outage signals here.
SIGNALS = ("bgp", "ping-slash24", "merit-nt")
HOLD = timedelta(hours=1)
PLATFORM = "internet"  # the catalog platform whose source is IODA
STATE_VERSION = 1


@dataclass(frozen=True)
class OutageAlert:
    """One IODA alert: a signal of a country (`entity` "country", code "UG") or of one of its
    networks ("asn", "20294") changed level at `time`. The source builds `link` (IODA's dashboard)."""

    country: str
    entity: str  # "country" | "asn"
    code: str
    datasource: str  # "bgp" | "ping-slash24" | "merit-nt"
    time: datetime  # UTC, aware
    level: str  # "critical" | "warning" | "normal"
    value: float | None = None
    history: float | None = None  # IODA's prediction of the value: "normal"
    link: str = ""

    @property
    def drop(self) -> float | None:
        """How far below normal: 0.85 when the value is 15 % of IODA's prediction."""
        if self.value is None or not self.history or self.history <= 0:
            return None
        return max(0.0, min(1.0, 1 - self.value / self.history))


@dataclass
class SignalState:
    level: str = NORMAL
    since: datetime | None = None  # when the current level began
    last: datetime | None = None  # the newest alert folded in: older or equal ones were seen already
    drop: float | None = None  # deepest drop of the current critical stretch
    link: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "since": _iso(self.since), "last": _iso(self.last), "drop": self.drop, "link": self.link}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SignalState:
        return cls(d.get("level", NORMAL), _parse(d.get("since")), _parse(d.get("last")), d.get("drop"), d.get("link", ""))


@dataclass
class OutageState:
    """What the outage detector knows of one country between polls (stored as JSON)."""

    country: str
    signals: dict[str, SignalState] = field(default_factory=dict)  # "country/UG/bgp", "asn/20294/bgp" → state
    since: datetime | None = None  # an outage is on: when its first signal went critical
    asns: tuple[int, ...] = ()  # networks IODA saw down during it
    drops: dict[str, float | None] = field(default_factory=dict)  # "country:bgp", "asn:bgp" → deepest drop during it
    links: tuple[str, ...] = ()  # dashboard links of the alerts behind it
    checked: datetime | None = None  # the `now` of the last poll that had IODA's answer

    @property
    def on(self) -> bool:
        return self.since is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION, "country": self.country,
            "signals": {key: s.to_dict() for key, s in sorted(self.signals.items())},
            "since": _iso(self.since), "asns": list(self.asns), "drops": dict(self.drops),
            "links": list(self.links), "checked": _iso(self.checked),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OutageState:
        return cls(
            d["country"], {key: SignalState.from_dict(s) for key, s in d.get("signals", {}).items()},
            _parse(d.get("since")), tuple(d.get("asns", ())), dict(d.get("drops", {})), tuple(d.get("links", ())),
            _parse(d.get("checked")),
        )


@dataclass(frozen=True)
class OutageEvent:
    """An outage began (`outage`) or ended (`restored`) in a country, as the alerts and the backtest show it."""

    kind: str  # "outage" | "restored"
    country: str
    time: datetime  # the `now` of the detect call that found it
    since: datetime  # when its first signal went critical
    asns: tuple[int, ...] = ()  # networks IODA saw down (empty: only country-wide signals)
    signals: tuple[tuple[str, float | None], ...] = ()  # (datasource, deepest drop), in SIGNALS order
    evidence: tuple[str, ...] = ()  # IODA dashboard links
    ended: datetime | None = None  # restored: the time of the alert that closed it
    platform: str = PLATFORM
    method: None = None

    @property
    def duration(self) -> timedelta | None:
        return None if self.ended is None else self.ended - self.since

    def to_json(self) -> dict[str, Any]:
        """The backtest's JSON line (CONTRACT.md): the contract's keys first, in its order, then extras."""
        return {
            "time": _iso(self.time), "country": self.country, "platform": self.platform, "kind": self.kind,
            "asns": list(self.asns), "method": None, "evidence": list(self.evidence),
            "since": _iso(self.since), "ended": _iso(self.ended),
            "duration_seconds": None if self.duration is None else int(self.duration.total_seconds()),
            "signals": [{"datasource": name, "drop": drop} for name, drop in self.signals],
        }


def detect_outage(
    state: OutageState | None, alerts: list[OutageAlert], now: datetime, hold: timedelta = HOLD, *, country: str
) -> tuple[OutageState, list[OutageEvent]]:
    """Fold IODA's alerts (any order, repeats allowed; those after `now` wait) into the country's state.

    Alerts are replayed in time order and the outage rule checked before each one and at `now`, so an
    outage that began and ended between two polls still gives both events. An empty list changes
    nothing: only IODA's own `normal` alert ends an outage.
    """
    state = state if state is not None else OutageState(country)
    events: list[OutageEvent] = []
    fresh = sorted(
        (a for a in alerts if a.datasource in SIGNALS and a.time <= now and a.country == country),
        key=lambda a: (a.time, a.level != NORMAL),  # at one instant, recoveries first
    )
    for alert in fresh:
        key = f"{alert.entity}/{alert.code}/{alert.datasource}"
        signal = state.signals.setdefault(key, SignalState())
        if signal.last is not None and alert.time <= signal.last:
            continue  # seen in an earlier poll (each poll's window overlaps the last)
        _check(state, alert.time, hold, now, events)
        signal.last = alert.time
        if alert.level == CRITICAL:
            if signal.level != CRITICAL:
                signal.level, signal.since, signal.drop = CRITICAL, alert.time, alert.drop
            elif alert.drop is not None:
                signal.drop = max(signal.drop or 0.0, alert.drop)
            signal.link = alert.link or signal.link
        elif alert.level == NORMAL:
            signal.level, signal.since, signal.drop = NORMAL, alert.time, None
            signal.link = alert.link or signal.link
            if state.on and not any(s.level == CRITICAL for s in state.signals.values()):
                events.append(_restored(state, now, alert.time, alert.link))
        elif signal.level != CRITICAL:  # a warning: below normal, not (yet) an outage
            signal.level, signal.since = WARNING, alert.time
    _check(state, now, hold, now, events)
    state.checked = now
    return state, events


def _check(state: OutageState, at: datetime, hold: timedelta, now: datetime, events: list[OutageEvent]) -> None:
    """At `at`: open the outage when a signal has been critical for `hold`; while it lasts, gather its networks and drops."""
    down = {key: s for key, s in state.signals.items() if s.level == CRITICAL and s.since is not None and at - s.since >= hold}
    if not down:
        return
    opening = not state.on
    if opening:
        state.since = min(s.since for s in down.values())
        state.asns, state.drops, state.links = (), {}, ()
    asns = set(state.asns)
    for key, s in down.items():
        entity, code, datasource = key.split("/", 2)
        if entity == "asn" and code.isdigit():
            asns.add(int(code))
        scoped = f"{entity}:{datasource}"  # the country's drops are named where it has any, else its networks'
        old = state.drops.get(scoped)
        state.drops[scoped] = s.drop if old is None else old if s.drop is None else max(old, s.drop)
        if s.link and s.link not in state.links:
            state.links += (s.link,)
    state.asns = tuple(sorted(asns))
    if opening:
        events.append(OutageEvent(
            "outage", state.country, now, state.since, state.asns, signals_of(state), state.links[:3],
        ))


def _restored(state: OutageState, now: datetime, ended: datetime, link: str) -> OutageEvent:
    assert state.since is not None
    links = tuple(dict.fromkeys((*state.links[:2], *((link,) if link else ()))))
    event = OutageEvent("restored", state.country, now, state.since, state.asns, signals_of(state), links, ended=ended)
    state.since, state.asns, state.drops, state.links = None, (), {}, ()
    return event


def signals_of(state: OutageState) -> tuple[tuple[str, float | None], ...]:
    """(datasource, deepest drop) of the country's signals that went down, else of its networks'."""
    scope = "country" if any(k.startswith("country:") for k in state.drops) else "asn"
    return tuple((name, state.drops[f"{scope}:{name}"]) for name in SIGNALS if f"{scope}:{name}" in state.drops)


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(text: str | None) -> datetime | None:
    return None if not text else datetime.fromisoformat(text.replace("Z", "+00:00"))
