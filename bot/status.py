"""The current status of a country and platform as users see it, from the detector's stored state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot import catalog

EXPLORER = "https://explorer.ooni.org"


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
    evidence: tuple[str, ...] = ()  # explorer links
    checked: datetime | None = None  # the newest data the detector saw


def measurement_link(uid: str) -> str:
    return f"{EXPLORER}/m/{uid}"


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
        evidence=tuple(measurement_link(uid) for uid in state.evidence[:3]),
        checked=state.last_data,
    )


def load_statuses(db, country: str, platforms) -> list[PlatformStatus]:
    """Statuses for several platforms of one country (runs on the DB thread)."""
    try:
        from storage.states import load_state
    except ImportError:  # the detector's storage is not installed in this build
        return [platform_status(country, platform, None) for platform in platforms]
    return [platform_status(country, platform, load_state(db, country, platform)) for platform in platforms]
