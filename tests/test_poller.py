"""The live poller against the fake OONI API and a real SQLite store: cycles, restarts, outages, cost.

The fake holds what OONI would hold at the poller's (injected) clock: rows are added as it moves.
The data: a day of OK TikTok measurements on Azerbaijan's five networks, then the September 2022
block (re-dated real rows, tests/fakes/ooni.py) from 2022-09-14 06:00 to 2022-09-16 12:00.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest

from bot import catalog
from bot.config import Settings
from bot.detector import DEFAULT
from bot.poller import Poller
from bot.app import build_services
from bot.services import Services
from bot.sources.ooni import OoniSource
from storage.db import Store
from storage.events import recent_events
from storage.states import load_state
from storage.subscriptions import add_watches, ensure_chat
from tests.fakes.ioda import FakeIoda
from tests.fakes.ooni import AZ_BLOCKED_ASNS, AZ_OK_ASNS, FakeOoni, az_tiktok_episode, PublishingClock, no_sleep
from tests.harness import running_bot

UTC = timezone.utc
LEAD_IN = datetime(2022, 9, 13)  # naive UTC, as the episode builder takes it
BLOCK_START = datetime(2022, 9, 14, 6, tzinfo=UTC)
BLOCK_END = datetime(2022, 9, 16, 12, tzinfo=UTC)


def rows_until_block():
    """A day and six hours of OK measurements on every network before the block begins."""
    return az_tiktok_episode(LEAD_IN, LEAD_IN, after=timedelta(hours=30), blocked_asns=(), ok_asns=AZ_BLOCKED_ASNS + AZ_OK_ASNS, seed=13)


@pytest.fixture(scope="module")
def rows():
    return sorted(rows_until_block() + az_tiktok_episode(after=timedelta(hours=24)), key=lambda r: r["measurement_start_time"])


async def open_store(path, watches=(("AZ", "tiktok"),)) -> Store:
    store = await Store.open(path)
    await store.run(ensure_chat, 42, "private")
    for country, platform in watches:
        await store.run(add_watches, 42, country, [platform])
    return store


def services_for(store: Store, fake: FakeOoni, **settings) -> Services:
    return build_services(Settings(ooni_api_url=fake.url, database_path=store.path, **settings), store, sending=False, polling=False)


def stored_kinds(store_db) -> list[str]:
    return [e["kind"] for e in reversed(recent_events(store_db, limit=1000))]


async def test_cycles_before_and_during_the_block_raise_one_blocked_event_and_persist_the_state(tmp_path, rows):
    async with FakeOoni() as fake:
        clock = PublishingClock(fake, rows, BLOCK_START - timedelta(hours=1))
        store = await open_store(tmp_path / "bw.db")
        try:
            async with OoniSource(fake.url, sleep=no_sleep) as source:
                poller = Poller(services_for(store, fake), source, clock=clock)
                before = await poller.poll_once()
                assert (before.countries, before.errors, before.events) == (1, 0, [])
                state = await store.run(load_state, "AZ", "tiktok")
                assert state is not None and not state.blocked and state.last_data is not None  # seen, and fine

                results = []
                for hours in range(1, 19, 2):  # every two hours into the block
                    clock.move(BLOCK_START + timedelta(hours=hours))
                    results.append(await poller.poll_once())
                    assert poller.last is results[-1]
        finally:
            kinds = await store.run(stored_kinds)
            state = await store.run(load_state, "AZ", "tiktok")
            await store.close()
    events = [e for r in results for e in r.events]
    assert [e.kind for e in events if e.kind != "changed"] == ["blocked"]
    assert kinds == [e.kind for e in events]  # what was raised is what was stored
    blocked = next(e for e in events if e.kind == "blocked")
    assert {29049, 31721} & set(blocked.asns) and not set(blocked.asns) & set(AZ_OK_ASNS)
    assert blocked.method == "tls" and blocked.evidence
    assert state.blocked and set(state.blocked_asns) == set(AZ_BLOCKED_ASNS)  # the state outlives the process
    assert all(r.errors == 0 for r in results)


QUARTER = timedelta(minutes=15)
EVENING_BEFORE = datetime(2022, 9, 13, 22, tzinfo=UTC)  # polls run through midnight into the block's day


def first_poll_showing_the_block(rows, polls) -> datetime:
    """The first poll whose published rows show the block to the detector's bar: on some blocked network,
    the rows measured since an earlier poll (no sooner than the block's start) up to this poll hold
    enough anomalies among enough valid measurements (DEFAULT.needed), and more than one run speaks for
    it: its anomalous rows arrived in pieces starting DEFAULT.corroboration_gap apart, or a second
    network passes the bar too. Computed from the rows, as the aggregation counts them (failures are not
    valid; confirmed counts as anomalous); a row's piece starts at the last poll before it was measured."""

    def piece(r):
        return max(p for p in polls if p.strftime("%Y-%m-%d %H:%M:%S") <= r["measurement_start_time"])

    for t in polls:
        cut = t.strftime("%Y-%m-%d %H:%M:%S")
        passing = []
        for asn in AZ_BLOCKED_ASNS:
            mine = [r for r in rows if r["probe_asn"] == asn and r["measurement_start_time"] < cut and r["msm_failure"] != "t"]
            for u in (p for p in polls if BLOCK_START <= p < t):
                since = u.strftime("%Y-%m-%d %H:%M:%S")
                part = [r for r in mine if r["measurement_start_time"] >= since]
                signs = [r for r in part if r["anomaly"] == "t" or r["confirmed"] == "t"]
                if part and len(signs) >= DEFAULT.needed(len(part)):
                    starts = [piece(r) for r in signs]
                    passing.append(max(starts) - min(starts) >= DEFAULT.corroboration_gap)
                    break
        if any(passing) or len(passing) > 1:
            return t
    raise AssertionError("the rows never show the block")


async def day_totals_from_ooni(fake: FakeOoni, day: str, next_day: str) -> dict[int, tuple[int, int]]:
    """(valid, anomalous) per network for one UTC day of AZ TikTok web measurements, as the fake's aggregation counts them."""
    params = {
        "probe_cc": "AZ", "test_name": "web_connectivity", "domain": ",".join(catalog.platform_domains("tiktok", "AZ")),
        "since": day, "until": next_day, "axis_y": "probe_asn",
    }
    async with aiohttp.ClientSession() as session:
        async with session.get(fake.url + "/api/v1/aggregation", params=params) as resp:
            body = await resp.json()
    return {
        e["probe_asn"]: (e["measurement_count"] - e["failure_count"], e["anomaly_count"] + e["confirmed_count"])
        for e in body["result"]
    }


def pieces_of(state, start: datetime, end: datetime) -> dict[int, list[tuple]]:
    return {
        asn: [(b.start, b.end, b.valid, b.signs) for b in net.buckets.values() if start <= b.start < end]
        for asn, net in sorted(state.networks.items())
    }


def totals(pieces: dict[int, list[tuple]]) -> dict[int, tuple[int, int]]:
    return {asn: (sum(p[2] for p in ps), sum(p[3] for p in ps)) for asn, ps in pieces.items() if ps}


async def test_polls_every_15_minutes_raise_the_block_on_the_first_poll_whose_data_shows_it(tmp_path, rows):
    polls = [EVENING_BEFORE + k * QUARTER for k in range(4 * 16)]  # 22:00 to 13:45 the next day
    expected = first_poll_showing_the_block(rows, polls)
    async with FakeOoni() as fake:
        clock = PublishingClock(fake, rows, polls[0])
        store = await open_store(tmp_path / "bw.db")
        try:
            async with OoniSource(fake.url, sleep=no_sleep) as source:
                poller = Poller(services_for(store, fake), source, clock=clock)
                events = []
                for now in polls:
                    clock.move(now)
                    events += [e for e in (await poller.poll_once()).events if e.kind == "blocked"]
                    if events:
                        break
        finally:
            await store.close()
    assert events, "no blocked event"
    [blocked] = events
    # within one poll of the data arriving: the poll that first has enough of the block's rows
    assert blocked.time == expected, (blocked.time, expected)
    assert BLOCK_START < expected <= BLOCK_START + timedelta(hours=3)  # no later than the hourly backtest's 09:00
    assert BLOCK_START <= blocked.since < blocked.time  # the block's own start, not midnight's OK data
    assert blocked.method == "tls" and set(blocked.asns) <= set(AZ_BLOCKED_ASNS)


async def test_a_restart_mid_day_keeps_the_increments_without_counting_twice(tmp_path, rows):
    polls = [EVENING_BEFORE + k * QUARTER for k in range(4 * 16)]  # 22:00 to 13:45 the next day
    restart_at = polls.index(datetime(2022, 9, 14, 10, tzinfo=UTC))
    day, next_day = datetime(2022, 9, 14, tzinfo=UTC), datetime(2022, 9, 15, tzinfo=UTC)
    runs = {}
    for restarting in (False, True):
        async with FakeOoni() as fake:
            clock = PublishingClock(fake, rows, polls[0])
            path = tmp_path / f"bw-{restarting}.db"
            store = await open_store(path)
            source = OoniSource(fake.url, sleep=no_sleep)
            poller = Poller(services_for(store, fake), source, clock=clock)
            events = []
            try:
                for k, now in enumerate(polls):
                    if restarting and k == restart_at:  # a new process: new store, source and poller, same database
                        await source.close()
                        await store.close()
                        store = await Store.open(path)
                        source = OoniSource(fake.url, sleep=no_sleep)
                        poller = Poller(services_for(store, fake), source, clock=clock)
                    clock.move(now)
                    events += (await poller.poll_once()).events
                state = await store.run(load_state, "AZ", "tiktok")
                kinds = await store.run(stored_kinds)
            finally:
                await source.close()
                await store.close()
            ooni = await day_totals_from_ooni(fake, "2022-09-14", "2022-09-15")
        runs[restarting] = (pieces_of(state, day, next_day), [e.kind for e in events])
        # no double counting: the pieces of the day add up to what OONI holds for it, network by network
        assert totals(pieces_of(state, day, next_day)) == ooni, restarting
        assert kinds == [e.kind for e in events] and kinds.count("blocked") == 1
    assert runs[True] == runs[False]  # the restart changed no piece and no event


async def test_the_poller_keeps_the_states_in_memory_and_reloads_them_when_another_process_wrote(tmp_path, rows):
    path = tmp_path / "bw.db"
    async with FakeOoni() as fake:
        clock = PublishingClock(fake, rows, BLOCK_START - timedelta(hours=2))
        store = await open_store(path)
        other = None
        try:
            async with OoniSource(fake.url, sleep=no_sleep) as source:
                poller = Poller(services_for(store, fake), source, clock=clock)
                await poller.poll_once()
                statements: list[str] = []
                await store.run(lambda db: db.conn.set_trace_callback(statements.append))
                clock.move(clock.now + QUARTER)
                assert (await poller.poll_once()).errors == 0
                assert [s for s in statements if "from states" in s] == []  # held in memory: not read again
                assert [s for s in statements if "insert into states" in s]  # but written, with the events

                # `blockwatch poll --once` from another process raises the block and saves its state...
                clock.move(BLOCK_START + timedelta(hours=12))
                other = await Store.open(path)
                async with OoniSource(fake.url, sleep=no_sleep) as other_source:
                    assert [e.kind for e in (await Poller(services_for(other, fake), other_source, clock=clock).poll_once()).events] == ["blocked"]
                # ...so this poller reads the state again rather than raising the block a second time
                clock.move(clock.now + QUARTER)
                statements.clear()
                assert (await poller.poll_once()).events == []
                assert [s for s in statements if "from states" in s]
            kinds = await store.run(stored_kinds)
        finally:
            await store.close()
            if other is not None:
                await other.close()
    assert kinds == ["blocked"]


async def test_a_cycle_writes_only_the_states_it_changed(tmp_path, rows):
    """AZ Signal has no data at the fake: its state, stored on the first cycle, is not written again;
    TikTok's, which takes the day re-sent, is written every cycle (with its events' transaction)."""
    async with FakeOoni() as fake:
        clock = PublishingClock(fake, rows, BLOCK_START - timedelta(hours=2))
        store = await open_store(tmp_path / "bw.db", watches=(("AZ", "tiktok"), ("AZ", "signal")))
        try:
            async with OoniSource(fake.url, sleep=no_sleep) as source:
                poller = Poller(services_for(store, fake), source, clock=clock)
                statements: list[str] = []
                await store.run(lambda db: db.conn.set_trace_callback(statements.append))
                await poller.poll_once()
                first = [s for s in statements if "insert into states" in s]
                stored = await store.run(load_state, "AZ", "signal")
                for _ in range(3):
                    statements.clear()
                    clock.move(clock.now + QUARTER)
                    assert (await poller.poll_once()).errors == 0
                    writes = [s for s in statements if "insert into states" in s]
                    assert len(writes) == 1 and "'tiktok'" in writes[0]  # signal's unchanged state is not written
                assert await store.run(load_state, "AZ", "signal") == stored
        finally:
            await store.close()
    assert len(first) == 2 and stored is not None and stored.networks == {}  # both stored on the first cycle


async def test_a_failed_cycle_forgets_the_states_it_changed_so_its_event_is_not_lost(tmp_path, rows):
    async with FakeOoni() as fake:
        clock = PublishingClock(fake, rows, BLOCK_START - timedelta(hours=2))
        store = await open_store(tmp_path / "bw.db")
        try:
            async with OoniSource(fake.url, sleep=no_sleep) as source:
                poller = Poller(services_for(store, fake), source, clock=clock)
                await poller.poll_once()  # the state is now held in memory
                await store.run(lambda db: db.execute("alter table events rename to events_away"))
                clock.move(BLOCK_START + timedelta(hours=12))
                failed = await poller.poll_once()  # detects the block, cannot store its event: rolled back
                assert (failed.errors, failed.events) == (1, [])
                await store.run(lambda db: db.execute("alter table events_away rename to events"))
                clock.move(clock.now + QUARTER)
                again = await poller.poll_once()
            kinds = await store.run(stored_kinds)
        finally:
            await store.close()
    assert [e.kind for e in again.events] == ["blocked"]  # not swallowed by a state the database never got
    assert kinds == ["blocked"]


async def test_a_restart_on_the_same_database_repeats_no_event(tmp_path, rows):
    path = tmp_path / "bw.db"
    async with FakeOoni() as fake:
        clock = PublishingClock(fake, rows, BLOCK_START + timedelta(hours=12))
        store = await open_store(path)
        async with OoniSource(fake.url, sleep=no_sleep) as source:
            first = await Poller(services_for(store, fake), source, clock=clock).poll_once()
        await store.close()
        assert [e.kind for e in first.events] == ["blocked"]

        store = await Store.open(path)  # a new process: new source, new poller, same data and clock
        try:
            async with OoniSource(fake.url, sleep=no_sleep) as source:
                again = await Poller(services_for(store, fake), source, clock=clock).poll_once()
                clock.move(clock.now + timedelta(hours=1))
                later = await Poller(services_for(store, fake), source, clock=clock).poll_once()
            kinds = await store.run(stored_kinds)
        finally:
            await store.close()
    assert again.events == [] and later.events == []
    assert kinds == ["blocked"]


async def test_an_outage_during_a_block_keeps_it_blocked_and_counts_an_error(tmp_path, rows):
    async with FakeOoni() as fake:
        clock = PublishingClock(fake, rows, BLOCK_START + timedelta(hours=12))
        store = await open_store(tmp_path / "bw.db", watches=(("AZ", "tiktok"), ("AM", "tiktok")))
        try:
            async with OoniSource(fake.url, sleep=no_sleep) as source:
                poller = Poller(services_for(store, fake), source, clock=clock)
                assert [e.kind for e in (await poller.poll_once()).events] == ["blocked"]
                before = (await store.run(load_state, "AZ", "tiktok")).to_dict()

                fake.outage(True)
                clock.move(BLOCK_END + timedelta(days=4))  # long past the block: only data could clear it
                during = await poller.poll_once()
                after = (await store.run(load_state, "AZ", "tiktok")).to_dict()
                fake.outage(False)
            kinds = await store.run(stored_kinds)
        finally:
            await store.close()
    assert during.events == []
    assert (during.countries, during.errors, sorted(during.failed)) == (2, 2, ["AM", "AZ"])
    assert during.requests > 0  # it did try (and retry)
    assert after == before  # state untouched: missing data is never an unblock
    assert kinds == ["blocked"]


async def test_a_cycle_costs_at_most_three_requests_per_country(tmp_path, rows):
    watches = [("AZ", p) for p in ("tiktok", "whatsapp", "telegram", "facebook", "youtube")] + [("AM", "tiktok"), ("RU", "signal")]
    async with FakeOoni() as fake:
        clock = PublishingClock(fake, rows, BLOCK_START - timedelta(hours=1))
        store = await open_store(tmp_path / "bw.db", watches=watches)
        for chat in (43, 44):  # more watchers of the same pairs cost nothing more
            await store.run(ensure_chat, chat, "private")
            await store.run(add_watches, chat, "AZ", ["tiktok", "whatsapp"])
        costs = []
        try:
            async with OoniSource(fake.url, sleep=no_sleep) as source:
                poller = Poller(services_for(store, fake), source, clock=clock)
                for hours in range(0, 30, 3):
                    clock.move(BLOCK_START + timedelta(hours=hours))
                    sent = len(fake.requests)
                    result = await poller.poll_once()
                    per_country: dict[str, int] = {}
                    for _, query in fake.requests[sent:]:
                        per_country[query["probe_cc"]] = per_country.get(query["probe_cc"], 0) + 1
                    assert result.requests == len(fake.requests) - sent
                    assert max(per_country.values()) <= 3, per_country
                    costs.append(result.requests)
        finally:
            await store.close()
    assert all(1 * 3 <= cost <= 3 * 3 for cost in costs), costs  # three countries: 3 to 9 a cycle


async def test_the_loop_logs_a_failing_cycle_once_goes_on_and_stops_cleanly(tmp_path, rows, caplog):
    async with FakeOoni() as fake, FakeIoda() as ioda:
        clock = PublishingClock(fake, rows, BLOCK_START + timedelta(hours=12))
        store = await open_store(tmp_path / "bw.db")
        try:
            await store.run(lambda db: db.execute("alter table watches rename to watches_away"))  # every cycle fails
            poller = Poller(services_for(store, fake, poll_interval=0.01, ioda_api_url=ioda.url), clock=clock)
            with caplog.at_level(logging.DEBUG, logger="bot.poller"):
                task = asyncio.create_task(poller.run())
                await asyncio.sleep(0.3)
                failing = [r for r in caplog.records if r.levelno >= logging.ERROR]
                assert len(failing) == 1 and "poll cycle failed" in failing[0].getMessage()
                assert len([r for r in caplog.records if "failed again" in r.getMessage()]) >= 3  # it kept trying

                await store.run(lambda db: db.execute("alter table watches_away rename to watches"))
                for _ in range(100):  # the loop recovers by itself: the next cycles poll and detect
                    if (kinds := await store.run(stored_kinds)) and poller.last is not None:
                        break
                    await asyncio.sleep(0.02)
                assert kinds == ["blocked"] and poller.last.errors == 0
                sessions = [poller.source.client.session, poller.outages.client.session]
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            assert all(s is not None and s.closed for s in sessions)  # cancelling it closed both sources' HTTP sessions
        finally:
            await store.close()


async def test_poll_once_cli_prints_the_event_and_queues_it(tmp_path):
    # `poll --once` runs on the real clock: the block is re-dated to yesterday and today
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    rows = az_tiktok_episode(today - timedelta(days=1), today + timedelta(days=1), after=timedelta(0))
    database = tmp_path / "bw.db"
    store = await open_store(database)
    await store.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "OONI_", "DATABASE_", "POLL_"))}
    async with FakeOoni(rows) as fake, FakeIoda() as ioda:
        env.update(OONI_API_URL=fake.url, IODA_API_URL=ioda.url, DATABASE_PATH=str(database), LOG_LEVEL="WARNING")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "poll", "--once", cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    out, err = out.decode(), err.decode()
    assert process.returncode == 0, err
    assert "TikTok — Azerbaijan (AZ): signs of blocking" in out
    assert "AS29049 Delta Telecom" in out and "(https://explorer.ooni.org/m/" in out
    assert out.strip().splitlines()[-1] == "poll: 1 countries, 3 requests to OONI, 0 errors, 1 events; 2 requests to IODA"
    store = await Store.open(database)
    try:
        kinds = await store.run(stored_kinds)
        pending = await store.run(lambda db: db.execute("select count(*) from deliveries where chat_id = 42 and status = 'pending'").fetchone()[0])
    finally:
        await store.close()
    assert kinds == ["blocked"]
    assert pending == 1  # queued for the running bot's sender


