"""/status for any country: what the poller watches comes from the stored states; the rest is fetched
on demand from the same sources (their one HTTP session each), run through the same detectors in
memory — never stored, never alerted — and cached for a poll interval.

Fifty chats asking about one unwatched country at once cost one fetch (they share it while it runs,
then the cache); a fetch costs the OONI source's budget for a country (≤ 3 requests) and IODA's two;
at most `countries_per_interval` countries are fetched per poll interval, past that /status says
"not known yet" until the interval turns — so /status cannot spend OONI's hourly quota.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from bot import catalog
from bot.detector import BlockState, detect
from bot.observations import Observation
from bot.outage import PLATFORM as INTERNET, OutageAlert, OutageState, detect_outage
from bot.sources.base import Source, SourceError
from bot.status import PlatformStatus, statuses_from
from storage.db import Store
from storage.outages import load_outage
from storage.states import load_state
from storage.subscriptions import watched_pairs

log = logging.getLogger(__name__)


@dataclass
class Snapshot:
    """One on-demand look at a country: its platforms' states and its outage state, as of `at`."""

    states: dict[str, BlockState] = field(default_factory=dict)
    outage: OutageState | None = None


class StatusLookup:
    def __init__(
        self,
        store: Store,
        ooni: Source[Observation],
        ioda: Source[OutageAlert] | None,
        interval: float,
        clock: Callable[[], datetime],
        *,
        countries_per_interval: int = 10,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.store, self.ooni, self.ioda = store, ooni, ioda
        self.interval, self.clock, self.monotonic = interval, clock, monotonic
        self.countries_per_interval = countries_per_interval
        self._cache: dict[str, tuple[float, Snapshot]] = {}  # country → (fetched at, snapshot)
        self._running: dict[str, asyncio.Task[Snapshot]] = {}
        self._window: tuple[float, int] = (monotonic(), 0)  # (interval began, countries fetched in it)
        self.fetches = 0  # on-demand fetches made (the bench reads it)

    async def statuses(self, country: str, platforms: list[str]) -> list[PlatformStatus]:
        watched = (await self.store.run(watched_pairs)).get(country, set())
        blocking = [p for p in platforms if catalog.PLATFORMS[p].source == "ooni"]
        # the poller asks IODA about every watched country, OONI about the watched pairs
        polled = all(p in watched for p in blocking) and (bool(watched) or not platforms)
        snapshot = None if polled else await self._snapshot(country)
        return await self.store.run(_statuses, country, platforms, watched, snapshot)

    async def _snapshot(self, country: str) -> Snapshot | None:
        cached = self._cache.get(country)
        if cached is not None and self.monotonic() - cached[0] < self.interval:
            return cached[1]
        running = self._running.get(country)
        if running is None:
            began, spent = self._window
            if self.monotonic() - began >= self.interval:
                began, spent = self.monotonic(), 0
            if spent >= self.countries_per_interval:
                log.info("/status on demand: %d countries fetched this interval already; %s waits", spent, country)
                return cached[1] if cached else None
            self._window = (began, spent + 1)
            running = self._running[country] = asyncio.create_task(self._fetch(country))
            running.add_done_callback(lambda _: self._running.pop(country, None))
        return await asyncio.shield(running)

    async def _fetch(self, country: str) -> Snapshot:
        self.fetches += 1
        now = self.clock()
        snapshot = Snapshot()
        blocking = [p.name for p in catalog.PLATFORMS.values() if p.source == "ooni"]
        try:
            observations = await self.ooni.snapshot(country, blocking, now)
            for platform in blocking:
                mine = [o for o in observations if o.platform == platform]
                snapshot.states[platform], _ = detect(None, mine, now, country=country, platform=platform)
        except SourceError as error:
            log.debug("/status on demand: no OONI data for %s (%s)", country, error)
        if self.ioda is not None:
            try:
                alerts = await self.ioda.snapshot(country, [INTERNET], now)
                snapshot.outage, _ = detect_outage(None, alerts, now, country=country)
            except SourceError as error:
                log.debug("/status on demand: no IODA data for %s (%s)", country, error)
        self._cache[country] = (self.monotonic(), snapshot)
        return snapshot


def _statuses(db, country: str, platforms: list[str], watched: set[str], snapshot: Snapshot | None) -> list[PlatformStatus]:
    """Watched pairs from the stored states, the others from the snapshot (DB thread)."""
    states = {p: load_state(db, country, p) if p in watched or snapshot is None else snapshot.states.get(p) for p in platforms}
    outage = load_outage(db, country) if watched or snapshot is None else snapshot.outage
    return statuses_from(country, platforms, states, outage)
