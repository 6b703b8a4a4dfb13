"""A fake OONI API on 127.0.0.1 that answers from measurement rows the way ooni/backend does.

It holds rows of OONI's `fastpath` table (the shape of tests/fixtures/ooni/fastpath_rows_2024-01-01.jsonl)
and answers by filtering and grouping them with the rules of ooni/backend's oonimeasurements
service (routers/v1/aggregation.py, routers/v1/measurements.py, routers/data/aggregate_analysis.py):

- `GET /api/v1/aggregation`: `since`/`until` are dates, `until` exclusive (rows are compared by the
  time grain's truncation, `toStartOfHour(t) >= toStartOfHour(since)`); comma lists for probe_cc,
  probe_asn ("AS…" or digits), test_name, domain; `axis_x`/`axis_y` among the backend's eight axes
  (`blocking_type` comes from `scores.analysis.blocking_type`, "" when absent); counts
  `countIf(anomaly='t' AND confirmed='f' AND msm_failure='f')`, `countIf(confirmed='t' AND
  msm_failure='f')`, `countIf(msm_failure='t')`, `countIf(anomaly='f' AND confirmed='f' AND
  msm_failure='f')`, `COUNT(*)`; `time_grain` hour only for ranges ≤ 7 days, else HTTP 400
  `{"msg": "Choose time_grain between …", "v": 0}`; equal axes answer HTTP 200 with `{"msg", "v"}`;
  results ordered by the axes, None fields left out, `probe_asn` an int, hours as
  "2022-09-14T06:00:00Z" and days as "2022-09-14"; no axis gives one object, not a list.
- `GET /api/v1/measurements`: `since` exclusive and `until` inclusive datetimes (defaults: until
  tomorrow 00:00 UTC, since 30 days before; over 180 days is a 400), `anomaly/confirmed/failure`
  flags, `probe_asn != 0` and `probe_cc != 'ZZ'` unless asked, order by (start time, uid), rows as
  the recorded bodies: `probe_asn` "AS29049", `scores` an object, `input` None for app tests.
- `GET /api/v1/aggregation/analysis` (the newer pipeline, shape of aggregate_analysis.py with
  `dns/tcp/tls_blocked` and `likely_blocked_protocols`): single-valued filters, `since >=` and
  `until <=` datetimes, q95 of the per-measurement scores per group. Its table
  (`analysis_web_measurement`) is not in any recorded data, so only rows given an `_analysis` dict
  (see `web_analysis()`) are in it — every such dict is synthetic and says so where it is made.

Faults: `fail_next(n, status=…)` (503/500/502…, 429 `{"error":"quota exceeded"}` with an optional
Retry-After, 200 → `{}`, "malformed" → truncated JSON, "timeout" → no answer), `outage(on)`.
Every request is recorded in `requests` as (path, query dict).

Loaders: `load_fastpath_background()` (the real 2024-01-01 rows), `az_tiktok_episode()` (the
September 2022 Azerbaijan TikTok block made by re-dating real rows; what it changes is listed there),
`az_whatsapp_rows()` (WhatsApp on AZ networks, web and app test, from re-dated real rows).
"""

from __future__ import annotations

import asyncio
import csv
import json
import math
import random
import string
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from tests.fakes.faults import fault_response

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "ooni"
BACKGROUND_FILE = FIXTURES / "fastpath_rows_2024-01-01.jsonl"
AZ_LIST_2022 = FIXTURES / "az.csv@d6f22462_2022-09-14.csv"

AGGREGATION_AXES = (
    "blocking_type", "category_code", "domain", "input", "measurement_start_day", "probe_asn", "probe_cc", "test_name",
)
ANALYSIS_AXES = ("measurement_start_day", "domain", "probe_cc", "probe_asn", "test_name", "input")
TIME_GRAINS = ("hour", "day", "week", "month", "year", "auto")
FAULTS = ("timeout", "malformed", "empty")


# ---------------------------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------------------------


def _flag(value: Any) -> str:
    """The dump's 't'/'f' from 't'/'f', a bool or None (None counts as 'f', as the backend reads it)."""
    if isinstance(value, str):
        return "t" if value.lower() in ("t", "true", "1") else "f"
    return "t" if value else "f"


def _parse_time(value: str) -> datetime:
    """A fastpath timestamp ("2024-01-01 00:00:01" or ISO with Z) as a naive UTC datetime."""
    t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return t.astimezone(timezone.utc).replace(tzinfo=None) if t.tzinfo else t


