"""A fake IODA v2 API on 127.0.0.1: `GET /v2/outages/alerts` as ioda-api answers it.

Every answer is IODA's envelope, keys in its order, with the recorded copyright (tests/fixtures/ioda/):
`type`, `metadata` {requestTime, responseTime}, `requestParameters` (every declared parameter, as
strings — outages' `from`/`until` come back as "1768262400"), `error`, `perf` (null), `data`,
`copyright`. Like the real one: `from`/`until` are required (HTTP 400 with `error` and `data: null`),
`entityType`/`entityCode`/`relatedTo` select, `limit`/`page` (0-based) slice, and the rows of each
signal are squashed (a repeated level is dropped, and so is critical→warning; the first alert of a
signal inside the window is kept whatever its level).

`fake.now` publishes: alerts after it are not there yet (None: all). Faults: `fail_next(n, status)`
with an HTTP status, 429 (with Retry-After), "malformed" (broken JSON), "empty" (`data: null`) or
"timeout"; `outage(True)`: every request answers 503.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.fakes.faults import fault_response

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "ioda"
RECORDED_ENVELOPE = FIXTURES / "signals-raw-asn1299-upstream-delay-penult-asns.json"
FAULTS = ("malformed", "empty", "timeout")
ALERT_PARAMETERS = ("from", "until", "entityType", "entityCode", "datasource", "limit", "page", "relatedTo",
                    "ignoreMethods", "extendWindow")
# ioda-api squashes per signal: kept transitions only (OutagesAlertsService::squashAlerts)
KEPT = {("normal", "warning"), ("warning", "critical"), ("normal", "critical"), ("warning", "normal"), ("critical", "normal")}


def uganda_alerts() -> tuple[str, list[dict]]:
    """The Uganda 2026 rows (tests/fixtures/ioda/uganda_2026_alerts.json): its country code and alerts."""
    data = json.loads((FIXTURES / "uganda_2026_alerts.json").read_text())
    return data["country"], data["alerts"]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


class FakeIoda:
    """`async with FakeIoda({"UG": rows}) as fake:` — a fake IODA API at `fake.url` (the `/v2` root)."""

    def __init__(self, alerts: dict[str, Iterable[dict]] | None = None, *, hang: float = 30.0, port: int = 0):
        self.port = port
        self._alerts: list[tuple[str, dict]] = []  # (country the entity is in, alert item)
        for cc, rows in (alerts or {}).items():
            self.add_alerts(cc, rows)
        self.now: datetime | None = None
        self.hang = hang
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._faults: list[tuple[int | str, float | None]] = []
        self._outage = False
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""
        self._copyright = json.loads(RECORDED_ENVELOPE.read_text())["copyright"]

    def add_alerts(self, country: str, rows: Iterable[dict]) -> None:
        self._alerts += [(country, dict(row)) for row in rows]

    def fail_next(self, n: int = 1, status: int | str = 503, *, retry_after: float | None = None) -> None:
        if isinstance(status, str) and status not in FAULTS:
            raise ValueError(f"unknown fault {status!r}")
        self._faults.extend([(status, retry_after)] * n)

    def outage(self, on: bool = True) -> None:
        self._outage = on

    async def __aenter__(self) -> FakeIoda:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/v2/outages/alerts", self._outages_alerts)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/v2"
        return self

    async def __aexit__(self, *exc) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def _envelope(self, kind: str, params: dict[str, Any], data: Any, error: str | None = None) -> dict:
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")
        return {"type": kind, "metadata": {"requestTime": stamp, "responseTime": stamp}, "requestParameters": params,
                "error": error, "perf": None, "data": data, "copyright": self._copyright}

    @web.middleware
    async def _middleware(self, request: web.Request, handler):
        self.requests.append((request.path, dict(request.query)))
        if self._outage:
            return web.Response(status=503, text="Service Unavailable")
        if self._faults:
            fault, retry_after = self._faults.pop(0)
            if fault == "empty":
                return web.json_response(self._envelope("outages.alerts", dict(request.query), None))
            if fault == "malformed":
                return web.Response(status=200, text='{"type":"outages.alerts","metadata":{"requestTi',
                                    content_type="application/json")
            quota = web.Response(status=429, text="Too Many Requests")
            return await fault_response(fault, retry_after, self._release, self.hang, quota)
        return await handler(request)

    async def _outages_alerts(self, request: web.Request) -> web.Response:
        q = request.query
        params: dict[str, Any] = {name: q.get(name) for name in ALERT_PARAMETERS}
        params["extendWindow"] = q.get("extendWindow", "0")
        for name in ("from", "until"):
            if not q.get(name, "").isdigit():
                return web.json_response(self._envelope("outages.alerts", params, None, f"'{name}' timestamp must be set"),
                                         status=400)
        start, end = int(q["from"]) - int(params["extendWindow"]), int(q["until"]) + int(params["extendWindow"])
        limit, page = int(q.get("limit") or 500), int(q.get("page") or 0)
        kind, codes, related = q.get("entityType"), q.get("entityCode"), q.get("relatedTo")
        published = None if self.now is None else int(self.now.timestamp())
        rows = []
        for country, row in self._alerts:
            entity = row["entity"]
            if kind and entity["type"] != kind:
                continue
            if codes and entity["code"] not in codes.split(","):
                continue
            if related and related != f"country/{country}":
                continue
            if q.get("datasource") and q["datasource"] not in row["datasource"]:
                continue
            if start <= row["time"] <= end and (published is None or row["time"] <= published):
                rows.append(row)
        rows.sort(key=lambda r: r["time"])
        squashed, last = [], {}
        for row in rows:
            signal = (row["datasource"], row["entity"]["type"], row["entity"]["code"])
            if signal not in last or (last[signal], row["level"]) in KEPT:
                squashed.append(row)
                last[signal] = row["level"]
        data = squashed[limit * page: limit * page + limit]
        return web.json_response(self._envelope("outages.alerts", params, data))
