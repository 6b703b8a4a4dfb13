"""Charts on their way to chats: fetched, rendered and uploaded once per (country, platform, hour),
however many chats get them.

`ChartMaker.png(country, platform, hour)` fetches 14 days of the platform's OONI data (one history
request set), reads the pair's block from the detector's stored state, and renders bot/charts.py's
PNG in a worker thread — never on the event loop. Concurrent callers for the same key share one
render. `send(bot, chat_id, key, caption)` uploads the PNG with sendPhoto the first time and sends
Telegram's file_id after that (no second upload); it is called by the sender for outbox deliveries
of kind "chart" and by /status, so a photo goes through the same bot and flood-aware path as text.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from typing import Any

from telegram import InputFile
from telegram.constants import ParseMode

from bot import catalog, charts
from bot.clock import utc
from bot.observations import Observation
from bot.render import render
from storage.events import event_pair
from storage.states import load_state

log = logging.getLogger(__name__)

KIND = "chart"
KEEP = 64  # charts (and file_ids) kept in memory: a pair's chart changes every hour anyway
# new charts an hour at most: each costs a 14-day history from OONI outside the poller's budget, and
# /status CC platform for any country must not spend OONI's hourly quota (~4000 units) on pictures
CHARTS_PER_HOUR = 20

Fetch = Callable[[str, str, date, date], Awaitable[list[Observation]]]


class ChartUnavailable(Exception):
    """The chart's data could not be had (OONI down): the alert went without it, nothing to retry for long."""


def key_of(country: str, platform: str, moment: datetime) -> str:
    """`chart:AZ:tiktok:2022-09-14T06`: one chart per pair and hour."""
    return f"{KIND}:{country}:{platform}:{moment.astimezone(timezone.utc):%Y-%m-%dT%H}"


def read_key(key: str) -> tuple[str, str, datetime] | None:
    parts = key.split(":", 3)
    if len(parts) != 4 or parts[0] != KIND or parts[2] not in catalog.PLATFORMS:
        return None
    try:
        hour = datetime.strptime(parts[3], "%Y-%m-%dT%H").replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    return parts[1], parts[2], hour


def charted(platform: str) -> bool:
    """Only platforms OONI measures have this chart (IODA's internet outages do not)."""
    spec = catalog.PLATFORMS.get(platform)
    return spec is not None and bool(spec.tests or catalog.platform_domains(platform, "AZ"))


class ChartMaker:
    def __init__(self, store, fetch: Fetch, *, per_hour: int = CHARTS_PER_HOUR):
        self.store = store
        self.fetch = fetch
        self.per_hour = per_hour
        self._hour: tuple[datetime | None, int] = (None, 0)  # (the keys' hour, charts begun for it)
        self.renders = 0  # charts rendered since start (the bench and tests count them)
        self.uploads = 0
        self._pngs: OrderedDict[str, asyncio.Future] = OrderedDict()
        self._file_ids: dict[str, str] = {}
        self._upload_locks: dict[str, asyncio.Lock] = {}
        self._events: dict[int, tuple[str, str, int] | None] = {}
        self._logged: set[str] = set()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="blockwatch-charts")

    @classmethod
    def for_ooni(cls, store, ooni_api_url: str) -> ChartMaker:
        from bot.sources.ooni import OoniSource

        async def fetch(country: str, platform: str, since: date, until: date) -> list[Observation]:
            # once per pair and hour: a session each is cheap; one retry, as the alert waits for nobody
            async with OoniSource(ooni_api_url, retries=1, timeout=15) as source:
                return await source.history(country, [platform], since, until)

        return cls(store, fetch)

    async def png(self, key: str) -> bytes:
        """The chart for a key, rendered at most once while it is kept."""
        future = self._pngs.get(key)  # a failed chart stays failed for its hour: a broadcast does not ask OONI per chat
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._pngs[key] = future
            while len(self._pngs) > KEEP:
                old, _ = self._pngs.popitem(last=False)
                self._file_ids.pop(old, None)
                self._upload_locks.pop(old, None)
            try:
                future.set_result(await self._make(key))
            except BaseException as error:
                future.set_exception(error)
                future.exception()  # retrieved: a failed render is logged by its caller, not as "never retrieved"
                raise
        self._pngs.move_to_end(key)
        return await asyncio.shield(future)

    async def _make(self, key: str) -> bytes:
        parsed = read_key(key)
        if parsed is None:
            raise ValueError(f"not a chart key: {key!r}")
        country, platform, hour = parsed
        counted, begun = self._hour if self._hour[0] == hour else (hour, 0)
        if begun >= self.per_hour:
            raise ChartUnavailable(f"{self.per_hour} charts made this hour already; {country} {platform} goes without")
        self._hour = (counted, begun + 1)
        last_day = hour.date()
        try:
            observations = await self.fetch(country, platform, last_day - timedelta(days=charts.DAYS - 1), last_day + timedelta(days=1))
        except Exception as error:
            raise ChartUnavailable(f"no data for the {country} {platform} chart: {error}") from error
        observations = [o for o in observations if o.start < hour + timedelta(hours=1)]
        state = await self.store.run(load_state, country, platform)
        since = state.blocked_since if state is not None and state.blocked_asns else None
        data = charts.chart_data(observations, country, platform, last_day, since)
        png = await asyncio.get_running_loop().run_in_executor(self._executor, charts.render_png, data)
        self.renders += 1
        return png

    async def send(self, bot, chat_id: int, key: str, caption: str, *, silent: bool = False, **timeouts: Any):
        """sendPhoto of the chart: uploaded the first time, then by Telegram's file_id."""
        lock = self._upload_locks.setdefault(key, asyncio.Lock())
        async with lock:  # the first upload's file_id serves everyone after it
            file_id = self._file_ids.get(key)
            photo = file_id or InputFile(await self.png(key), filename=f"{key.replace(':', '_')}.png")
            message = await bot.send_photo(chat_id, photo, caption=caption, parse_mode=ParseMode.HTML,
                                           disable_notification=silent, **timeouts)
            if file_id is None:
                self.uploads += 1
                if message.photo:
                    self._file_ids[key] = message.photo[-1].file_id
        return message

    async def send_for_alert(self, bot, chat_id: int, ref: str | None, lang: str, *, silent: bool = False, **timeouts: Any):
        """The chart of a blocked alert (`ref` "event:<id>") to a chat that just got the alert; None when it has none."""
        if not ref or not ref.startswith("event:") or not ref[6:].isdigit():
            return None
        event_id = int(ref[6:])
        pair = self._events.get(event_id)
        if pair is None:
            pair = self._events[event_id] = await self.store.run(event_pair, event_id)
            while len(self._events) > KEEP:
                self._events.pop(next(iter(self._events)))
        if pair is None or not charted(pair[1]):
            return None
        country, platform, moment = pair
        caption = render("chart_caption", lang, country=catalog.find_country(country) or catalog.Country(country, country),
                         platform=catalog.PLATFORMS[platform])
        return await self.send(bot, chat_id, key_of(country, platform, utc(moment)), caption, silent=silent, **timeouts)

    def log_failure(self, error: Exception) -> None:
        """A chart that could not go: logged once per kind of failure, the alerts go on without it."""
        kind = type(error).__name__
        if kind not in self._logged:
            self._logged.add(kind)
            log.warning("an alert went without its chart (%s: %s); logged once", kind, error)

    def close(self) -> None:
        self._executor.shutdown(wait=False)