@dataclass(frozen=True)
class _Row:
    """One fastpath row, normalised once so every request only filters."""

    uid: str
    report_id: str
    cc: str
    asn: int
    test_name: str
    domain: str | None
    input: str | None
    start: datetime  # naive UTC
    anomaly: str  # 't' | 'f'
    confirmed: str
    failure: str
    scores: dict
    analysis: dict | None

    @classmethod
    def of(cls, raw: dict) -> _Row:
        scores = raw.get("scores") or "{}"
        asn = raw.get("probe_asn") or 0
        if isinstance(asn, str):
            asn = int(asn[2:]) if asn.upper().startswith("AS") else int(asn)
        return cls(
            uid=raw["measurement_uid"],
            report_id=raw.get("report_id") or "",
            cc=raw["probe_cc"],
            asn=int(asn),
            test_name=raw["test_name"],
            domain=raw.get("domain"),
            input=raw.get("input"),
            start=_parse_time(raw["measurement_start_time"]),
            anomaly=_flag(raw.get("anomaly")),
            confirmed=_flag(raw.get("confirmed")),
            failure=_flag(raw.get("msm_failure", raw.get("failure"))),
            scores=json.loads(scores) if isinstance(scores, str) else dict(scores),
            analysis=raw.get("_analysis"),
        )

    @property
    def blocking_type(self) -> str:
        """JSONExtractString(scores, 'analysis', 'blocking_type'): "" when absent."""
        analysis = self.scores.get("analysis")
        value = analysis.get("blocking_type") if isinstance(analysis, dict) else None
        return value if isinstance(value, str) else ""


def load_fastpath_background() -> list[dict]:
    """The real 1,080 fastpath rows received 2024-01-01 00:00–00:01 UTC, as the dump has them."""
    with BACKGROUND_FILE.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def tiktok_endpoints_az_2022() -> list[str]:
    """The 24 TikTok URLs Azerbaijan's test list gained on 2022-09-14 (citizenlab/test-lists d6f22462)."""
    urls = []
    with AZ_LIST_2022.open(encoding="utf-8", newline="") as f:
        for row in csv.reader(f):
            # One URL holds an unquoted comma ("?lang=en,zh&…"): the last five columns are fixed.
            url, date_added = ",".join(row[:-5]), row[-3]
            if date_added == "2022-09-14":
                urls.append(url)
    return urls


def web_analysis(layer: str | None = None, *, blocked: float = 0.9, failure: str = "connection_reset") -> dict:
    """A SYNTHETIC per-measurement row of the analysis pipeline (analysis_web_measurement columns).

    `layer` None: everything reachable. "dns"/"tcp"/"tls": that layer `blocked` likely, with
    `failure` as its top failure string. Used only where a test says what the pipeline would see.
    """
    row = {
        "dns_blocked": 0.0, "dns_down": 0.0, "dns_ok": 1.0,
        "tcp_blocked": 0.0, "tcp_down": 0.0, "tcp_ok": 1.0,
        "tls_blocked": 0.0, "tls_down": 0.0, "tls_ok": 1.0,
        "top_dns_failure": None, "top_tcp_failure": None, "top_tls_failure": None,
    }
    if layer is not None:
        if layer not in ("dns", "tcp", "tls"):
            raise ValueError(f"unknown layer {layer!r}")
        row[f"{layer}_blocked"] = blocked
        row[f"{layer}_ok"] = round(1.0 - blocked, 6)
        row[f"top_{layer}_failure"] = failure
    return row


def redate(
    template: dict,
    *,
    cc: str,
    asn: int,
    when: datetime,
    rng: random.Random,
    input: str | None = None,
    analysis: dict | None = None,
) -> dict:
    """A copy of a real row moved to another country, network, time (and URL, for web rows).

    Changed: probe_cc, probe_asn, measurement_start_time and test_start_time (`when`, test started
    1–30 s before), measurement_uid and report_id (re-made in OONI's formats from the new time,
    country, network and seeded random hex, so they stay unique), and for web rows input and domain.
    `_template_uid` keeps the real row's uid; `_analysis` is set only when given (synthetic).
    Everything else — the flags, scores, blocking_type, software, versions — is the real row's.
    """
    row = dict(template)
    tn = row["test_name"].replace("_", "")
    started = when - timedelta(seconds=rng.randint(1, 30))
    row["_template_uid"] = template["measurement_uid"]
    row["probe_cc"] = cc
    row["probe_asn"] = asn
    row["measurement_start_time"] = when.strftime("%Y-%m-%d %H:%M:%S")
    row["test_start_time"] = started.strftime("%Y-%m-%d %H:%M:%S")
    row["measurement_uid"] = (
        f"{when:%Y%m%d%H%M%S}.{rng.randrange(10**6):06d}_{cc}_{tn}_{rng.getrandbits(64):016x}"
    )
    token = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(16))
    row["report_id"] = f"{started:%Y%m%dT%H%M%SZ}_{tn}_{cc}_{asn}_n1_{token}"
    if input is not None:
        row["input"] = input
        row["domain"] = urlsplit(input).hostname
    if analysis is not None:
        row["_analysis"] = analysis
    return row


