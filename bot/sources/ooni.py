"""Asking the OONI API how a country's platforms fare: counts per platform, network (ASN) and time bucket.

`OoniSource.observe()` is the live poll of one country; `OoniSource.history()` feeds `blockwatch
backtest`. Both return `Observation`s (bot/observations.py) and nothing else: the detector decides.

What the API allows (ooni/backend oonimeasurements, routers/v1/aggregation.py and friends)
- `/api/v1/aggregation` counts fastpath rows, partitioned failure → confirmed → anomaly → ok, over
  at most TWO axes (measurement_start_day, probe_asn, domain, test_name, blocking_type, …).
  `since`/`until` are dates (`until` exclusive); `time_grain=hour` only for ranges ≤ 7 days.
  `domain`, `test_name`, `probe_asn` take comma lists. App-test rows have no domain, so a domain
  filter drops them: web domains and app tests cannot share one request.
- `/api/v1/measurements` lists rows (`probe_asn` "AS29049"; `since` exclusive, `until` inclusive,
  datetimes allowed): the measurement uids behind Explorer links, and each row's
  `scores.analysis.blocking_type` — the very value the aggregation's `blocking_type` axis groups by.
- `/api/v1/aggregation/analysis` (newer pipeline, web measurements only) scores each layer:
  `dns/tcp/tls_blocked` and `likely_blocked_protocols`. Only it can say "TLS" (fastpath calls a
  reset after the ClientHello "http-failure", or even "dns").
- A country OONI has no data for answers HTTP 200 with an empty result: that is "no data", not a fault.

The live plan: with two axes per request, platform × network × time needs either one request per
platform (cost grows with platforms) or a day-long window. We take the day: a poll's buckets are
UTC days, today's re-sent with growing counts while it fills. The detector takes a re-sent day's
growth since its last sighting as new data and a drop as OONI revising the day, so a re-sent day
must never lose counts the source merely did not fetch this time. A platform with web domains and
app tests (WhatsApp, Telegram, Signal, Facebook) has two parts per day, one from each count request,
and a cycle's budget may refresh only one: in every cycle that fetched a part of a day, each
(platform, network) of that day is sent as the sum of its platform's last known parts — and not at
all until every part has been fetched once (a new process, a newly watched platform). Yesterday's
final parts come in one or two cycles after midnight; until both are in, the other part counts with
its last value from yesterday's polls.
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

History (backtest): per 7-day chunk, one hourly aggregation per platform (`axis_x=
measurement_start_day&time_grain=hour&axis_y=probe_asn`), one evidence listing, and one analysis
request per network with repeated web anomalies; every Observation carries only its hour's data.

Faults (timeouts, 5xx, 429, HTTP 200 with `{}` or an odd body, malformed JSON) are retried with
exponential backoff and jitter (429: longer, or the server's Retry-After); after `retries` the
call raises SourceError and the caller keeps its state. An outage is logged once, and so is its end.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bot import catalog
from bot.observations import Observation

log = logging.getLogger(__name__)

WEB_TEST = "web_connectivity"
HOUR_GRAIN_DAYS = 7  # the API's longest range for time_grain=hour
EVIDENCE_PER_BUCKET = 5  # uids kept per platform/network/bucket: an alert lists a few
HISTORY_EVIDENCE_LIMIT = 5000
# fastpath's scores.analysis.blocking_type → our method. An HTTPS "http-failure" means DNS was
# consistent and TCP connected, and a middlebox cannot touch HTTP inside TLS: it is the handshake.
BLOCKING_TYPE_METHOD = {"dns": "dns", "tcp_ip": "tcp", "http-diff": "http"}
LAYERS = ("dns", "tcp", "tls")


class SourceError(Exception):
    """The source could not answer after its retries: the caller keeps its state (never an unblock)."""


class _Fault(Exception):
    """One failed attempt worth retrying."""

    def __init__(self, reason: str, *, retry_after: float | None = None, quota: bool = False):
        super().__init__(reason)
        self.retry_after, self.quota = retry_after, quota


@dataclass
class _Counts:
    measurements: int = 0
    anomalies: int = 0
    confirmed: int = 0
    failures: int = 0

    def add(self, entry: dict[str, int]) -> None:
        self.measurements += entry["measurement_count"]
        self.anomalies += entry["anomaly_count"]
        self.confirmed += entry["confirmed_count"]
        self.failures += entry["failure_count"]

    @property
    def signs(self) -> int:
        return self.anomalies + self.confirmed


@dataclass
class _Details:
    """What we learned beyond the counts for one (platform, asn, bucket start)."""

    evidence: tuple[str, ...] = ()
    fallback: str | None = None  # method from fastpath's blocking_type
    method: str | None = None  # method from the analysis pipeline
    evidence_at: datetime | None = None
    method_at: datetime | None = None


Part = dict[str, dict[int, _Counts]]  # one count request's answer for one day: platform → asn → counts


@dataclass
class _CountryPoll:
    """What the live poll remembers about one country between cycles."""

    details: dict[tuple[str, int, datetime], _Details] = field(default_factory=dict)
    # The last answer of each count request ("web" or "apps") per day start. A day is sent as the sum
    # of its platforms' parts, so a part not fetched this cycle counts with its last known value.
    parts: dict[tuple[str, datetime], Part] = field(default_factory=dict)
    final: dict[tuple[str, tuple[str, ...]], date] = field(default_factory=dict)  # yesterday fetched, per query
    apps_waiting: bool = False  # app counts were skipped last cycle to make room for details


class _Budget:
    def __init__(self, limit: int):
        self.left = limit

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        return True


Key = tuple[str, int, datetime]  # (platform, asn, bucket start)


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def _midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=timezone.utc)


def _stamp(t: datetime) -> str:
    """A datetime query value the API parses: naive UTC, seconds."""
    return _utc(t).strftime("%Y-%m-%dT%H:%M:%S")


def _asn(value: Any) -> int | None:
    """29049 from 29049, "29049" or "AS29049"; None for anything else or 0 (no network known)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value[2:] if value.upper().startswith("AS") else value
    try:
        asn = int(value)
    except (TypeError, ValueError):
        return None
    return asn if asn > 0 else None


