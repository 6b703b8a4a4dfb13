"""The IODA v2 API's alert requests and answers (see tests/fixtures/ioda/README.md for what was verified).

`GET /outages/alerts?from=<unix>&until=<unix>&entityType=country&entityCode=UG` gives a country's
level changes, `entityType=asn&relatedTo=country/UG` its networks'. Every answer is IODA's envelope
(`type`, `metadata`, `requestParameters`, `error`, `perf`, `data`, `copyright`); a bad parameter is
HTTP 400 with `error` set. An envelope without a `data` list, or with `error` set, is a fault
(retried), never "no alerts"; `data: []` is a quiet window.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from bot.outage import SIGNALS, OutageAlert
from bot.sources.http import Fault, JsonClient
from bot.sources.ioda.dashboard import dashboard_link

PAGE = 500  # IODA's default limit; a full page means there may be more
MAX_PAGES = 4  # a country's alerts over a week fit in far fewer


def _alerts(body: Any) -> list[dict]:
    if not isinstance(body, dict) or body.get("type") != "outages.alerts":
        raise Fault("answer is not an outages.alerts envelope")
    if body.get("error"):
        raise Fault(f"IODA error: {str(body['error'])[:200]}")
    if not isinstance(body.get("data"), list):
        raise Fault("envelope without a data list")
    for item in body["data"]:
        if not (isinstance(item, dict) and isinstance(item.get("entity"), dict)
                and isinstance(item.get("time"), int) and isinstance(item.get("level"), str)):
            raise Fault("alert without its entity, time or level")
    return body["data"]


async def alerts(
    client: JsonClient, cc: str, since: datetime, until: datetime, *, networks: bool
) -> list[OutageAlert]:
    """The level changes of the country's own signals (or, with `networks`, of its ASNs) in [since, until]."""
    params = {"from": str(int(since.timestamp())), "until": str(int(until.timestamp())), "limit": str(PAGE)}
    if networks:
        params.update(entityType="asn", relatedTo=f"country/{cc}")
    else:
        params.update(entityType="country", entityCode=cc)
    found: list[OutageAlert] = []
    for page in range(MAX_PAGES):
        rows = await client.get("/outages/alerts", {**params, "page": str(page)}, _alerts)
        found += [a for row in rows if (a := _alert(cc, row)) is not None]
        if len(rows) < PAGE:
            break
    return found


def _alert(cc: str, row: dict) -> OutageAlert | None:
    datasource, entity = row.get("datasource"), row["entity"]
    kind, code = entity.get("type"), str(entity.get("code", ""))
    if datasource not in SIGNALS or kind not in ("country", "asn") or not code:
        return None  # Google traffic and the other datasources are not outage signals here
    when = datetime.fromtimestamp(row["time"], timezone.utc)
    return OutageAlert(
        country=cc, entity=kind, code=code, datasource=datasource, time=when, level=row["level"],
        value=_number(row.get("value")), history=_number(row.get("historyValue")),
        link=dashboard_link(kind, code, when, when),
    )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
