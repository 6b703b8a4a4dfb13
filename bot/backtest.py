"""`blockwatch backtest`: replay OONI (and IODA) history through the live detectors and print the events it raises.

It fetches hourly history for [--since, --until) from `OONI_API_URL` (`--until` is exclusive, as
in the OONI API), then steps a simulated clock from --since to --until by --step hours (default
POLL_INTERVAL) and at each step hands `detect()` the observations whose hour has ended by then —
never one that has not, so an event comes no sooner than a live poller could have raised it.
`--platform internet` replays IODA's alerts from `IODA_API_URL` through the outage detector the
same way (bot/outage.py), each step given the alerts raised by then. It uses no Telegram and never opens the bot's database: the detector's state lives in memory.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from collections.abc import Callable
from typing import TextIO

from bot import catalog
from bot.config import Settings
from bot.detector import DEFAULT, BlockState, Event, Thresholds, detect
from bot.observations import Observation
from bot.sources.base import Source, SourceError
from bot.outage import PLATFORM as OUTAGE_PLATFORM, OutageAlert, OutageEvent, detect_outage
from bot.sources.ioda import IodaSource
from bot.sources.ooni import OoniSource
from bot.notifier import event_text

log = logging.getLogger(__name__)

MAX_STEPS = 1_000_000  # a typo like --step 0.00001 over a year should be refused, not run for hours


class BadArguments(Exception):
    """An argument the backtest cannot use; str(error) is the one line to show."""


def _day(name: str, text: str) -> date:
    try:
        return date.fromisoformat(text)
    except (TypeError, ValueError):
        raise BadArguments(f"--{name} must be a date written YYYY-MM-DD, such as 2022-09-13, not {text!r}") from None


def _midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=timezone.utc)


def parse_request(args: argparse.Namespace, settings: Settings) -> tuple[catalog.Country, list[str], date, date, timedelta]:
    """The country, platform names, dates and step the arguments ask for; BadArguments when they cannot be used."""
    try:
        country = catalog.country_named(args.country)
        platforms = list(catalog.platforms_named(args.platform))
    except catalog.UnknownName as unknown:
        guess = unknown.suggestion
        if unknown.kind == "country":
            hint = f" — did you mean {guess.code} ({guess.name})?" if guess else "; use an ISO code such as AZ or a name such as Azerbaijan"
        else:
            hint = f" — did you mean {guess.name}?" if guess else f"; known platforms: {', '.join(catalog.PLATFORMS)}"
        raise BadArguments(f"{unknown}{hint}") from None
    since, until = _day("since", args.since), _day("until", args.until)
    if since >= until:
        raise BadArguments(f"--since ({since}) must be before --until ({until}); --until is exclusive")
    hours = args.step if args.step is not None else settings.poll_interval / 3600
    if not hours or hours != hours or hours <= 0:  # NaN included
        raise BadArguments(f"--step must be a number of hours greater than 0, not {args.step!r}")
    step = timedelta(hours=hours)
    if (_midnight(until) - _midnight(since)) / step > MAX_STEPS:
        raise BadArguments(f"--step {hours:g} hours makes more than {MAX_STEPS:,} steps over that range; take a longer step")
    return country, platforms, since, until, step


def replay(
    observations: list[Observation],
    country: str,
    platforms: list[str],
    start: datetime,
    end: datetime,
    step: timedelta,
    thresholds: Thresholds = DEFAULT,
) -> list[Event]:
    """Every event the detector raises stepping a clock from `start` (exclusive) to `end` (inclusive) by `step`.

    At each step the detector gets the observations whose bucket ended by then and that it has not had yet.
    """
    pending: dict[str, list[Observation]] = defaultdict(list)
    for obs in sorted(observations, key=lambda o: (o.end, o.start, o.asn)):
        pending[obs.platform].append(obs)
    states: dict[str, BlockState | None] = {p: None for p in platforms}
    fed = {p: 0 for p in platforms}
    events: list[Event] = []
    k = 1
    while True:
        now = min(start + k * step, end)  # the last step lands on `end`, so no data is left unread
        for platform in platforms:
            queue, i = pending[platform], fed[platform]
            j = i
            while j < len(queue) and queue[j].end <= now:
                j += 1
            fed[platform] = j
            states[platform], new = detect(states[platform], queue[i:j], now, thresholds, country=country, platform=platform)
            events += new
        if now >= end:
            return events
        k += 1


def print_events(events: list, as_json: bool, out: TextIO) -> None:
    for event in events:
        if as_json:
            print(json.dumps(event.to_json(), ensure_ascii=False), file=out)
        else:
            # the time the bot would have sent it: the alert's own times are those of the data
            print(f"[{event.time.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC]\n{event_text(event)}\n", file=out)


async def backtest_command(settings: Settings, args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Exit 0 with the events printed; 2 for arguments it cannot use; 1 when OONI cannot give the history."""
    out = out or sys.stdout
    try:
        country, platforms, since, until, step = parse_request(args, settings)
    except BadArguments as error:
        print(f"blockwatch backtest: {error}", file=sys.stderr)
        return 2
    # a platform's source follows from the catalog: OONI for blocking, IODA for `internet`
    runs: list[tuple[Source, str, list[str], Callable]] = []
    blocking = [p for p in platforms if catalog.PLATFORMS[p].source == "ooni"]
    if blocking:
        runs.append((OoniSource(settings.ooni_api_url), settings.ooni_api_url, blocking, replay))
    if any(catalog.PLATFORMS[p].source == "ioda" for p in platforms):
        runs.append((IodaSource(settings.ioda_api_url), settings.ioda_api_url, [OUTAGE_PLATFORM], replay_outages))
    events: list[Event | OutageEvent] = []
    for source, url, names, replayer in runs:
        try:
            events += await backtest(source, country.code, names, since, until, step, replayer)
        except SourceError as error:
            print(f"blockwatch backtest: could not fetch the history from {source.name} ({url}): {error}", file=sys.stderr)
            return 1
        finally:
            await source.close()
    events.sort(key=lambda e: e.time)  # stable: each source's events keep their order
    print_events(events, args.json, out)
    return 0


def replay_outages(
    alerts: list[OutageAlert], country: str, platforms: list[str], start: datetime, end: datetime, step: timedelta,
) -> list[OutageEvent]:
    """Every outage event stepping a clock from `start` (exclusive) to `end` (inclusive) by `step`, each
    step given the alerts IODA had raised by then (those before `start` at the first: an outage already on)."""
    pending = sorted(alerts, key=lambda a: a.time)
    state, events, fed, k = None, [], 0, 1
    while True:
        now = min(start + k * step, end)
        j = fed
        while j < len(pending) and pending[j].time <= now:
            j += 1
        state, new = detect_outage(state, pending[fed:j], now, country=country)
        fed = j
        events += new
        if now >= end:
            return events
        k += 1


async def backtest(
    source: Source, country: str, platforms: list[str], since: date, until: date, step: timedelta,
    replayer: Callable = replay,
) -> list:
    """The events `source`'s history of [since, until) raises, replayed (`replayer`: its kind's detector)
    on a clock stepping by `step`."""
    observations = await source.history(country, platforms, since, until)
    events = replayer(observations, country, platforms, _midnight(since), _midnight(until), step)
    log.info(
        "backtest %s %s %s → %s (until exclusive), step %s: %d records from %d requests to %s, %d events",
        country, ",".join(platforms), since, until, step, len(observations), source.requests_made, source.name, len(events),
    )
    return events
