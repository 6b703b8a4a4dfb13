"""The current status of a country and platform as users see it: the read model of the detector's stored state.

Links come from the sources (bot/sources/links.py; evidence links are in the state as the source gave them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot import catalog
from bot.sources.links import chart_link
from storage.states import load_state

@dataclass(frozen=True)
class PlatformStatus:
    country: catalog.Country
    platform: catalog.Platform
    state: str  # "blocked" | "ok" | "unknown" (no data yet)
    networks: tuple[tuple[int, str | None], ...] = ()  # blocked ASNs with their names
    since: datetime | None = None
    method: str | None = None
    intermittent: bool = False
    confirmed: bool = False
    anomalies: int = 0
    measurements: int = 0
    evidence: tuple[str, ...] = ()  # evidence links, as the source gave them
    checked: datetime | None = None  # the newest data the detector saw
    chart: str | None = None  # the chart of the block on the source's site (blocked only)


def platform_status(country_code: str, platform_name: str, state) -> PlatformStatus:
    """`state` is the detector's BlockState for the pair, or None when the poller has not seen it yet."""
    country = catalog.find_country(country_code)
    platform = catalog.PLATFORMS[platform_name]
    if state is None or getattr(state, "last_data", None) is None:
        return PlatformStatus(country, platform, "unknown")
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
        confirmed=getattr(state, "confirmed", False),
        anomalies=state.anomalies,
        measurements=state.measurements,
        evidence=tuple(state.evidence[:3]),
        checked=state.last_data,
        chart=chart_link(country.code, platform.name, state.blocked_since, state.last_data),
    )


def load_statuses(db, country: str, platforms) -> list[PlatformStatus]:
    """Statuses for several platforms of one country (runs on the DB thread)."""
    return [platform_status(country, platform, load_state(db, country, platform)) for platform in platforms]
