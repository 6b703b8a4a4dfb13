"""The page that shows a country's platform over a stretch of time, from the source that measures it:
OONI Explorer's MAT chart for the blocking platforms, IODA's dashboard for the internet itself.
Alerts and status replies take it from here."""

from __future__ import annotations

from datetime import date, datetime

from bot import catalog
from bot.sources.ioda.dashboard import dashboard_link
from bot.sources.ooni import explorer


def chart_link(country: str, platform: str, since: datetime | date | None, until: datetime | date) -> str:
    if catalog.PLATFORMS[platform].source == "ioda":
        return dashboard_link("country", country.upper(), since if since is not None else until, until)
    return explorer.chart_link(country, platform, since, until)
