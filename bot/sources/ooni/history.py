"""OONI history for the backtest: hourly Observations of a period, each with its hour's data only.

Per 7-day chunk (the API's longest hourly range): one hourly aggregation per platform and kind
(`axis_x=measurement_start_day&time_grain=hour&axis_y=probe_asn`), one evidence listing, and one
analysis request per network with repeated web anomalies.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from bot import catalog
from bot.observations import Observation
from bot.sources.base import SourceError
from bot.sources.http import JsonClient
from bot.sources.ooni import api
from bot.sources.ooni.api import HOUR_GRAIN_DAYS, WEB_TEST, Counts, midnight, parse_api_time
from bot.sources.ooni.evidence import Details, best_methods, gather_evidence

HISTORY_EVIDENCE_LIMIT = 5000

Key = tuple[str, int, datetime]  # (platform, asn, hour)


async def history(client: JsonClient, cc: str, names: list[str], since: date, until: date) -> list[Observation]:
    """Hourly Observations of [since, until) (`until` exclusive, like the API)."""
    observations: list[Observation] = []
    chunk = since
    while chunk < until:
        chunk_end = min(chunk + timedelta(days=HOUR_GRAIN_DAYS), until)
        observations += await _chunk(client, cc, names, chunk, chunk_end)
        chunk = chunk_end
    return observations


async def _chunk(client: JsonClient, cc: str, names: list[str], since: date, until: date) -> list[Observation]:
    counts: dict[Key, Counts] = {}
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
            rows = await api.aggregate(client, {
                "probe_cc": cc, **query, "since": since.isoformat(), "until": until.isoformat(),
                "axis_x": "measurement_start_day", "axis_y": "probe_asn", "time_grain": "hour",
            })
            for entry in rows:
                asn = api.asn_of(entry.get("probe_asn"))
                try:
                    hour = parse_api_time(str(entry.get("measurement_start_day")))
                except ValueError:
                    odd = entry.get("measurement_start_day")
                    raise SourceError(f"OONI aggregation gave an odd hour {odd!r}") from None
                if not asn:
                    continue
                key = (platform, asn, hour)
                counts.setdefault(key, Counts()).add(entry)
                if entry["anomaly_count"] + entry["confirmed_count"]:
                    keys.add(key)

    start, end = midnight(since), midnight(until)
    details: dict[Key, Details] = {}
    web_pairs = {(p, a) for p, a, _ in web_keys}
    app_pairs = {(p, a) for p, a, _ in app_keys}
    if web_pairs or app_pairs:
        try:
            rows = await api.anomalous_rows(client, cc, web_pairs, app_pairs, start, end, limit=HISTORY_EVIDENCE_LIMIT)
        except SourceError:
            rows = []  # the counts stand without links; logged by the client
        details = gather_evidence(rows, key=lambda r: (r.platform, r.asn, r.time.replace(minute=0, second=0, microsecond=0)))

    # The method, hour by hour, for networks whose web anomalies repeat (one-offs need none).
    signs_per_asn: dict[int, int] = {}
    for key in web_keys:
        signs_per_asn[key[1]] = signs_per_asn.get(key[1], 0) + counts[key].signs
    for asn in sorted(a for a, n in signs_per_asn.items() if n >= 2):
        try:
            entries = await api.analysis(client, cc, start, end, asn=asn, hourly=True)
        except SourceError:
            continue

        def hour_key(entry: dict, asn: int = asn) -> Key | None:
            try:
                hour = parse_api_time(str(entry.get("measurement_start_day")))
            except ValueError:
                return None
            key = (catalog.platform_of(cc, domain=entry.get("domain") or None), asn, hour)
            return key if key in web_keys else None

        for key, method in best_methods(entries, key=hour_key).items():
            details.setdefault(key, Details()).method = method

    observations = []
    for (platform, asn, hour), c in sorted(counts.items()):
        d = details.get((platform, asn, hour), Details())
        observations.append(Observation(
            country=cc, platform=platform, asn=asn, start=hour, end=hour + timedelta(hours=1),
            measurements=c.measurements, anomalies=c.anomalies, confirmed=c.confirmed, failures=c.failures,
            method=d.method or d.fallback, evidence=d.evidence,
        ))
    return observations
