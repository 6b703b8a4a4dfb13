"""The IODA API as a Source: a country's and its networks' outage alerts, as `OutageAlert`s for bot/outage.py.

`observe()` asks two things per country and cycle, whatever the number of watchers: the country's
alerts and its networks' (`relatedTo=country/CC`). Alerts exist only at level changes, so the first
look at a country goes back `LOOKBACK` (an outage that began days ago is still on); later ones go
back to the previous answer, with an overlap the detector drops. `history()` feeds the backtest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import aiohttp

from bot.outage import OutageAlert
from bot.sources.base import country_code
from bot.sources.http import HttpSource, JsonClient
from bot.sources.ioda import api

log = logging.getLogger("bot.sources.ioda")

LOOKBACK = timedelta(days=7)  # a country's first look: IODA's events look 14 days back, a week is its prediction's span
OVERLAP = timedelta(hours=2)  # alerts can be published late (watchtower holds one until its condition has lasted)


class IodaSource(HttpSource):
    """IODA's outage alerts as a source. One aiohttp session for its life (`async with`)."""

    name = "IODA"

    def __init__(
        self,
        base_url: str,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 30,
        retries: int = 4,
        backoff: float = 1.0,
        sleep: Callable[[float], Any] = asyncio.sleep,
        max_retry_after: float = 120.0,
    ):
        self.client = JsonClient(
            "IODA", base_url, log, session=session, user_agent="blockwatch (internet outage alerts bot)",
            timeout=timeout, retries=retries, backoff=backoff, sleep=sleep, max_retry_after=max_retry_after,
        )
        self._answered: dict[str, datetime] = {}  # country → the `until` of its last full answer

    async def observe(self, country: str, platforms: Iterable[str], now: datetime) -> list[OutageAlert]:
        """The country's and its networks' alerts up to `now` (two requests); SourceError when they cannot be had."""
        cc = country_code(country)
        last = self._answered.get(cc)
        since = now - LOOKBACK if last is None else min(last, now) - OVERLAP
        found = await self._window(cc, since, now)
        self._answered[cc] = now
        return found

    async def snapshot(self, country: str, platforms: Iterable[str], now: datetime) -> list[OutageAlert]:
        """The country's alerts of the `LOOKBACK` before `now`, leaving the live poll's window alone."""
        return await self._window(country_code(country), now - LOOKBACK, now)

    async def history(self, country: str, platforms: Iterable[str], since: date, until: date) -> list[OutageAlert]:
        """The alerts of [since, until) and of the `LOOKBACK` before it, so an outage already on at `since` shows."""
        cc = country_code(country)
        start = datetime.combine(since, time(), tzinfo=timezone.utc)
        end = datetime.combine(until, time(), tzinfo=timezone.utc) - timedelta(seconds=1)
        return [a for a in await self._window(cc, start - LOOKBACK, end) if a.time <= end]

    async def _window(self, cc: str, since: datetime, until: datetime) -> list[OutageAlert]:
        found = await api.alerts(self.client, cc, since, until, networks=False)
        return found + await api.alerts(self.client, cc, since, until, networks=True)