async def test_poll_once_cli_exits_1_when_every_country_fails(tmp_path):
    database = tmp_path / "bw.db"
    store = await open_store(database)
    await store.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "OONI_", "DATABASE_", "POLL_"))}
    async with FakeOoni() as fake, FakeIoda() as ioda:
        fake.fail_next(1, status=400)  # refused: not retried, so the test stays quick
        ioda.fail_next(1, status=400)
        env.update(OONI_API_URL=fake.url, IODA_API_URL=ioda.url, DATABASE_PATH=str(database), LOG_LEVEL="ERROR")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "poll", "--once", cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 1, err.decode()
    assert out.decode().strip() == "poll: 1 countries, 1 requests to OONI, 1 errors, 0 events (no data from AZ); 1 requests to IODA"


async def test_a_watching_chat_gets_the_blocked_alert_from_the_running_bot(telegram, tmp_path):
    """End to end: /watch in a chat → the poller (every 0.2 s) finds the block → the sender delivers it."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    rows = az_tiktok_episode(today - timedelta(days=1), today + timedelta(days=1), after=timedelta(0))
    async with FakeOoni(rows) as fake, FakeIoda() as ioda:
        async with running_bot(
            telegram, tmp_path / "bw.db", polling=True, sending=True, poll_interval=0.2, ooni_api_url=fake.url,
            ioda_api_url=ioda.url,
        ) as bot:
            reply = await bot.say("/watch AZ tiktok", chat_id=100)
            assert "Watching Azerbaijan (AZ): TikTok" in reply.text

            def alert(call) -> bool:
                return call.text is not None and "signs of blocking" in call.text and "AS29049" in call.text

            [message] = await telegram.wait_for(alert, chat_id=100, timeout=15)
            assert message.params.get("parse_mode") == "HTML"
            assert "TLS" in message.text and "explorer.ooni.org/m/" in message.params["text"]
            cycles = bot.services.poller.source.requests_made
            await asyncio.sleep(1.0)  # a few more cycles over the same data
            assert bot.services.poller.source.requests_made > cycles  # it kept polling...
            assert len([c for c in telegram.sent(100) if alert(c)]) == 1  # ...and sent the alert once