def _parse_api_time(value: str) -> datetime:
    """The API's timestamps, aware: "2022-09-14T06:00:00Z", "…T06:28:13.000000Z", "…T06:00:00", "2022-09-14"."""
    return _utc(datetime.fromisoformat(value.replace("Z", "+00:00")))


def _fallback_method(blocking_type: Any, url: str | None) -> str | None:
    if blocking_type == "http-failure":
        return "tls" if (url or "").startswith("https://") else "http"
    return BLOCKING_TYPE_METHOD.get(blocking_type) if isinstance(blocking_type, str) else None


def _loni_method(loni: Any) -> tuple[str, float] | None:
    """The likeliest blocked layer of an analysis entry, if one is more likely blocked than not."""
    if not isinstance(loni, dict):
        return None
    best: tuple[str, float] | None = None
    for item in loni.get("likely_blocked_protocols") or ():
        try:
            name, value = str(item[0]), float(item[1])
        except (TypeError, ValueError, IndexError):
            continue
        layer = name.split(".", 1)[0]
        if layer in LAYERS and value > 0.5 and (best is None or value > best[1]):
            best = (layer, value)
    if best is not None:
        return best
    for layer in LAYERS:
        # Older and newer shapes: dns_blocked, or dns_isp_blocked / dns_other_blocked.
        keys = (f"{layer}_blocked", f"{layer}_isp_blocked", f"{layer}_other_blocked")
        values = [float(v) for k in keys if isinstance(v := loni.get(k), (int, float))]
        if values and max(values) > 0.5 and (best is None or max(values) > best[1]):
            best = (layer, max(values))
    return best


def _blocking_type(scores: Any) -> Any:
    analysis = scores.get("analysis") if isinstance(scores, dict) else None
    return analysis.get("blocking_type") if isinstance(analysis, dict) else None


def _majority(votes: dict[str, int]) -> str | None:
    return max(sorted(votes), key=lambda m: votes[m]) if votes else None


# ---------------------------------------------------------------------------------------------
# Checking bodies: an odd body is a fault, never "zero measurements"
# ---------------------------------------------------------------------------------------------

_COUNT_KEYS = ("measurement_count", "anomaly_count", "confirmed_count", "failure_count", "ok_count")


