"""The live poll of one country: which OONI requests a cycle makes, within its budget, and what it
remembers between cycles so that a re-sent day never loses counts.

With two axes per request, platform × network × time needs either one request per platform (cost
grows with platforms) or a day-long window. We take the day: a poll's buckets are UTC days,
today's re-sent with growing counts while it fills. The detector takes a re-sent day's growth since
its last sighting as new data and a drop as OONI revising the day, so a re-sent day must never lose
counts the source merely did not fetch this time. A platform with web domains and app tests
(WhatsApp, Telegram, Signal, Facebook) has two parts per day, one from each count request, and a
cycle's budget may refresh only one: in every cycle that fetched a part of a day, each (platform,
network) of that day is sent as the sum of its platform's last known parts — and not at all until
every part has been fetched once (a new process, a newly watched platform). Yesterday's final parts
come in one or two cycles after midnight; until both are in, the other part counts with its last
value from yesterday's polls.
  1. web counts — aggregation `test_name=web_connectivity&domain=<every watched platform's domains>
     &axis_x=domain&axis_y=probe_asn`, today; rows → platforms with catalog.platform_of.
  2. app counts — aggregation `test_name=<the watched app tests>&axis_x=test_name&axis_y=probe_asn`, today.
  3. evidence — measurements `anomaly=true&failure=false&probe_asn=<the anomalous networks>` and
     the anomalous platforms' domains or tests, today: a few uids per platform/network and the
     fallback method from `blocking_type`.
  4. method — aggregation/analysis `axis_x=probe_asn&axis_y=domain`, today, when a web platform
     shows anomalies.
Steps 3–4 run only for platform/network pairs with repeated anomalies (`detail_min_signs`, 2: a
lone one is noise) whose details are missing or older than `detail_ttl` (1 h); yesterday's final
counts (1–2 requests) are fetched once a day, after midnight.
Every cycle spends at most `budget` (3) requests per country, in this order of need: web counts,
details of newly anomalous pairs, app counts, refreshed details, yesterday; what does not fit waits
for the next cycle (app counts skipped for new details come first next time). So a cycle costs
1–2 requests per country when nothing looks anomalous, never more than 3, whatever the number of
platforms and watchers (bench/bench_ooni_requests.py measures it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from bot import catalog
from bot.observations import Observation
from bot.sources.base import SourceError
from bot.sources.http import JsonClient
from bot.sources.ooni import api
from bot.sources.ooni.api import Counts, Pair, midnight
from bot.sources.ooni.evidence import Details, best_methods, gather_evidence

log = logging.getLogger("bot.sources.ooni")

Part = dict[str, dict[int, Counts]]  # one count request's answer for one day: platform → asn → counts
Key = tuple[str, int, datetime]  # (platform, asn, bucket start)


@dataclass
class CountryPoll:
    """What the live poll remembers about one country between cycles."""

    details: dict[Key, Details] = field(default_factory=dict)
    # The last answer of each count request ("web" or "apps") per day start. A day is sent as the sum
    # of its platforms' parts, so a part not fetched this cycle counts with its last known value.
    parts: dict[tuple[str, datetime], Part] = field(default_factory=dict)
    final: dict[tuple[str, tuple[str, ...]], date] = field(default_factory=dict)  # yesterday fetched, per query
    apps_waiting: bool = False  # app counts were skipped last cycle to make room for details


class Budget:
    """The requests one country's cycle may still spend."""

    def __init__(self, limit: int):
        self.left = limit

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        return True


@dataclass(frozen=True)
class Plan:
    """The live poll's tuning (OoniSource's arguments)."""

    budget: int = 3
    detail_ttl: timedelta = timedelta(hours=1)
    # A lone anomaly is background noise (the detector wants several): no evidence request for it.
    detail_min_signs: int = 2