def _templates(rows: Iterable[dict]) -> tuple[list[dict], list[dict]]:
    """Real web_connectivity rows to re-date: HTTPS failures that fastpath calls "http-failure"
    (what TLS interference looks like to it), and plain OK measurements of HTTPS sites."""
    blocked, ok = [], []
    for raw in rows:
        if raw["test_name"] != "web_connectivity" or not (raw.get("input") or "").startswith("https://"):
            continue
        row = _Row.of(raw)
        if row.failure == "f" and row.confirmed == "f" and row.anomaly == "t" and row.blocking_type == "http-failure":
            blocked.append(raw)
        elif row.failure == "f" and row.confirmed == "f" and row.anomaly == "f":
            ok.append(raw)
    return blocked, ok


AZ_BLOCKED_ASNS = (29049, 41997, 31721)  # Delta Telecom, Connect, Azercell: where OONI found TLS blocking
AZ_OK_ASNS = (28787, 57293)  # Aztelekom, AG Telekom: no blocking in the episode


def az_tiktok_episode(
    start: datetime = datetime(2022, 9, 14, 6),
    end: datetime = datetime(2022, 9, 16, 12),
    *,
    after: timedelta = timedelta(hours=24),
    blocked_asns: Sequence[int] = AZ_BLOCKED_ASNS,
    ok_asns: Sequence[int] = AZ_OK_ASNS,
    per_hour: int = 2,
    seed: int = 2022,
) -> list[dict]:
    """The Azerbaijan TikTok block of September 2022, made by re-dating real fastpath rows.

    From `start` to `end` (naive UTC hours), each network gets `per_hour` web_connectivity
    measurements an hour of the 24 TikTok endpoints added to the AZ list on 2022-09-14. On the
    `blocked_asns` each network blocks its own ~90% of the endpoints (seeded): those measurements
    are copies of real anomalous HTTPS rows that fastpath labelled "http-failure", plus a
    SYNTHETIC `_analysis` saying TLS blocked (connection reset after the ClientHello, as OONI
    reported); every other measurement is a copy of a real OK HTTPS row with an all-reachable
    `_analysis`. For `after` past `end` every network is OK. What each copy changes is in
    `redate()`; the background rows are not included.
    """
    rng = random.Random(seed)
    bad_templates, ok_templates = _templates(load_fastpath_background())
    endpoints = tiktok_endpoints_az_2022()
    blocked_lists = {
        asn: set(rng.sample(endpoints, k=len(endpoints) - rng.randint(2, 3))) for asn in blocked_asns
    }
    rows: list[dict] = []
    hour = start
    while hour < end + after:
        for asn in (*blocked_asns, *ok_asns):
            for _ in range(per_hour):
                when = hour + timedelta(seconds=rng.randrange(3600))
                url = rng.choice(endpoints)
                blocked = hour < end and url in blocked_lists.get(asn, ())
                if blocked:
                    template, analysis = rng.choice(bad_templates), web_analysis("tls")
                else:
                    template, analysis = rng.choice(ok_templates), web_analysis(None)
                rows.append(redate(template, cc="AZ", asn=asn, when=when, rng=rng, input=url, analysis=analysis))
        hour += timedelta(hours=1)
    return rows


def az_whatsapp_rows(
    start: datetime,
    end: datetime,
    *,
    asns: Sequence[int] = AZ_OK_ASNS,
    every: timedelta = timedelta(minutes=10),
    seed: int = 20,
) -> list[dict]:
    """WhatsApp measured both ways on AZ networks, made by re-dating real fastpath rows.

    From `start` to `end` (naive UTC), every `every` on each network: one web_connectivity
    measurement of https://www.whatsapp.com/ (a copy of a real OK HTTPS row) and one `whatsapp`
    app test (a copy of one of the 24 real `whatsapp` rows of 2024-01-01, one of them anomalous).
    So a day of WhatsApp on one network has counts from two aggregation requests (web domains,
    app tests) — what a source must add up. What each copy changes is in `redate()`.
    """
    rng = random.Random(seed)
    background = load_fastpath_background()
    _, ok_web = _templates(background)
    app_tests = [row for row in background if row["test_name"] == "whatsapp"]
    rows: list[dict] = []
    slot = start
    while slot < end:
        for asn in asns:
            when = slot + timedelta(seconds=rng.randrange(int(every.total_seconds())))
            rows.append(redate(rng.choice(ok_web), cc="AZ", asn=asn, when=when, rng=rng,
                               input="https://www.whatsapp.com/"))
            when = slot + timedelta(seconds=rng.randrange(int(every.total_seconds())))
            rows.append(redate(rng.choice(app_tests), cc="AZ", asn=asn, when=when, rng=rng))
        slot += every
    return rows