def _aggregation_rows(body: Any) -> list[dict]:
    if not isinstance(body, dict) or not isinstance(body.get("result"), list):
        raise _Fault("aggregation answered without a result list")
    for entry in body["result"]:
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(k), int) and not isinstance(entry.get(k), bool) for k in _COUNT_KEYS
        ):
            raise _Fault("aggregation result row without its counts")
    return body["result"]


def _listing(body: Any) -> list[dict]:
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        raise _Fault("answer without a results list")
    if not all(isinstance(entry, dict) for entry in body["results"]):
        raise _Fault("results list with a non-object entry")
    return body["results"]


# ---------------------------------------------------------------------------------------------
# The source
# ---------------------------------------------------------------------------------------------


class OoniSource:
    """The OONI API as a measurement source. One aiohttp session for its life (`async with`)."""

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
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.budget = budget
        self.detail_ttl = detail_ttl
        self.max_retry_after = max_retry_after  # a longer Retry-After ends this call; later calls wait it out
        # A lone anomaly is background noise (the detector wants several): no evidence request for it.
        self.detail_min_signs = detail_min_signs
        self._sleep = sleep
        self._session = session
        self._own_session = session is None
        self._countries: dict[str, _CountryPoll] = {}
        self._outage_since: float | None = None
        self._outage_failures = 0
        self._quota_until = 0.0
        self.requests_made = 0  # HTTP requests sent, retries included
        self.errors = 0  # attempts that failed

    async def __aenter__(self) -> OoniSource:
        self._ensure_session()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers={"User-Agent": "blockwatch (OONI alerts bot)"})
            self._own_session = True
        return self._session

    # -- HTTP with retries -------------------------------------------------------------------

    def _delay(self, attempt: int, fault: _Fault) -> float:
        base = self.backoff * 2**attempt * (4 if fault.quota else 1)  # over quota: back off harder
        delay = base / 2 + random.uniform(0, base / 2)  # jitter: pollers of many bots don't retry in step
        if fault.retry_after is not None:
            delay = max(delay, fault.retry_after)
        return delay

    def _failed(self, path: str, reason: str) -> None:
        self.errors += 1
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            self._outage_failures = 1
            log.warning("OONI API failing (%s: %s); retrying with backoff, logged once until it recovers", path, reason)
        else:
            self._outage_failures += 1
            log.debug("OONI API still failing (%s: %s)", path, reason)

    def _answered(self) -> None:
        if self._outage_since is not None:
            log.info(
                "OONI API recovered after %d failed attempts over %.0f s",
                self._outage_failures, time.monotonic() - self._outage_since,
            )
            self._outage_since = None
            self._outage_failures = 0

    async def _get(self, path: str, params: dict[str, str], check: Callable[[Any], Any]) -> Any:
        """GET a JSON document and `check` it; retry faults; SourceError when retries run out."""
        if time.monotonic() < self._quota_until:
            raise SourceError(f"OONI API quota exceeded; waiting {self._quota_until - time.monotonic():.0f} s more")
        session = self._ensure_session()
        url = self.base_url + path
        for attempt in range(self.retries + 1):
            self.requests_made += 1
            try:
                async with session.get(url, params=params, timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                    raw = await resp.read()
                    text = raw[:200].decode("utf-8", "replace")
                    if resp.status == 429:
                        raise _Fault("HTTP 429 quota exceeded", retry_after=_retry_after(resp), quota=True)
                    if resp.status >= 500 or resp.status == 408:
                        raise _Fault(f"HTTP {resp.status}")
                    if resp.status != 200:
                        # A 4xx is a request the API will never accept: retrying cannot help.
                        self._failed(path, f"HTTP {resp.status} {text}")
                        raise SourceError(f"OONI API refused {path}: HTTP {resp.status} {text}")
                    try:
                        body = json.loads(raw)
                    except ValueError:  # UnicodeDecodeError included
                        raise _Fault("malformed JSON") from None
                    result = check(body)
            except _Fault as fault:
                failure = fault
            except asyncio.TimeoutError:
                failure = _Fault(f"no answer within {self.timeout:g} s")
            except aiohttp.ClientError as exc:
                failure = _Fault(f"{type(exc).__name__}: {exc}")
            else:
                self._answered()
                return result
            self._failed(path, str(failure))
            if failure.quota and failure.retry_after is not None and failure.retry_after > self.max_retry_after:
                self._quota_until = time.monotonic() + failure.retry_after
                raise SourceError(f"OONI API quota exceeded; retry after {failure.retry_after:.0f} s")
            if attempt == self.retries:
                raise SourceError(f"OONI API {path} failed {attempt + 1} times, last: {failure}")
            await self._sleep(self._delay(attempt, failure))
        raise AssertionError("unreachable")

    async def _aggregate(self, params: dict[str, str]) -> list[dict]:
        return await self._get("/api/v1/aggregation", params, _aggregation_rows)

    # -- requests, each one step of a plan ---------------------------------------------------

    async def _web_counts(
        self, cc: str, domains: Iterable[str], since: date, until: date
    ) -> dict[tuple[str, int], _Counts]:
        rows = await self._aggregate({
            "probe_cc": cc, "test_name": WEB_TEST, "domain": ",".join(domains),
            "since": since.isoformat(), "until": until.isoformat(), "axis_x": "domain", "axis_y": "probe_asn",
        })
        counts: dict[tuple[str, int], _Counts] = {}
        for entry in rows:
            platform, asn = catalog.platform_of(cc, domain=entry.get("domain") or None), _asn(entry.get("probe_asn"))
            if platform and asn:
                counts.setdefault((platform, asn), _Counts()).add(entry)
        return counts

    async def _app_counts(
        self, cc: str, tests: Iterable[str], since: date, until: date
    ) -> dict[tuple[str, int], _Counts]:
        rows = await self._aggregate({
            "probe_cc": cc, "test_name": ",".join(tests),
            "since": since.isoformat(), "until": until.isoformat(), "axis_x": "test_name", "axis_y": "probe_asn",
        })
        counts: dict[tuple[str, int], _Counts] = {}
        for entry in rows:
            platform, asn = catalog.platform_of(cc, test_name=entry.get("test_name")), _asn(entry.get("probe_asn"))
            if platform and asn:
                counts.setdefault((platform, asn), _Counts()).add(entry)
        return counts

    async def _anomalous_rows(
        self, cc: str, web: set[tuple[str, int]], apps: set[tuple[str, int]], start: datetime, end: datetime,
        limit: int,
    ) -> list[tuple[str, int, datetime, str, str | None]]:
        """Anomalous measurements of these (platform, asn) pairs in [start, end):
        (platform, asn, time, uid, fallback method), newest first."""
        asns = sorted({asn for _, asn in web | apps})
        tests = sorted({t for p, _ in apps for t in catalog.PLATFORMS[p].tests})
        params = {
            "probe_cc": cc, "probe_asn": ",".join(f"AS{a}" for a in asns), "anomaly": "true", "failure": "false",
            # `since` is exclusive and `until` inclusive here: shift both to cover [start, end).
            "since": _stamp(start - timedelta(seconds=1)), "until": _stamp(end - timedelta(seconds=1)),
            "order_by": "measurement_start_time", "order": "desc", "limit": str(limit),
        }
        if web and not apps:
            params["test_name"] = WEB_TEST
            params["domain"] = ",".join(sorted({d for p, _ in web for d in catalog.platform_domains(p, cc)}))
        elif apps and not web:
            params["test_name"] = ",".join(tests)
        else:  # a domain filter would drop the app tests' rows: filter here instead
            params["test_name"] = ",".join([WEB_TEST, *tests])
        found = []
        for row in await self._get("/api/v1/measurements", params, _listing):
            asn, uid, test = _asn(row.get("probe_asn")), row.get("measurement_uid"), row.get("test_name")
            url = row.get("input") if isinstance(row.get("input"), str) else None
            if not asn or not isinstance(uid, str) or not isinstance(row.get("measurement_start_time"), str):
                continue
            if test == WEB_TEST:
                platform = catalog.platform_of(cc, domain=urlsplit(url).hostname if url else None)
                wanted, method = web, _fallback_method(_blocking_type(row.get("scores")), url)
            else:
                platform = catalog.platform_of(cc, test_name=test)
                wanted, method = apps, None
            try:
                when = _parse_api_time(row["measurement_start_time"])
            except ValueError:
                continue
            if platform and (platform, asn) in wanted and start <= when < end:
                found.append((platform, asn, when, uid, method))
        found.sort(key=lambda f: f[2], reverse=True)
        return found

    async def _analysis(
        self, cc: str, start: datetime, end: datetime, *, asn: int | None = None, hourly: bool = False
    ) -> list[dict]:
        # `until` is inclusive here.
        params = {
            "probe_cc": cc, "test_name": WEB_TEST, "since": _stamp(start), "until": _stamp(end - timedelta(seconds=1)),
        }
        if hourly:
            params.update(axis_x="measurement_start_day", time_grain="hour", axis_y="domain")
        else:
            params.update(axis_x="probe_asn", axis_y="domain")
        if asn is not None:
            params["probe_asn"] = f"AS{asn}"
        return await self._get("/api/v1/aggregation/analysis", params, _listing)

    # -- the live poll -----------------------------------------------------------------------

    async def observe(self, country: str, platforms: Iterable[str], now: datetime) -> list[Observation]:
        """One poll of one country: today's (and, once a day, yesterday's) counts per platform and network.

        Raises SourceError when the counts cannot be had; missing evidence or method does not fail it.
        """
        cc = _country_code(country)
        names = _platform_names(platforms)
        now = _utc(now)
        today = now.date()
        day = (_midnight(today), min(now, _midnight(today) + timedelta(days=1)))
        domains = tuple(sorted({d for p in names for d in catalog.platform_domains(p, cc)}))
        tests = tuple(sorted({t for p in names for t in catalog.PLATFORMS[p].tests}))
        poll = self._countries.setdefault(cc, _CountryPoll())
        budget = _Budget(self.budget)
        kinds = {  # the count requests each platform's day is made of
            p: tuple(k for k, query in (("web", catalog.platform_domains(p, cc)), ("apps", catalog.PLATFORMS[p].tests))
                     if query)
            for p in names
        }
        refreshed: set[datetime] = set()  # days with a part fetched this cycle: the days to send

        def put(kind: str, found: dict[tuple[str, int], _Counts], start: datetime) -> None:
            part = poll.parts.setdefault((kind, start), {})
            for platform in names:
                if kind in kinds[platform]:  # asked for: a network missing from the answer has none
                    part[platform] = {}
            for (platform, asn), c in found.items():
                if platform in part:
                    part[platform][asn] = c
            refreshed.add(start)

        web_today: dict[tuple[str, int], _Counts] = {}
        apps_today: dict[tuple[str, int], _Counts] | None = None

        async def fetch_apps() -> None:
            nonlocal apps_today
            budget.take()  # callers made sure one is left
            apps_today = await self._app_counts(cc, tests, today, today + timedelta(days=1))
            put("apps", apps_today, day[0])
            poll.apps_waiting = False

        if domains and budget.take():
            web_today = await self._web_counts(cc, domains, today, today + timedelta(days=1))
            put("web", web_today, day[0])
        if tests and poll.apps_waiting:
            await fetch_apps()
        # A newly anomalous pair's alert needs its evidence and method now; refreshes can wait.
        await self._fetch_details(cc, poll, web_today, apps_today or {}, day, now, budget, refresh=False)
        if tests and apps_today is None:
            if budget.left:
                await fetch_apps()
            else:
                poll.apps_waiting = True
                log.debug("%s: app counts wait for the next cycle (request budget spent on details)", cc)
        await self._fetch_details(cc, poll, web_today, apps_today or {}, day, now, budget, refresh=True)

        # Yesterday's final counts, once per day: measurements uploaded late still land in them.
        yesterday = today - timedelta(days=1)
        for kind, query, fetch in (("web", domains, self._web_counts), ("apps", tests, self._app_counts)):
            if query and poll.final.get((kind, query)) != yesterday and budget.take():
                try:
                    put(kind, await fetch(cc, query, yesterday, today), _midnight(yesterday))
                    poll.final[(kind, query)] = yesterday
                except SourceError:
                    pass  # logged by _get; today's counts are still good, yesterday waits

        self._prune(poll, yesterday)
        counts: dict[Key, _Counts] = {}
        for start in refreshed:
            for platform in names:
                parts = [poll.parts.get((kind, start), {}).get(platform) for kind in kinds[platform]]
                if not parts or None in parts:
                    # A part never fetched (a new process, a newly watched platform): the sum without it
                    # would look like OONI shrinking the day. The day waits for that part.
                    continue
                for part in parts:
                    for asn, c in part.items():
                        total = counts.setdefault((platform, asn, start), _Counts())
                        total.measurements += c.measurements
                        total.anomalies += c.anomalies
                        total.confirmed += c.confirmed
                        total.failures += c.failures
        observations = []
        for (platform, asn, start), c in sorted(counts.items()):
            d = poll.details.get((platform, asn, start), _Details())
            observations.append(Observation(
                country=cc, platform=platform, asn=asn, start=start,
                end=start + timedelta(days=1),
                measurements=c.measurements, anomalies=c.anomalies, confirmed=c.confirmed, failures=c.failures,
                method=d.method or d.fallback, evidence=d.evidence,
            ))
        return observations

    async def _fetch_details(
        self, cc: str, poll: _CountryPoll, web: dict[tuple[str, int], _Counts],
        apps: dict[tuple[str, int], _Counts], day: tuple[datetime, datetime], now: datetime, budget: _Budget,
        *, refresh: bool,
    ) -> None:
        """Evidence (and, for web anomalies, the method) of today's anomalous pairs that have none
        yet — or, with `refresh`, whose details are older than `detail_ttl`."""
        start, end = day

        def stale(at: datetime | None) -> bool:
            return at is None or (refresh and now - at >= self.detail_ttl)

        def details(pair: tuple[str, int]) -> _Details:
            return poll.details.setdefault((*pair, start), _Details())

        web_bad = {pair for pair, c in web.items() if c.signs >= self.detail_min_signs}
        app_bad = {pair for pair, c in apps.items() if c.signs >= self.detail_min_signs}
        need_evidence_web = {p for p in web_bad if stale(details(p).evidence_at)}
        need_evidence_apps = {p for p in app_bad if stale(details(p).evidence_at)}
        need_method = {p for p in web_bad if stale(details(p).method_at)}

        if (need_evidence_web or need_evidence_apps) and budget.take():
            try:
                rows = await self._anomalous_rows(cc, need_evidence_web, need_evidence_apps, start, end, limit=200)
            except SourceError:
                rows = None  # logged by _get; the next cycle asks again
            if rows is not None:
                evidence: dict[tuple[str, int], list[str]] = {}
                votes: dict[tuple[str, int], dict[str, int]] = {}
                for platform, asn, _, uid, method in rows:
                    evidence.setdefault((platform, asn), []).append(uid)
                    if method:
                        v = votes.setdefault((platform, asn), {})
                        v[method] = v.get(method, 0) + 1
                for pair in need_evidence_web | need_evidence_apps:
                    d = details(pair)
                    d.evidence = tuple(evidence.get(pair, ())[:EVIDENCE_PER_BUCKET])
                    d.fallback = _majority(votes.get(pair, {}))
                    d.evidence_at = now
        if need_method and budget.take():
            asns = {asn for _, asn in need_method}
            try:
                entries = await self._analysis(cc, start, end, asn=next(iter(asns)) if len(asns) == 1 else None)
            except SourceError:
                entries = None
            if entries is not None:
                best: dict[tuple[str, int], tuple[str, float]] = {}
                for entry in entries:
                    asn = _asn(entry.get("probe_asn"))
                    platform = catalog.platform_of(cc, domain=entry.get("domain") or None)
                    found = _loni_method(entry.get("loni"))
                    if found and (platform, asn) in need_method and found[1] > best.get((platform, asn), ("", 0.0))[1]:
                        best[(platform, asn)] = found
                for pair in need_method:
                    d = details(pair)
                    d.method = best[pair][0] if pair in best else None
                    d.method_at = now

    @staticmethod
    def _prune(poll: _CountryPoll, oldest: date) -> None:
        cutoff = _midnight(oldest)
        for key in [k for k in poll.details if k[2] < cutoff]:
            del poll.details[key]
        for key in [k for k in poll.parts if k[1] < cutoff]:
            del poll.parts[key]

    # -- history, for the backtest -----------------------------------------------------------

    async def history(self, country: str, platforms: Iterable[str], since: date, until: date) -> list[Observation]:
        """Hourly Observations of [since, until) (`until` exclusive, like the API), each with its hour's data only."""
        cc = _country_code(country)
        names = _platform_names(platforms)
        observations: list[Observation] = []
        chunk = since
        while chunk < until:
            chunk_end = min(chunk + timedelta(days=HOUR_GRAIN_DAYS), until)
            observations += await self._history_chunk(cc, names, chunk, chunk_end)
            chunk = chunk_end
        return observations

    async def _history_chunk(self, cc: str, names: list[str], since: date, until: date) -> list[Observation]:
        counts: dict[Key, _Counts] = {}
        web_keys: set[Key] = set()
        app_keys: set[Key] = set()
        for platform in names:
            domains = catalog.platform_domains(platform, cc)
            tests = catalog.PLATFORMS[platform].tests
            queries: list[tuple[dict[str, str], set[Key]]] = []
            if domains:
                queries.append(({"test_name": WEB_TEST, "domain": ",".join(domains)}, web_keys))
            if tests:
                queries.append(({"test_name": ",".join(tests)}, app_keys))
            for query, keys in queries:
                rows = await self._aggregate({
                    "probe_cc": cc, **query, "since": since.isoformat(), "until": until.isoformat(),
                    "axis_x": "measurement_start_day", "axis_y": "probe_asn", "time_grain": "hour",
                })
                for entry in rows:
                    asn = _asn(entry.get("probe_asn"))
                    try:
                        hour = _parse_api_time(str(entry.get("measurement_start_day")))
                    except ValueError:
                        odd = entry.get("measurement_start_day")
                        raise SourceError(f"OONI aggregation gave an odd hour {odd!r}") from None
                    if not asn:
                        continue
                    key = (platform, asn, hour)
                    counts.setdefault(key, _Counts()).add(entry)
                    if entry["anomaly_count"] + entry["confirmed_count"]:
                        keys.add(key)

        start, end = _midnight(since), _midnight(until)
        details: dict[Key, _Details] = {}
        web_pairs = {(p, a) for p, a, _ in web_keys}
        app_pairs = {(p, a) for p, a, _ in app_keys}
        if web_pairs or app_pairs:
            try:
                rows = await self._anomalous_rows(cc, web_pairs, app_pairs, start, end, limit=HISTORY_EVIDENCE_LIMIT)
            except SourceError:
                rows = []  # the counts stand without links; logged by _get
            votes: dict[Key, dict[str, int]] = {}
            for platform, asn, when, uid, method in rows:
                key = (platform, asn, when.replace(minute=0, second=0, microsecond=0))
                d = details.setdefault(key, _Details())
                if len(d.evidence) < EVIDENCE_PER_BUCKET:
                    d.evidence += (uid,)
                if method:
                    v = votes.setdefault(key, {})
                    v[method] = v.get(method, 0) + 1
            for key, v in votes.items():
                details[key].fallback = _majority(v)

        # The method, hour by hour, for networks whose web anomalies repeat (one-offs need none).
        signs_per_asn: dict[int, int] = {}
        for key in web_keys:
            signs_per_asn[key[1]] = signs_per_asn.get(key[1], 0) + counts[key].signs
        for asn in sorted(a for a, n in signs_per_asn.items() if n >= 2):
            try:
                entries = await self._analysis(cc, start, end, asn=asn, hourly=True)
            except SourceError:
                continue
            best: dict[Key, tuple[str, float]] = {}
            for entry in entries:
                platform = catalog.platform_of(cc, domain=entry.get("domain") or None)
                found = _loni_method(entry.get("loni"))
                try:
                    hour = _parse_api_time(str(entry.get("measurement_start_day")))
                except ValueError:
                    continue
                key = (platform, asn, hour)
                if found and key in web_keys and found[1] > best.get(key, ("", 0.0))[1]:
                    best[key] = found
            for key, (method, _) in best.items():
                details.setdefault(key, _Details()).method = method

        observations = []
        for (platform, asn, hour), c in sorted(counts.items()):
            d = details.get((platform, asn, hour), _Details())
            observations.append(Observation(
                country=cc, platform=platform, asn=asn, start=hour, end=hour + timedelta(hours=1),
                measurements=c.measurements, anomalies=c.anomalies, confirmed=c.confirmed, failures=c.failures,
                method=d.method or d.fallback, evidence=d.evidence,
            ))
        return observations


def _country_code(country: str) -> str:
    cc = (country or "").strip().upper()
    if not (len(cc) == 2 and cc.isascii() and cc.isalpha()):
        raise SourceError(f"not an ISO 3166-1 alpha-2 country code: {country!r}")
    return cc


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


def _retry_after(resp: aiohttp.ClientResponse) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date), if the server sent one."""
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError):
        return None
