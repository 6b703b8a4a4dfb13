"""The OONI API's requests and answers: each request the plans use, its parameters, and the checks
that make an odd body a fault (never "zero measurements").

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
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

from bot import catalog
from bot.sources.http import Fault, JsonClient

WEB_TEST = "web_connectivity"
HOUR_GRAIN_DAYS = 7  # the API's longest range for time_grain=hour
# fastpath's scores.analysis.blocking_type → our method. An HTTPS "http-failure" means DNS was
# consistent and TCP connected, and a middlebox cannot touch HTTP inside TLS: it is the handshake.
BLOCKING_TYPE_METHOD = {"dns": "dns", "tcp_ip": "tcp", "http-diff": "http"}
LAYERS = ("dns", "tcp", "tls")

Pair = tuple[str, int]  # (platform, asn)


@dataclass
class Counts:
    measurements: int = 0
    anomalies: int = 0
    confirmed: int = 0
    failures: int = 0

    def add(self, entry: dict[str, int]) -> None:
        self.measurements += entry["measurement_count"]
        self.anomalies += entry["anomaly_count"]
        self.confirmed += entry["confirmed_count"]
        self.failures += entry["failure_count"]

    def add_counts(self, other: Counts) -> None:
        self.measurements += other.measurements
        self.anomalies += other.anomalies
        self.confirmed += other.confirmed
        self.failures += other.failures

    @property
    def signs(self) -> int:
        return self.anomalies + self.confirmed


@dataclass(frozen=True)
class AnomalousRow:
    """One anomalous measurement of the listing: whose it is, when, its uid and fastpath's method."""

    platform: str
    asn: int
    time: datetime
    uid: str
    method: str | None


def utc(t: datetime) -> datetime:
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=timezone.utc)


def _stamp(t: datetime) -> str:
    """A datetime query value the API parses: naive UTC, seconds."""
    return utc(t).strftime("%Y-%m-%dT%H:%M:%S")


def asn_of(value: Any) -> int | None:
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


def parse_api_time(value: str) -> datetime:
    """The API's timestamps, aware: "2022-09-14T06:00:00Z", "…T06:28:13.000000Z", "…T06:00:00", "2022-09-14"."""
    return utc(datetime.fromisoformat(value.replace("Z", "+00:00")))


def _fallback_method(blocking_type: Any, url: str | None) -> str | None:
    if blocking_type == "http-failure":
        return "tls" if (url or "").startswith("https://") else "http"
    return BLOCKING_TYPE_METHOD.get(blocking_type) if isinstance(blocking_type, str) else None


def loni_method(loni: Any) -> tuple[str, float] | None:
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


# -- checking bodies: an odd body is a fault, never "zero measurements" ---------------------------

_COUNT_KEYS = ("measurement_count", "anomaly_count", "confirmed_count", "failure_count", "ok_count")


def _aggregation_rows(body: Any) -> list[dict]:
    if not isinstance(body, dict) or not isinstance(body.get("result"), list):
        raise Fault("aggregation answered without a result list")
    for entry in body["result"]:
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(k), int) and not isinstance(entry.get(k), bool) for k in _COUNT_KEYS
        ):
            raise Fault("aggregation result row without its counts")
    return body["result"]


def _listing(body: Any) -> list[dict]:
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        raise Fault("answer without a results list")
    if not all(isinstance(entry, dict) for entry in body["results"]):
        raise Fault("results list with a non-object entry")
    return body["results"]


# -- the requests ----------------------------------------------------------------------------------


async def aggregate(client: JsonClient, params: dict[str, str]) -> list[dict]:
    return await client.get("/api/v1/aggregation", params, _aggregation_rows)


async def web_counts(client: JsonClient, cc: str, domains: Iterable[str], since: date, until: date) -> dict[Pair, Counts]:
    """Web measurements of [since, until) per (platform, asn): one aggregation over domain × network."""
    rows = await aggregate(client, {
        "probe_cc": cc, "test_name": WEB_TEST, "domain": ",".join(domains),
        "since": since.isoformat(), "until": until.isoformat(), "axis_x": "domain", "axis_y": "probe_asn",
    })
    counts: dict[Pair, Counts] = {}
    for entry in rows:
        platform, asn = catalog.platform_of(cc, domain=entry.get("domain") or None), asn_of(entry.get("probe_asn"))
        if platform and asn:
            counts.setdefault((platform, asn), Counts()).add(entry)
    return counts


async def app_counts(client: JsonClient, cc: str, tests: Iterable[str], since: date, until: date) -> dict[Pair, Counts]:
    """App-test measurements of [since, until) per (platform, asn): one aggregation over test × network."""
    rows = await aggregate(client, {
        "probe_cc": cc, "test_name": ",".join(tests),
        "since": since.isoformat(), "until": until.isoformat(), "axis_x": "test_name", "axis_y": "probe_asn",
    })
    counts: dict[Pair, Counts] = {}
    for entry in rows:
        platform, asn = catalog.platform_of(cc, test_name=entry.get("test_name")), asn_of(entry.get("probe_asn"))
        if platform and asn:
            counts.setdefault((platform, asn), Counts()).add(entry)
    return counts


async def anomalous_rows(
    client: JsonClient, cc: str, web: set[Pair], apps: set[Pair], start: datetime, end: datetime, limit: int,
) -> list[AnomalousRow]:
    """Anomalous measurements of these (platform, asn) pairs in [start, end), newest first."""
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
    for row in await client.get("/api/v1/measurements", params, _listing):
        asn, uid, test = asn_of(row.get("probe_asn")), row.get("measurement_uid"), row.get("test_name")
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
            when = parse_api_time(row["measurement_start_time"])
        except ValueError:
            continue
        if platform and (platform, asn) in wanted and start <= when < end:
            found.append(AnomalousRow(platform, asn, when, uid, method))
    found.sort(key=lambda f: f.time, reverse=True)
    return found


async def analysis(
    client: JsonClient, cc: str, start: datetime, end: datetime, *, asn: int | None = None, hourly: bool = False
) -> list[dict]:
    """The analysis pipeline's web entries of [start, end): per network (or hour) and domain."""
    params = {  # `until` is inclusive here
        "probe_cc": cc, "test_name": WEB_TEST, "since": _stamp(start), "until": _stamp(end - timedelta(seconds=1)),
    }
    if hourly:
        params.update(axis_x="measurement_start_day", time_grain="hour", axis_y="domain")
    else:
        params.update(axis_x="probe_asn", axis_y="domain")
    if asn is not None:
        params["probe_asn"] = f"AS{asn}"
    return await client.get("/api/v1/aggregation/analysis", params, _listing)