# ---------------------------------------------------------------------------------------------
# Parameter parsing, the way FastAPI/pydantic validate them
# ---------------------------------------------------------------------------------------------


class _Reject(Exception):
    """An answer other than the normal one (validation error, jerror, HTTPException)."""

    def __init__(self, status: int, body: Any):
        self.status, self.body = status, body


def _invalid(field: str, value: Any, msg: str) -> _Reject:
    return _Reject(422, {"detail": [{"type": "value_error", "loc": ["query", field], "msg": msg, "input": value}]})


def _commasplit(value: str) -> list[str]:
    out = set(value.split(","))
    out.discard("")
    return sorted(out)


def _date_param(q, name: str) -> datetime | None:
    """A `date` query parameter: "2022-09-14" (or a datetime at exactly midnight, as pydantic allows)."""
    value = q.get(name)
    if value is None:
        return None
    try:
        return datetime.combine(date.fromisoformat(value), datetime.min.time())
    except ValueError:
        pass
    try:
        t = _parse_time(value)
    except ValueError:
        raise _invalid(name, value, "Input should be a valid date") from None
    if t.time() != datetime.min.time():
        raise _invalid(name, value, "Datetimes provided to dates should have zero time - e.g. be exact dates")
    return t


def _datetime_param(q, name: str) -> datetime | None:
    value = q.get(name)
    if value is None:
        return None
    try:
        return _parse_time(value)
    except ValueError:
        raise _invalid(name, value, "Input should be a valid datetime") from None


def _bool_param(q, name: str) -> bool | None:
    value = q.get(name)
    if value is None:
        return None
    v = value.lower()
    if v in ("true", "1", "yes", "on", "t", "y"):
        return True
    if v in ("false", "0", "no", "off", "f", "n"):
        return False
    raise _invalid(name, value, "Input should be a valid boolean")


def _int_param(q, name: str, default: int, lo: int | None = None, hi: int | None = None) -> int:
    value = q.get(name)
    if value is None:
        return default
    try:
        n = int(value)
    except ValueError:
        raise _invalid(name, value, "Input should be a valid integer") from None
    if (lo is not None and n < lo) or (hi is not None and n > hi):
        raise _invalid(name, value, "Input out of range")
    return n


def _resolve_time_grain(since: datetime, until: datetime, time_grain: str) -> str:
    """ooni/backend aggregation.py: which grains a range allows; "auto" takes the finest."""
    delta = until - since
    if delta <= timedelta():
        raise _Reject(400, {"msg": "Invalid since and until values", "v": 0})
    for days, allowed in (
        (7, ("hour", "day", "auto")),
        (30, ("day", "week", "auto")),
        (365, ("day", "week", "month", "auto")),
        (9999999, ("day", "week", "month", "year", "auto")),
    ):
        if delta > timedelta(days=days):
            continue
        if time_grain not in allowed:
            msg = f"Choose time_grain between {', '.join(allowed)} for the given time range"
            raise _Reject(400, {"msg": msg, "v": 0})
        return allowed[0] if time_grain == "auto" else time_grain
    raise _Reject(400, {"msg": "Unable to resolve time_grain", "v": 0})


def _truncate(t: datetime, grain: str) -> datetime:
    """ClickHouse toStartOfHour / toDate / toStartOfWeek (Sunday) / toStartOfMonth / toStartOfYear."""
    if grain == "hour":
        return t.replace(minute=0, second=0, microsecond=0)
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    if grain in ("day", "auto"):
        return day
    if grain == "week":
        return day - timedelta(days=(day.weekday() + 1) % 7)
    if grain == "month":
        return day.replace(day=1)
    if grain == "year":
        return day.replace(month=1, day=1)
    raise KeyError(grain)


def _sort_key(value: Any) -> tuple:
    return (value is None, value if value is not None else 0)


