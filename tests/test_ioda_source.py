"""The IODA source (real aiohttp client) against the fake IODA API over loopback, and the fake itself.

The fake's envelope is checked against an answer recorded from the live API (tests/fixtures/ioda/);
the source for what the outage detector needs, its cost (two requests per country), and every fault:
retried with backoff, logged once, never an event, never a false "restored".
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import aiohttp
import pytest

from bot.outage import detect_outage
from bot.sources.base import SourceError
from bot.sources.ioda import IodaSource
from tests.fakes.ioda import FIXTURES, FakeIoda, at, uganda_alerts

IN_OUTAGE = at("2026-01-14T12:00:00")


class Sleeps(list):
    async def __call__(self, delay: float) -> None:
        self.append(delay)


@pytest.fixture
def uganda():
    return uganda_alerts()


async def get(url: str, **params):
    async with aiohttp.ClientSession() as session:
        async with session.get(url, params=params) as resp:
            return resp.status, json.loads(await resp.text())


async def test_the_fake_answers_in_iodas_envelope(uganda):
    recorded = json.loads((FIXTURES / "signals-raw-asn1299-upstream-delay-penult-asns.json").read_text())
    cc, rows = uganda
    async with FakeIoda({cc: rows}) as fake:
        status, body = await get(fake.url + "/outages/alerts", **{"from": "1768262400", "until": "1768348800",
                                                                  "entityType": "country", "entityCode": "UG"})
        bad_status, bad = await get(fake.url + "/outages/alerts", entityType="country")
    assert status == 200 and list(body) == list(recorded)  # IODA's keys, in IODA's order
    assert body["type"] == "outages.alerts" and body["error"] is None and body["copyright"] == recorded["copyright"]
    assert body["requestParameters"]["from"] == "1768262400"  # outages echo their parameters as strings
    assert [a["datasource"] for a in body["data"]] == ["merit-nt", "ping-slash24", "bgp"]  # the country's, in time order
    assert list(body["data"][0]) == ["datasource", "entity", "time", "level", "condition", "value", "historyValue", "method"]
    assert (bad_status, bad["data"], bad["error"]) == (400, None, "'from' timestamp must be set")


async def test_observe_asks_twice_per_country_and_reads_the_country_and_its_networks(uganda):
    cc, rows = uganda
    async with FakeIoda({cc: rows}) as fake, IodaSource(fake.url) as source:
        alerts = await source.observe("ug", ["internet"], IN_OUTAGE)
        assert [q.get("entityType") for _, q in fake.requests] == ["country", "asn"]
        assert fake.requests[1][1]["relatedTo"] == "country/UG"
        # the first look goes back a week: the shutdown that began yesterday is in it
        assert int(fake.requests[0][1]["from"]) == int((IN_OUTAGE - timedelta(days=7)).timestamp())
        later = await source.observe("UG", ["internet"], IN_OUTAGE + timedelta(minutes=15))
        assert int(fake.requests[2][1]["from"]) == int((IN_OUTAGE - timedelta(hours=2)).timestamp())  # since the last, with overlap
    assert {(a.entity, a.code) for a in alerts} == {("country", "UG"), ("asn", "37075"), ("asn", "20294"), ("asn", "21491")}
    assert all(a.datasource in ("bgp", "ping-slash24", "merit-nt") for a in alerts)  # Google traffic left out
    probing = next(a for a in alerts if a.entity == "country" and a.datasource == "ping-slash24" and a.time >= at("2026-01-13T00:00:00"))
    assert round(probing.drop, 2) == 0.85
    assert probing.link.startswith("https://ioda.inetintel.cc.gatech.edu/country/UG?from=")
    assert later == []  # nothing new in the last two hours


async def test_a_quiet_country_is_an_answer_not_a_fault():
    async with FakeIoda() as fake, IodaSource(fake.url, sleep=Sleeps()) as source:
        assert await source.observe("AZ", ["internet"], IN_OUTAGE) == []
        assert (len(fake.requests), source.errors) == (2, 0)


@pytest.mark.parametrize("fault", [503, 502, 429, "malformed", "empty", "timeout"])
async def test_each_fault_is_retried_then_answered(uganda, fault):
    cc, rows = uganda
    sleeps = Sleeps()
    async with FakeIoda({cc: rows}) as fake, IodaSource(fake.url, sleep=sleeps, timeout=0.3) as source:
        fake.fail_next(2, status=fault)
        alerts = await source.observe("UG", ["internet"], IN_OUTAGE)
    assert len(sleeps) == 2 and len(fake.requests) == 4 and source.errors == 2
    assert any(a.level == "critical" for a in alerts)


@pytest.mark.parametrize("fault", [503, 429, "malformed", "empty", "timeout"])
async def test_a_fault_that_outlasts_the_retries_is_never_an_event_nor_a_restored(uganda, fault, caplog):
    cc, rows = uganda
    caplog.set_level(logging.DEBUG, logger="bot.sources.ioda")
    async with FakeIoda({cc: rows}) as fake, IodaSource(fake.url, sleep=Sleeps(), timeout=0.3, retries=2) as source:
        state, events = detect_outage(None, await source.observe("UG", ["internet"], IN_OUTAGE), IN_OUTAGE, country="UG")
        assert [e.kind for e in events] == ["outage"]
        for minutes in (15, 30, 45):
            fake.fail_next(3, status=fault)
            with pytest.raises(SourceError):
                await source.observe("UG", ["internet"], IN_OUTAGE + timedelta(minutes=minutes))
        # the poller keeps the state as it was when the source fails: still in the outage, nothing sent
        assert state.on
        alerts = await source.observe("UG", ["internet"], IN_OUTAGE + timedelta(hours=1))
        state, events = detect_outage(state, alerts, IN_OUTAGE + timedelta(hours=1), country="UG")
        assert events == [] and state.on
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    recoveries = [r for r in caplog.records if "recovered" in r.getMessage()]
    assert len(warnings) == 1 and len(recoveries) == 1  # an outage of the API is logged once, and its end


async def test_a_refused_request_is_not_retried():
    sleeps = Sleeps()
    async with FakeIoda() as fake, IodaSource(fake.url, sleep=sleeps) as source:
        fake.fail_next(1, status=400)
        with pytest.raises(SourceError):
            await source.observe("UG", ["internet"], IN_OUTAGE)
    assert len(fake.requests) == 1 and sleeps == []


async def test_history_reads_a_week_before_since_so_an_outage_already_on_shows(uganda):
    cc, rows = uganda
    async with FakeIoda({cc: rows}) as fake, IodaSource(fake.url) as source:
        alerts = await source.history("UG", ["internet"], at("2026-01-15T00:00:00").date(), at("2026-01-16T00:00:00").date())
    assert alerts and all(a.time < at("2026-01-16T00:00:00") for a in alerts)
    assert any(a.level == "critical" and a.time < at("2026-01-15T00:00:00") for a in alerts)
    assert len(fake.requests) == 2
