"""The OONI API as a Source: counts per platform, network (ASN) and time bucket, as `Observation`s.

`OoniSource.observe()` is the live poll of one country (bot/sources/ooni/live.py, its plan and
budget); `OoniSource.history()` feeds `blockwatch backtest` (history.py). Both return Observations
(bot/observations.py) whose evidence are OONI Explorer links (explorer.py), and nothing else: the
detector decides. HTTP, retries and faults: bot/sources/http.py; the requests: api.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from typing import Any

import aiohttp

from bot import catalog
from bot.observations import Observation
from bot.sources.base import country_code
from bot.sources.http import HttpSource, JsonClient
from bot.sources.ooni.api import utc
from bot.sources.ooni.history import history
from bot.sources.ooni.live import CountryPoll, Plan, observe_country

log = logging.getLogger("bot.sources.ooni")


class OoniSource(HttpSource):
    """The OONI API as a measurement source. One aiohttp session for its life (`async with`)."""

    name = "OONI"

    def __init__(
        self,
        base_url: str,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 30,
        retries: int = 4,
        backoff: float = 1.0,
        sleep: Callable[[float], Any] = asyncio.sleep,
        budget: int = 3,
        detail_ttl: timedelta = timedelta(hours=1),
        max_retry_after: float = 120.0,
        detail_min_signs: int = 2,
    ):
        self.client = JsonClient(
            "OONI", base_url, log, session=session, user_agent="blockwatch (OONI alerts bot)", timeout=timeout,
            retries=retries, backoff=backoff, sleep=sleep, max_retry_after=max_retry_after,
        )
        self.plan = Plan(budget=budget, detail_ttl=detail_ttl, detail_min_signs=detail_min_signs)
        self._countries: dict[str, CountryPoll] = {}

    async def observe(self, country: str, platforms: Iterable[str], now: datetime) -> list[Observation]:
        """One poll of one country: today's (and, once a day, yesterday's) counts per platform and network.

        Raises SourceError when the counts cannot be had; missing evidence or method does not fail it.
        """
        cc = country_code(country)
        poll = self._countries.setdefault(cc, CountryPoll())
        return await observe_country(self.client, self.plan, poll, cc, _platform_names(platforms), utc(now))

    async def snapshot(self, country: str, platforms: Iterable[str], now: datetime) -> list[Observation]:
        """One poll of a country with a memory of its own, within the same budget: /status of what nobody watches."""
        return await observe_country(self.client, self.plan, CountryPoll(), country_code(country), _platform_names(platforms), utc(now))

    async def history(self, country: str, platforms: Iterable[str], since: date, until: date) -> list[Observation]:
        """Hourly Observations of [since, until) (`until` exclusive, like the API), each with its hour's data only."""
        return await history(self.client, country_code(country), _platform_names(platforms), since, until)


_unknown_platforms: set[str] = set()  # warned about once, not every poll


def _platform_names(platforms: Iterable[str]) -> list[str]:
    names = []
    for name in platforms:
        platform = catalog.find_platform(name)
        if platform is None:
            if name not in _unknown_platforms:
                _unknown_platforms.add(name)
                log.warning("ignoring unknown platform %r", name)
        elif platform.name not in names:
            names.append(platform.name)
    return sorted(names)