async def observe_country(
    client: JsonClient, plan: Plan, poll: CountryPoll, cc: str, names: list[str], now: datetime
) -> list[Observation]:
    """One cycle for one country: today's (and, once a day, yesterday's) counts per platform and network."""
    today = now.date()
    day = (midnight(today), min(now, midnight(today) + timedelta(days=1)))
    domains = tuple(sorted({d for p in names for d in catalog.platform_domains(p, cc)}))
    tests = tuple(sorted({t for p in names for t in catalog.PLATFORMS[p].tests}))
    budget = Budget(plan.budget)
    kinds = {  # the count requests each platform's day is made of
        p: tuple(k for k, query in (("web", catalog.platform_domains(p, cc)), ("apps", catalog.PLATFORMS[p].tests))
                 if query)
        for p in names
    }
    refreshed: set[datetime] = set()  # days with a part fetched this cycle: the days to send

    def put(kind: str, found: dict[Pair, Counts], start: datetime) -> None:
        part = poll.parts.setdefault((kind, start), {})
        for platform in names:
            if kind in kinds[platform]:  # asked for: a network missing from the answer has none
                part[platform] = {}
        for (platform, asn), c in found.items():
            if platform in part:
                part[platform][asn] = c
        refreshed.add(start)

    web_today: dict[Pair, Counts] = {}
    apps_today: dict[Pair, Counts] | None = None

    async def fetch_apps() -> None:
        nonlocal apps_today
        budget.take()  # callers made sure one is left
        apps_today = await api.app_counts(client, cc, tests, today, today + timedelta(days=1))
        put("apps", apps_today, day[0])
        poll.apps_waiting = False

    if domains and budget.take():
        web_today = await api.web_counts(client, cc, domains, today, today + timedelta(days=1))
        put("web", web_today, day[0])
    if tests and poll.apps_waiting:
        await fetch_apps()
    # A newly anomalous pair's alert needs its evidence and method now; refreshes can wait.
    await _fetch_details(client, plan, cc, poll, web_today, apps_today or {}, day, now, budget, refresh=False)
    if tests and apps_today is None:
        if budget.left:
            await fetch_apps()
        else:
            poll.apps_waiting = True
            log.debug("%s: app counts wait for the next cycle (request budget spent on details)", cc)
    await _fetch_details(client, plan, cc, poll, web_today, apps_today or {}, day, now, budget, refresh=True)

    # Yesterday's final counts, once per day: measurements uploaded late still land in them.
    yesterday = today - timedelta(days=1)
    for kind, query, fetch in (("web", domains, api.web_counts), ("apps", tests, api.app_counts)):
        if query and poll.final.get((kind, query)) != yesterday and budget.take():
            try:
                put(kind, await fetch(client, cc, query, yesterday, today), midnight(yesterday))
                poll.final[(kind, query)] = yesterday
            except SourceError:
                pass  # logged by the client; today's counts are still good, yesterday waits

    _prune(poll, yesterday)
    counts: dict[Key, Counts] = {}
    for start in refreshed:
        for platform in names:
            parts = [poll.parts.get((kind, start), {}).get(platform) for kind in kinds[platform]]
            if not parts or None in parts:
                # A part never fetched (a new process, a newly watched platform): the sum without it
                # would look like OONI shrinking the day. The day waits for that part.
                continue
            for part in parts:
                for asn, c in part.items():
                    counts.setdefault((platform, asn, start), Counts()).add_counts(c)
    observations = []
    for (platform, asn, start), c in sorted(counts.items()):
        d = poll.details.get((platform, asn, start), Details())
        observations.append(Observation(
            country=cc, platform=platform, asn=asn, start=start,
            end=start + timedelta(days=1),
            measurements=c.measurements, anomalies=c.anomalies, confirmed=c.confirmed, failures=c.failures,
            method=d.method or d.fallback, evidence=d.evidence,
        ))
    return observations


async def _fetch_details(
    client: JsonClient, plan: Plan, cc: str, poll: CountryPoll, web: dict[Pair, Counts],
    apps: dict[Pair, Counts], day: tuple[datetime, datetime], now: datetime, budget: Budget,
    *, refresh: bool,
) -> None:
    """Evidence (and, for web anomalies, the method) of today's anomalous pairs that have none
    yet — or, with `refresh`, whose details are older than `detail_ttl`."""
    start, end = day

    def stale(at: datetime | None) -> bool:
        return at is None or (refresh and now - at >= plan.detail_ttl)

    def details(pair: Pair) -> Details:
        return poll.details.setdefault((*pair, start), Details())

    web_bad = {pair for pair, c in web.items() if c.signs >= plan.detail_min_signs}
    app_bad = {pair for pair, c in apps.items() if c.signs >= plan.detail_min_signs}
    need_evidence_web = {p for p in web_bad if stale(details(p).evidence_at)}
    need_evidence_apps = {p for p in app_bad if stale(details(p).evidence_at)}
    need_method = {p for p in web_bad if stale(details(p).method_at)}

    if (need_evidence_web or need_evidence_apps) and budget.take():
        try:
            rows = await api.anomalous_rows(client, cc, need_evidence_web, need_evidence_apps, start, end, limit=200)
        except SourceError:
            rows = None  # logged by the client; the next cycle asks again
        if rows is not None:
            found = gather_evidence(rows, key=lambda r: (r.platform, r.asn))
            for pair in need_evidence_web | need_evidence_apps:
                d, new = details(pair), found.get(pair, Details())
                d.evidence, d.fallback, d.evidence_at = new.evidence, new.fallback, now
    if need_method and budget.take():
        asns = {asn for _, asn in need_method}
        try:
            entries = await api.analysis(client, cc, start, end, asn=next(iter(asns)) if len(asns) == 1 else None)
        except SourceError:
            entries = None
        if entries is not None:
            def pair_of(entry: dict) -> Pair | None:
                pair = (catalog.platform_of(cc, domain=entry.get("domain") or None), api.asn_of(entry.get("probe_asn")))
                return pair if pair in need_method else None

            methods = best_methods(entries, key=pair_of)
            for pair in need_method:
                d = details(pair)
                d.method, d.method_at = methods.get(pair), now


def _prune(poll: CountryPoll, oldest: date) -> None:
    cutoff = midnight(oldest)
    for key in [k for k in poll.details if k[2] < cutoff]:
        del poll.details[key]
    for key in [k for k in poll.parts if k[1] < cutoff]:
        del poll.parts[key]
