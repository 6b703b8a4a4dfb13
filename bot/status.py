"""The current status of a country and platform as users see it: the read model of the detectors' stored states.

One picture: while IODA sees the country's internet down, an OONI platform with no measurements
since the outage began reads "no measurements: internet outage since …" — never unblocked or
unknown — and its own state shows again once measurements come back. Links come from the sources
(bot/sources/links.py; evidence links are in the states as the sources gave them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot import catalog
from bot.detection.pattern import Pattern
from bot.outage import OutageState, signals_of
from bot.sources.links import chart_link
from storage.outages import load_outage
from storage.states import load_state

@dataclass(frozen=True)
class PlatformStatus:
    country: catalog.Country
    platform: catalog.Platform
    state: str  # "blocked" | "ok" | "unknown" (not asked yet) | "no_data" (asked: no recent measurements) | "outage" (internet) | "no_measurements" (OONI during an outage)
    networks: tuple[tuple[int, str | None], ...] = ()  # blocked ASNs with their names
    since: datetime | None = None
    method: str | None = None
    intermittent: bool = False
    pattern: Pattern | None = None  # an intermittent block's rhythm, when the data shows it
    confirmed: bool = False
    anomalies: int = 0
    measurements: int = 0
    evidence: tuple[str, ...] = ()  # evidence links, as the source gave them
    checked: datetime | None = None  # the newest data the detector saw
    chart: str | None = None  # the chart of the block or outage on the source's site
    signals: tuple[tuple[str, float | None], ...] = ()  # outage: IODA's signals down, with how far below normal


def platform_status(country_code: str, platform_name: str, state, outage: OutageState | None = None) -> PlatformStatus:
    """`state` is the detector's BlockState for the pair, or None when the poller has not seen it yet;
    `outage` the country's OutageState (IODA), or None when IODA was not asked yet."""
    country = catalog.find_country(country_code)
    platform = catalog.PLATFORMS[platform_name]
    if platform.source == "ioda":
        return _internet_status(country, platform, outage)
    if outage is not None and outage.on and not _measured_since(state, outage.since):
        return PlatformStatus(country, platform, "no_measurements", since=outage.since)
    if state is None:
        return PlatformStatus(country, platform, "unknown")
    if getattr(state, "last_data", None) is None:  # the source was asked and had nothing for this pair
        return PlatformStatus(country, platform, "no_data")
    asns = tuple(state.blocked_asns)
    if not asns:
        return PlatformStatus(country, platform, "ok", checked=state.last_data)
    return PlatformStatus(
        country,
        platform,
        "blocked",
        networks=tuple((asn, catalog.network_name(asn)) for asn in asns),
        since=state.blocked_since,
        method=state.method,
        intermittent=state.intermittent,
        pattern=state.pattern,
        confirmed=getattr(state, "confirmed", False),
        anomalies=state.anomalies,
        measurements=state.measurements,
        evidence=tuple(state.evidence[:3]),
        checked=state.last_data,
        chart=chart_link(country.code, platform.name, state.blocked_since, state.last_data),
    )


def _internet_status(country: catalog.Country, platform: catalog.Platform, outage: OutageState | None) -> PlatformStatus:
    if outage is None or outage.checked is None:
        return PlatformStatus(country, platform, "unknown")
    if not outage.on:
        return PlatformStatus(country, platform, "ok", checked=outage.checked)
    return PlatformStatus(
        country, platform, "outage", networks=tuple((asn, catalog.network_name(asn)) for asn in outage.asns),
        since=outage.since, evidence=outage.links[:3], checked=outage.checked, signals=signals_of(outage),
        chart=chart_link(country.code, platform.name, outage.since, outage.checked),
    )


def _measured_since(state, since) -> bool:
    """Whether the detector got measurements that began at or after `since` (pieces of a filling day
    start at the sighting before their growth, so a piece with data after `since` starts there)."""
    if state is None:
        return False
    return any(b.valid and b.start >= since for net in state.networks.values() for b in net.buckets.values())


def statuses_from(country: str, platforms, states, outage: OutageState | None) -> list[PlatformStatus]:
    """Statuses for several platforms of one country from their states (platform → BlockState or None)."""
    return [platform_status(country, platform, states.get(platform), outage) for platform in platforms]


def load_statuses(db, country: str, platforms) -> list[PlatformStatus]:
    """Statuses for several platforms of one country, as stored (runs on the DB thread)."""
    return statuses_from(country, platforms, {p: load_state(db, country, p) for p in platforms}, load_outage(db, country))
