"""OONI Explorer links: a measurement's page and the MAT chart of a platform in a country.

Only the OONI source hands these out (Observation.evidence, `chart_link`): nothing else knows Explorer's address.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from urllib.parse import urlencode

from bot import catalog

EXPLORER = "https://explorer.ooni.org"
# MAT charts before a block started, so the change shows against a normal stretch
CHART_LEAD = timedelta(days=3)
# every domain the poller measures, as long as the link stays shareable (browsers and Telegram take ~2,000)
CHART_DOMAINS_CHARS = 1500


def measurement_link(uid: str) -> str:
    return f"{EXPLORER}/m/{uid}"


def chart_link(country: str, platform: str, since: datetime | date | None, until: datetime | date) -> str:
    """OONI Explorer's MAT chart of the platform's measurements in the country, one row per network (ASN).

    Parameters as Explorer's own links use them: probe_cc, test_name (the platform's app test, else
    web_connectivity with its domains), since/until as dates (until exclusive), daily columns.
    """
    spec = catalog.PLATFORMS[platform]
    end = _day(until)
    start = (_day(since) if since is not None else end) - CHART_LEAD
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


def _day(value: datetime | date) -> date:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).astimezone(timezone.utc).date()
    return value
