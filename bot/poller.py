"""The live poller: every POLL_INTERVAL, ask OONI about every watched country and hand the events on.

One cycle (`Poller.poll_once`): the watched (country, platforms) of chats that are not paused; per
country one `OoniSource.observe()` (at most 3 requests, whatever the number of platforms or
watchers); then, on the DB thread and in ONE transaction per country, each platform's state is run
through the detector, saved, and every event is queued for its watchers (`notifier.queue_event`:
the event row and its deliveries). So a crash between detecting and sending loses nothing, and a
restart repeats nothing: the saved state already holds the change.
A country whose source fails keeps its state (missing data is never an unblock) and the others go on.

The states are read from the database once and then held in memory (`HeldStates`): parsing 500
states' JSON every cycle cost about a second (bench/bench_poll_cycle.py). The database stays the
source of truth — written (the states this cycle changed, `BlockState.changed`) in the same
transaction as the events, read again after a restart, after
a failed transaction, and whenever another process (`blockwatch poll --once`) has written to it.

`blockwatch run` runs `Poller.run` in the background (app.build_services wires it); `blockwatch
poll --once` runs one cycle from the command line (`poll_once_command`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import sqlite_utils

from bot import catalog
from bot.detector import DEFAULT, BlockState, Event, Thresholds, detect
from bot.notifier import event_text, queue_event
from bot.observations import Observation
from bot.outage import OutageAlert, OutageEvent, detect_outage
from bot.services import Services
from bot.sources.base import Source, SourceError
from bot.sources.ioda import IodaSource
from bot.sources.ooni import OoniSource
from storage.db import Store, data_version, is_outage, transaction
from storage.outages import load_outage, save_outage
from storage.states import load_state, save_state
from storage.subscriptions import watched_pairs

log = logging.getLogger(__name__)


@dataclass
class PollResult:
    """What one cycle did (/stats shows the last one)."""

    started: datetime
    finished: datetime
    countries: int  # countries polled
    requests: int  # HTTP requests sent to OONI, retries included
    errors: int  # countries whose data could not be had from a source (their state was kept)
    events: list[Event | OutageEvent] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # the country codes behind `errors`
    outage_requests: int = 0  # HTTP requests sent to IODA, retries included

    @property
    def succeeded(self) -> bool:
        """The source answered: nothing was watched, or at least one country got its data (/healthz)."""
        return self.errors < self.countries or self.countries == 0


class HeldStates:
    """The detector's states held in memory between cycles; the database keeps the truth (one cycle at a time).

    A state is read from the database the first time it is needed, then held. Held states are
    dropped when they may differ from the stored ones: a country's after its transaction failed
    (the detector changed them, the database did not), and all of them when another connection has
    committed to the database since (SQLite's `PRAGMA data_version` tells), e.g. `blockwatch poll
    --once` run beside the bot."""

    def __init__(self) -> None:
        self._states: dict[tuple[str, str], BlockState] = {}
        self._data_version: int | None = None

    def __len__(self) -> int:
        return len(self._states)

    def check(self, db: sqlite_utils.Database) -> None:
        """Forget every held state if another connection wrote to the database (call inside the transaction)."""
        version = data_version(db)
        if version != self._data_version:
            self._states.clear()
            self._data_version = version

    def get(self, db: sqlite_utils.Database, country: str, platform: str) -> BlockState | None:
        state = self._states.get((country, platform))
        return state if state is not None else load_state(db, country, platform)

    def keep(self, state: BlockState) -> None:
        self._states[(state.country, state.platform)] = state

    def forget(self, country: str) -> None:
        for key in [k for k in self._states if k[0] == country]:
            del self._states[key]

    def keep_only(self, pairs: dict[str, set[str]]) -> None:
        """Let go of the pairs no chat watches any more (their stored state stays)."""
        for key in [k for k in self._states if k[1] not in pairs.get(k[0], ())]:
            del self._states[key]


def _apply(
    db: sqlite_utils.Database,
    held: HeldStates,
    country: str,
    platforms: list[str],
    observations: list[Observation],
    now: datetime,
    thresholds: Thresholds,
) -> list[Event]:
    """One country's poll folded into its states, saved, and its events queued — all or nothing (DB thread)."""
    events: list[Event] = []
    try:
        with transaction(db):
            held.check(db)
            for platform in platforms:
                mine = [o for o in observations if o.platform == platform]
                state, new = detect(held.get(db, country, platform), mine, now, thresholds, country=country, platform=platform)
                if state.changed:  # an unchanged state is stored as it is: 8 MB of JSON are not rewritten per cycle
                    save_state(db, state)
                for event in new:
                    queue_event(db, event)
                held.keep(state)
                events += new
    except BaseException:
        held.forget(country)  # the detector changed them in memory, the rollback did not store it
        raise
    return events


def _apply_outage(db: sqlite_utils.Database, country: str, alerts: list[OutageAlert], now: datetime) -> list[OutageEvent]:
    """One country's IODA alerts folded into its outage state, saved, and its events queued — all or nothing (DB thread)."""
    with transaction(db):
        state, events = detect_outage(load_outage(db, country), alerts, now, country=country)
        save_outage(db, state)
        for event in events:
            queue_event(db, event)
    return events


class Poller:
    """Polls the sources for every watched country, one cycle at a time; `last` is the latest cycle's result.

    OONI (`source`) for the watched blocking platforms; IODA (`outages`) for every watched country,
    so that its OONI platforms read "no measurements: internet outage" while one lasts — its alerts
    go to the chats watching `internet`. Given no source at all it makes both from the settings, one
    HTTP session each for its life; given only `source`, it asks IODA nothing."""

    def __init__(
        self,
        services: Services,
        source: Source[Observation] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        thresholds: Thresholds = DEFAULT,
        outages: Source[OutageAlert] | None = None,
    ):
        self.services = services
        settings = services.settings
        # one source each (one HTTP session, one memory of what was fetched) for the life of the process
        self._owned: list[Source] = []
        if source is None and outages is None:
            source, outages = OoniSource(settings.ooni_api_url), IodaSource(settings.ioda_api_url)
            self._owned = [source, outages]
        elif source is None:
            source = OoniSource(settings.ooni_api_url)
            self._owned = [source]
        self.source: Source[Observation] = source
        self.outages: Source[OutageAlert] | None = outages
        self.clock = clock
        self.thresholds = thresholds
        self.last: PollResult | None = None
        self.last_success: datetime | None = None  # when the latest cycle that `succeeded` finished
        self.states = HeldStates()
        self._warned_idle = False
        self._logged_faults: set[str] = set()

    def _log_fault(self, where: str, error: BaseException) -> None:
        """An unexpected exception: the traceback once per kind, then a debug line (not every cycle)."""
        kind = f"{where}:{type(error).__name__}"
        if is_outage(error):  # the store logs each database outage's start and end, once each, every time
            log.debug("%s failed: the database is unavailable (%s)", where, error)
            return
        if kind in self._logged_faults:
            log.debug("%s failed again: %s: %s", where, type(error).__name__, error)
            return
        self._logged_faults.add(kind)
        log.error("%s failed (%s: %s); going on, logged once", where, type(error).__name__, error, exc_info=error)

    async def poll_once(self) -> PollResult:
        started = self.clock()
        store: Store = self.services.store
        pairs = await store.run(watched_pairs)
        if not pairs:
            if not self._warned_idle:
                log.warning("nothing is watched yet: the poller asks the sources nothing until a chat sends /watch")
                self._warned_idle = True
        else:
            self._warned_idle = False
        self.states.keep_only(pairs)
        blocking = {cc: sorted(p for p in ps if catalog.PLATFORMS[p].source == "ooni") for cc, ps in pairs.items()}
        requests_before = self.source.requests_made
        outage_requests_before = self.outages.requests_made if self.outages is not None else 0
        # the two sources are asked side by side: a slow IODA never holds back a blocking alert
        (events, failed), (outage_events, outage_failed) = await asyncio.gather(
            self._poll_blocking({cc: ps for cc, ps in blocking.items() if ps}),
            self._poll_outages(sorted(pairs)),
        )
        events = [*events, *outage_events]
        failed = sorted(set(failed) | set(outage_failed))
        for event in events:
            log.info("event: %s", json.dumps(event.to_json(), ensure_ascii=False))
        if events:
            await self.services.wake_sender()
        result = PollResult(
            started=started,
            finished=self.clock(),
            countries=len(pairs),
            requests=self.source.requests_made - requests_before,
            errors=len(failed),
            events=events,
            failed=failed,
            outage_requests=(self.outages.requests_made - outage_requests_before) if self.outages is not None else 0,
        )
        self.last = result
        if result.succeeded:
            self.last_success = result.finished
        # debug only: an outage is logged once by the source, not once per cycle here
        log.debug(
            "poll: %d countries, %d requests, %d events, no data from %s",
            result.countries, result.requests, len(events), ", ".join(failed) or "none",
        )
        return result

    async def _poll_blocking(self, pairs: dict[str, list[str]]) -> tuple[list[Event], list[str]]:
        """OONI, country by country: observe, then detect, save and queue in one transaction."""
        events: list[Event] = []
        failed: list[str] = []
        for country, platforms in sorted(pairs.items()):
            now = self.clock()
            try:
                observations = await self.source.observe(country, platforms, now)
                events += await self.services.store.run(_apply, self.states, country, platforms, observations, now, self.thresholds)
            except SourceError as error:
                failed.append(country)  # its state stays as it was: missing data is never an unblock
                log.debug("%s: no data this cycle (%s)", country, error)
            except Exception as error:  # one country's bad luck must not stop the others
                failed.append(country)
                self._log_fault(f"polling {country}", error)
        return events, failed

    async def _poll_outages(self, countries: list[str]) -> tuple[list[OutageEvent], list[str]]:
        """IODA, country by country (two requests each, whatever the watchers): alerts folded into the outage state."""
        events: list[OutageEvent] = []
        failed: list[str] = []
        if self.outages is None:
            return events, failed
        for country in countries:
            now = self.clock()
            try:
                alerts = await self.outages.observe(country, [catalog.PLATFORMS["internet"].name], now)
                events += await self.services.store.run(_apply_outage, country, alerts, now)
            except SourceError as error:
                failed.append(country)  # the outage state stays: no answer is never "restored"
                log.debug("%s: no IODA data this cycle (%s)", country, error)
            except Exception as error:
                failed.append(country)
                self._log_fault(f"polling IODA for {country}", error)
        return events, failed

    async def close(self) -> None:
        """Close the sources this poller made (their HTTP sessions)."""
        for source in self._owned:
            await source.close()

    async def run(self) -> None:
        """Poll forever, a cycle every POLL_INTERVAL seconds (counted from each cycle's start)."""
        interval = self.services.settings.poll_interval
        try:
            while True:
                began = time.monotonic()
                try:
                    await self.poll_once()
                except Exception as error:
                    self._log_fault("poll cycle", error)
                await asyncio.sleep(max(0.0, interval - (time.monotonic() - began)))
        finally:
            await self.close()


async def poll_once_command(services: Services) -> int:
    """`blockwatch poll --once`: one cycle, events printed and queued for the running bot's sender.

    Exit 0, or 1 when every watched country failed."""
    poller = Poller(services)
    try:
        result = await poller.poll_once()
    finally:
        await poller.close()
        await services.store.close()
    for event in result.events:
        print(event_text(event) + "\n")
    line = (
        f"poll: {result.countries} countries, {result.requests} requests to OONI, "
        f"{result.errors} errors, {len(result.events)} events"
    )
    if result.failed:
        line += f" (no data from {', '.join(result.failed)})"
    if result.countries:
        line += f"; {result.outage_requests} requests to IODA"
    if not result.countries:
        line += " — nothing is watched: a chat must send /watch first"
    print(line)
    sys.stdout.flush()
    return 1 if result.countries and result.errors == result.countries else 0
