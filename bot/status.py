"""The current status of a country and platform as users see it, from the detector's stored state,
and the OONI Explorer links (a measurement, the MAT chart) that alerts and status replies share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from urllib.parse import urlencode

from bot import catalog
from storage.states import load_state

EXPLORER = "https://explorer.ooni.org"
# MAT charts before a block started, so the change shows against a normal stretch
CHART_LEAD = timedelta(days=3)
# every domain the poller measures, as long as the link stays shareable (browsers and Telegram take ~2,000)
CHART_DOMAINS_CHARS = 1500


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
    chart: str | None = None  # the MAT chart of the block (blocked only)


def measurement_link(uid: str) -> str:
    return f"{EXPLORER}/m/{uid}"


def chart_link(country: str, platform: str, since: datetime | date | None, until: datetime | date | None) -> str:
    """OONI Explorer's MAT chart of the platform's measurements in the country, one row per network (ASN).

    Parameters as Explorer's own links use them: probe_cc, test_name (the platform's app test, else
    web_connectivity with its domains), since/until as dates (until exclusive), daily columns.
    """
    spec = catalog.PLATFORMS[platform]
    today = datetime.now(timezone.utc).date()
    end = _day(until) or today
    start = (_day(since) or end) - CHART_LEAD
    params = {"probe_cc": country.upper()}
    if spec.tests:
        params["test_name"] = spec.tests[0]
    else:
        params["test_name"] = "web_connectivity"
        domains = catalog.platform_domains(platform, country)
        while len(",".join(domains)) > CHART_DOMAINS_CHARS:
            domains = domains[:-1]
        params["domain"] = ",".join(domains)
    params.update(
        since=start.isoformat(),
        until=(end + timedelta(days=1)).isoformat(),
        time_grain="day",
        axis_x="measurement_start_day",
        axis_y="probe_asn",
    )
    return f"{EXPLORER}/chart/mat?{urlencode(params)}"


def _day(value: datetime | date | None) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).astimezone(timezone.utc).date()
    return value


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
        chart=chart_link(country.code, platform.name, state.blocked_since, state.last_data),
    )


def load_statuses(db, country: str, platforms) -> list[PlatformStatus]:
    """Statuses for several platforms of one country (runs on the DB thread)."""
    return [platform_status(country, platform, load_state(db, country, platform)) for platform in platforms]