def _quantile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (what ClickHouse's quantile gives on small sets)."""
    s = sorted(values)
    if not s:
        return math.nan
    pos = (len(s) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------


class FakeOoni:
    """`async with FakeOoni(rows) as fake:` — a fake OONI API at `fake.url`."""

    def __init__(self, rows: Iterable[dict] = (), *, hang: float = 30.0, port: int = 0):
        self.port = port  # 0: any free port (tests); a fixed one for serve_ooni
        self._rows: dict[str, list[_Row]] = {}
        self._total = 0
        self.hang = hang  # how long a "timeout" fault keeps the client waiting
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._faults: list[tuple[int | str, float | None]] = []
        self._outage = False
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.add_rows(rows)

    # -- data and faults ---------------------------------------------------------------------

    def add_rows(self, rows: Iterable[dict]) -> None:
        for raw in rows:
            row = _Row.of(raw)
            self._rows.setdefault(row.cc, []).append(row)
            self._total += 1

    def fail_next(self, n: int = 1, status: int | str = 503, *, retry_after: float | None = None) -> None:
        """The next `n` requests fail: an HTTP status (429 answers {"error":"quota exceeded"}),
        200/"empty" (HTTP 200 with `{}`), "malformed" (HTTP 200, broken JSON) or "timeout"."""
        if status == 200:
            status = "empty"
        if isinstance(status, str) and status not in FAULTS:
            raise ValueError(f"unknown fault {status!r}")
        self._faults.extend([(status, retry_after)] * n)

    def outage(self, on: bool = True) -> None:
        """While on, every request answers 503."""
        self._outage = on

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> FakeOoni:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/api/v1/aggregation", self._aggregation)
        app.router.add_get("/api/v1/aggregation/analysis", self._analysis)
        app.router.add_get("/api/v1/measurements", self._measurements)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc) -> None:
        self._release.set()  # let hung "timeout" handlers go
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _middleware(self, request: web.Request, handler):
        self.requests.append((request.path, dict(request.query)))
        if self._outage:
            return web.Response(status=503, text="Service Unavailable")
        if self._faults:
            fault, retry_after = self._faults.pop(0)
            if fault == "empty":
                return web.json_response({})
            if fault == "malformed":
                return web.Response(status=200, text='{"v":0,"dimension_count":2,"result":[{"anomaly_cou',
                                    content_type="application/json")
            quota = web.json_response({"error": "quota exceeded"}, status=429)
            return await fault_response(fault, retry_after, self._release, self.hang, quota)
        try:
            return await handler(request)
        except _Reject as reject:
            return web.json_response(reject.body, status=reject.status)

    def _country_rows(self, ccs: list[str] | None) -> list[_Row]:
        if ccs is None:
            return [row for rows in self._rows.values() for row in rows]
        return [row for cc in ccs for row in self._rows.get(cc, ())]

    # -- /api/v1/aggregation -------------------------------------------------------------------

    async def _aggregation(self, request: web.Request) -> web.Response:
        t0 = time.perf_counter()
        q = request.query
        for name, pattern_ok in (
            ("test_name", lambda v: all(c in string.ascii_lowercase + string.digits + "_," for c in v) and v),
            ("axis_x", lambda v: all(c in string.ascii_lowercase + "_" for c in v) and v),
            ("axis_y", lambda v: all(c in string.ascii_lowercase + "_" for c in v) and v),
        ):
            if name in q and not pattern_ok(q[name]):
                raise _invalid(name, q[name], "String should match pattern")
        for name, least in (("domain", 3), ("input", 3), ("probe_cc", 2)):
            if name in q and len(q[name]) < least:
                raise _invalid(name, q[name], f"String should have at least {least} characters")
        time_grain = q.get("time_grain", "auto")
        if time_grain not in TIME_GRAINS:
            raise _invalid("time_grain", time_grain, "Input should be 'hour', 'day', 'week', 'month', 'year' or 'auto'")
        if q.get("format", "json").upper() != "JSON":
            raise _Reject(400, {"msg": "the fake answers JSON only", "v": 0})
        if "category_code" in q or "category_code" in (q.get("axis_x"), q.get("axis_y")):
            raise _Reject(400, {"msg": "the fake has no citizenlab table (category_code)", "v": 0})

        probe_asns: list[int] = []
        for item in _commasplit(q.get("probe_asn", "")):
            try:
                probe_asns.append(int(item[2:]) if item.startswith("AS") else int(item))
            except ValueError:
                raise _Reject(400, {"detail": "Invalid ASN value in parameter probe_asn"}) from None

        now = datetime.now(timezone.utc).replace(tzinfo=None)
        since = _date_param(q, "since") or now - timedelta(days=30 * 6)
        until = _date_param(q, "until") or now
        axis_x, axis_y = q.get("axis_x"), q.get("axis_y")
        if axis_x is not None and axis_x == axis_y:
            raise _Reject(200, {"msg": "Axis X and Y cannot be the same", "v": 0})
        grain = _resolve_time_grain(since, until, time_grain)
        if grain == "year":  # the backend's grain → SQL map lacks "year": it fails inside the query
            return web.Response(status=500, text="Internal Server Error")
        for axis in (axis_x, axis_y):
            if axis and axis not in AGGREGATION_AXES:
                raise _Reject(400, {"msg": "Invalid axis name", "v": 0})

        ccs = _commasplit(q["probe_cc"]) if "probe_cc" in q else None
        domains = set(_commasplit(q["domain"])) if "domain" in q else None
        tests = set(_commasplit(q["test_name"])) if "test_name" in q else None
        asns = set(probe_asns) or None
        inp = q.get("input")
        lo, hi = _truncate(since, grain), _truncate(until, grain)
        scanned = self._country_rows(ccs)
        rows = [
            r for r in scanned
            if (domains is None or r.domain in domains)
            and (tests is None or r.test_name in tests)
            and (asns is None or r.asn in asns)
            and (not inp or r.input == inp)
            and lo <= _truncate(r.start, grain) < hi
        ]

        axes = [a for a in (axis_x, axis_y) if a]
        day_format = "%Y-%m-%dT%H:%M:%SZ" if grain == "hour" else "%Y-%m-%d"

        def value(row: _Row, axis: str) -> Any:
            if axis == "measurement_start_day":
                return _truncate(row.start, grain).strftime(day_format)
            if axis == "blocking_type":
                return row.blocking_type
            if axis == "probe_asn":
                return row.asn
            if axis == "probe_cc":
                return row.cc
            return getattr(row, axis)

        groups: dict[tuple, list[_Row]] = {}
        for row in rows:
            groups.setdefault(tuple(value(row, a) for a in axes), []).append(row)

        def counts(members: list[_Row]) -> dict[str, Any]:
            return {
                "anomaly_count": sum(r.anomaly == "t" and r.confirmed == "f" and r.failure == "f" for r in members),
                "confirmed_count": sum(r.confirmed == "t" and r.failure == "f" for r in members),
                "failure_count": sum(r.failure == "t" for r in members),
                "ok_count": sum(r.anomaly == "f" and r.confirmed == "f" and r.failure == "f" for r in members),
                "measurement_count": len(members),
            }

        order = ("measurement_start_day", "blocking_type", "category_code", "domain", "input", "probe_cc",
                 "probe_asn", "test_name")
        if axes:
            result: Any = []
            for key in sorted(groups, key=lambda k: tuple(_sort_key(v) for v in k)):
                entry = counts(groups[key])
                named = dict(zip(axes, key))
                entry.update({a: named[a] for a in order if a in named and named[a] is not None})
                result.append(entry)
        else:
            result = counts(rows)
        body = {
            "v": 0,
            "dimension_count": len(axes),
            "db_stats": {
                "row_count": len(scanned),
                "bytes": len(scanned) * 96,
                "total_row_count": self._total,
                "elapsed_seconds": time.perf_counter() - t0,
            },
            "result": result,
        }
        return web.json_response(body)

    # -- /api/v1/measurements ------------------------------------------------------------------

    async def _measurements(self, request: web.Request) -> web.Response:
        t0 = time.perf_counter()
        q = request.query
        limit = _int_param(q, "limit", 100, 0, 1_000_000)
        offset = _int_param(q, "offset", 0)
        order = q.get("order", "desc")
        if order not in ("asc", "desc", "ASC", "DESC"):
            raise _invalid("order", order, "Input should be 'asc', 'desc', 'ASC' or 'DESC'")
        if q.get("order_by", "measurement_start_time") != "measurement_start_time":
            raise _invalid("order_by", q["order_by"], "Input should be 'measurement_start_time'")
        flags = {name: _bool_param(q, name) for name in ("anomaly", "confirmed", "failure")}
        since, until = _datetime_param(q, "since"), _datetime_param(q, "until")
        report_id = q.get("report_id")
        if until is None and report_id is None:
            tomorrow = datetime.now(timezone.utc) + timedelta(days=1)
            until = datetime(tomorrow.year, tomorrow.month, tomorrow.day)
        if since is None and report_id is None and until is not None:
            since = until - timedelta(days=30)
        if since and until and (until - since).days > 180:
            days = (until - since).days
            msg = f"Time range must not exceed 6 months. Requested: {days} days (limit: 180 days)."
            raise _Reject(400, {"detail": msg})

        ccs = q["probe_cc"].split(",") if "probe_cc" in q else None
        asns = None
        if "probe_asn" in q:
            try:
                asns = {int(v[2:]) if v.startswith("AS") else int(v) for v in q["probe_asn"].split(",")}
            except ValueError:
                return web.Response(status=500, text="Internal Server Error")
        tests = set(q["test_name"].split(",")) if "test_name" in q else None
        inp = q.get("input")
        domains = {d.strip() for d in q["domain"].split(",")} if "domain" in q and not inp else None

        def keep(r: _Row) -> bool:
            if ccs is None and r.cc == "ZZ":
                return False
            if asns is None and r.asn == 0:
                return False
            if since is not None and not r.start > since:
                return False
            if until is not None and not r.start <= until:
                return False
            if report_id and r.report_id != report_id:
                return False
            if asns is not None and r.asn not in asns:
                return False
            if tests is not None and r.test_name not in tests:
                return False
            if inp and r.input != inp:
                return False
            if domains is not None and r.domain not in domains:
                return False
            for name, attr in (("anomaly", "anomaly"), ("confirmed", "confirmed"), ("failure", "failure")):
                wanted = flags[name]
                if wanted is not None and getattr(r, attr) != ("t" if wanted else "f"):
                    return False
            return True

        rows = sorted(
            (r for r in self._country_rows(ccs) if keep(r)),
            key=lambda r: (r.start, r.uid),
            reverse=order.lower() == "desc",
        )
        page = rows[offset: offset + limit]
        results = [
            {
                "anomaly": r.anomaly == "t",
                "confirmed": r.confirmed == "t",
                "failure": r.failure == "t",
                "input": r.input or None,
                "probe_asn": f"AS{r.asn}",
                "probe_cc": r.cc,
                "report_id": r.report_id,
                "scores": r.scores,
                "test_name": r.test_name,
                "measurement_url": f"{self.url}/api/v1/raw_measurement?{urlencode({'measurement_uid': r.uid})}",
                "measurement_start_time": r.start.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "measurement_uid": r.uid,
                "verification_status": "unverified",
            }
            for r in page
        ]
        next_url = None
        if limit and len(results) == limit:
            args = dict(q)
            args["offset"] = str(offset + limit)
            args["limit"] = str(limit)
            next_url = f"{self.url}/api/v1/measurements?{urlencode(args)}"
        body = {
            "metadata": {
                "count": -1,
                "current_page": offset // limit + 1 if limit else 1,
                "limit": limit,
                "next_url": next_url,
                "offset": offset,
                "pages": -1,
                "query_time": time.perf_counter() - t0,
            },
            "results": results,
        }
        return web.json_response(body)

    # -- /api/v1/aggregation/analysis ----------------------------------------------------------

    async def _analysis(self, request: web.Request) -> web.Response:
        t0 = time.perf_counter()
        q = request.query
        axis_x = q.get("axis_x", "measurement_start_day")
        axis_y = q.get("axis_y")
        for name, axis in (("axis_x", axis_x), ("axis_y", axis_y)):
            if axis is not None and axis not in ANALYSIS_AXES:
                raise _invalid(name, axis, "Input should be one of " + ", ".join(ANALYSIS_AXES))
        time_grain = q.get("time_grain", "day")
        if time_grain not in TIME_GRAINS:
            raise _invalid("time_grain", time_grain, "Input should be 'hour', 'day', 'week', 'month', 'year' or 'auto'")
        probe_cc = q.get("probe_cc")
        if probe_cc is not None and len(probe_cc) != 2:
            raise _invalid("probe_cc", probe_cc, "String should have 2 characters")
        probe_asn = None
        if "probe_asn" in q:
            v = q["probe_asn"]
            try:
                probe_asn = int(v[2:]) if v.startswith("AS") else int(v)
            except ValueError:
                raise _invalid("probe_asn", v, "Input should be a valid integer") from None
        today = datetime.combine(datetime.now(timezone.utc).date(), datetime.min.time())
        since = _datetime_param(q, "since") or today - timedelta(days=30)
        until = _datetime_param(q, "until") or today
        filters = {name: q.get(name) for name in ("test_name", "domain", "input")}

        # The group columns, in the order the backend builds its dict of extra columns.
        cols: dict[str, None] = {}
        if axis_x:
            cols[axis_x] = None
        if probe_asn is not None:
            cols["probe_asn"] = None
        if probe_cc is not None:
            cols["probe_cc"] = None
        for name in ("test_name", "domain", "input"):
            if filters[name] is not None:
                cols[name] = None
        if axis_y:
            cols[axis_y] = None

        rows = [
            r for r in self._country_rows([probe_cc] if probe_cc else None)
            if r.analysis is not None
            and (probe_asn is None or r.asn == probe_asn)
            and all(value is None or getattr(r, name) == value for name, value in filters.items())
            and since <= r.start <= until
        ]

        def value(row: _Row, col: str) -> Any:
            if col == "measurement_start_day":
                return _truncate(row.start, time_grain)
            if col == "probe_asn":
                return row.asn
            if col == "probe_cc":
                return row.cc
            return getattr(row, col)

        groups: dict[tuple, list[_Row]] = {}
        for row in rows:
            groups.setdefault(tuple(value(row, c) for c in cols), []).append(row)

        results = []
        for key in sorted(groups, key=lambda k: tuple(_sort_key(v) for v in k)):
            members = groups[key]
            loni: dict[str, Any] = {}
            for layer in ("dns", "tcp", "tls"):
                for outcome in ("blocked", "down", "ok"):
                    values = [m.analysis.get(f"{layer}_{outcome}", 0.0) for m in members]
                    loni[f"{layer}_{outcome}"] = _quantile(values, 0.95)
            outcomes = {}
            for layer in ("dns", "tcp", "tls"):
                weights: dict[str, float] = {}
                for m in members:
                    failure = m.analysis.get(f"top_{layer}_failure")
                    if layer == "dns":
                        nxdomain = failure in ("android_dns_cache_no_data", "dns_nxdomain_error")
                        failure = "nxdomain" if nxdomain else (failure or "got_answer")
                    if failure is None:
                        continue
                    if failure.startswith("unknown_failure"):
                        failure = "unknown_failure"
                    weights[failure] = weights.get(failure, 0.0) + int(m.analysis.get(f"{layer}_blocked", 0.0) * 100)
                outcomes[layer] = max(weights, key=lambda f: weights[f]) if weights else ""
            likely = sorted(
                ([f"{layer}.{outcomes[layer]}", loni[f"{layer}_blocked"]] for layer in ("dns", "tcp", "tls")
                 if loni[f"{layer}_blocked"] > 0.5),
                key=lambda pair: -pair[1],
            )
            top = likely[0] if likely else ["none", 0.0]
            ordered = {f"{layer}_{outcome}": loni[f"{layer}_{outcome}"]
                       for layer in ("dns", "tcp", "tls") for outcome in ("blocked", "down", "ok")}
            ordered.update({
                "likely_blocked_protocols": likely,
                "blocked_max_outcome": top[0],
                "blocked_max": top[1],
                "dns_blocked_outcome": outcomes["dns"],
                "tcp_blocked_outcome": outcomes["tcp"],
                "tls_blocked_outcome": outcomes["tls"],
            })
            named = dict(zip(cols, key))
            day = named.get("measurement_start_day")
            results.append({
                "count": float(len(members)),
                "measurement_start_day": day.strftime("%Y-%m-%dT%H:%M:%S") if day else None,
                "loni": ordered,
                "domain": named.get("domain"),
                "probe_cc": named.get("probe_cc"),
                "probe_asn": named.get("probe_asn"),
                "test_name": named.get("test_name"),
                "input": named.get("input"),
            })
        body = {
            "db_stats": {
                "bytes": -1,
                "elapsed_seconds": time.perf_counter() - t0,
                "row_count": len(results),
                "total_row_count": len(results),
            },
            "dimension_count": 1 + (1 if axis_y else 0),
            "results": results,
        }
        return web.json_response(body)


class PublishingClock:
    """A poller's clock for tests: moving it publishes to the fake the rows measured by then,
    as the real API gains them over time. Rows must be sorted by measurement_start_time."""

    def __init__(self, fake: FakeOoni, rows: list[dict], now: datetime):
        self.fake, self.rows, self.published = fake, rows, 0
        self.now = now
        self.move(now)

    def move(self, now: datetime) -> None:
        self.now = now
        cutoff = now.strftime("%Y-%m-%d %H:%M:%S")
        start = self.published
        while self.published < len(self.rows) and self.rows[self.published]["measurement_start_time"] < cutoff:
            self.published += 1
        self.fake.add_rows(self.rows[start:self.published])

    def __call__(self) -> datetime:
        return self.now


async def no_sleep(_delay: float) -> None:
    """For OoniSource(sleep=…): retries without waiting."""
