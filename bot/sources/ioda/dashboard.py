"""IODA dashboard links (ioda-ui routes `/:entityType/:entityCode?from=<unix>&until=<unix>`, the form
IODA's own posts use): only the IODA source hands these out."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

DASHBOARD = "https://ioda.inetintel.cc.gatech.edu"
MARGIN = timedelta(hours=12)  # the dashboard shows the drop against the hours around it


def dashboard_link(entity: str, code: str, since: datetime | date, until: datetime | date) -> str:
    """The dashboard of a country ("country", "UG") or network ("asn", "20294") over [since, until], with a margin."""
    start, end = _moment(since) - MARGIN, _moment(until) + MARGIN
    return f"{DASHBOARD}/{entity}/{code}?from={int(start.timestamp())}&until={int(end.timestamp())}"


def _moment(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return datetime.combine(value, time(), tzinfo=timezone.utc)
