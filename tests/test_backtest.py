"""`blockwatch backtest` through the real CLI (a subprocess) against the fake OONI API on loopback.

The fake serves the September 2022 Azerbaijan TikTok block (re-dated real rows, tests/fakes/ooni.py)
and the real 2024-01-01 background rows; the test's event loop keeps serving while the CLI runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import sys
from datetime import date, datetime, timedelta, timezone

import pytest

from bot import catalog
from bot.backtest import replay
from bot.sources.ooni import OoniSource
from storage.db import Store
from storage.subscriptions import add_watches, ensure_chat
from bot.detector import DEFAULT
from tests.fakes.ioda import FakeIoda, uganda_alerts
from tests.fakes.ooni import FakeOoni, az_tiktok_episode, load_fastpath_background

UTC = timezone.utc
BLOCK_START = datetime(2022, 9, 14, 6, tzinfo=UTC)  # the episode's defaults
BLOCK_END = datetime(2022, 9, 16, 12, tzinfo=UTC)
EXPLORER = "https://explorer.ooni.org/m/"
AZ_RANGE = ["--country", "AZ", "--platform", "tiktok", "--since", "2022-09-13", "--until", "2022-09-20"]


@pytest.fixture(scope="module")
def episode():
    # 72 h of OK data after the block: the detector wants 48 h of it before it says "unblocked"
    return az_tiktok_episode(after=timedelta(hours=72))


@pytest.fixture(scope="module")
def background():
    return load_fastpath_background()


async def blockwatch(*args: str, ooni: str, cwd, database, ioda: str = "http://127.0.0.1:9") -> tuple[int, str, str]:
    """Run `python -m bot …` with only our settings in its environment; (exit code, stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "OONI_", "IODA_", "DATABASE_", "POLL_"))}
    env.update(OONI_API_URL=ooni, IODA_API_URL=ioda, DATABASE_PATH=str(database), LOG_LEVEL="WARNING")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode, out.decode(), err.decode()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def folder_digest(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


async def test_backtest_json_finds_the_az_tiktok_block_its_networks_and_its_end(tmp_path, episode, background):
    database = tmp_path / "data" / "blockwatch.db"
    async with FakeOoni(episode + background) as fake:
        code, out, err = await blockwatch("backtest", *AZ_RANGE, "--step", "1", "--json", ooni=fake.url, cwd=tmp_path, database=database)
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert events, err
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "blocked" and kinds[-1] == "unblocked", kinds
    assert "blocked" not in kinds[1:] and "unblocked" not in kinds[:-1], kinds  # one blocked period, not a flap

    first = events[0]
    assert list(first)[:7] == ["time", "country", "platform", "kind", "asns", "method", "evidence"]  # the contract's keys, in order
    assert (first["country"], first["platform"], first["method"]) == ("AZ", "tiktok", "tls")
    assert {29049, 31721} <= set(first["asns"])
    assert first["evidence"] and all(link.startswith(EXPLORER) for link in first["evidence"])
    # found within a few hours of the block's first measurements — and never before them
    assert BLOCK_START < at(first["time"]) <= BLOCK_START + timedelta(hours=4)
    # the third network, AS41997, in the first event or a "changed" one while the block lasts
    assert 41997 in first["asns"] or any(e["kind"] == "changed" and 41997 in e["added"] for e in events)
    assert not set().union(*(e["asns"] for e in events)) - {29049, 31721, 41997}  # the OK networks never

    # the numbers of every event are the still-blocked networks' block data — mostly anomalous — even
    # while the networks clear one by one (never "0 of 96": that was the clearing window's OK data)
    for event in events[:-1]:
        assert event["measurements"] > 0 and event["anomalies"] >= 0.8 * event["measurements"], event

    last = events[-1]
    # cleared once the OK data after the block's end is as strong as what raised it: hours, not days
    # (at least DEFAULT.clear_min_span of it, within DEFAULT.clear_within of the first clean measurement)
    assert BLOCK_END + DEFAULT.clear_min_span <= at(last["time"]) <= BLOCK_END + DEFAULT.clear_within + timedelta(hours=1)
    assert at(last["ended"]) == BLOCK_END
    assert last["duration_seconds"] == (BLOCK_END - BLOCK_START).total_seconds()
    # the end names every network of the episode, and clears those still blocked until then
    assert set(last["asns"]) == set().union(*(e["asns"] for e in events[:-1])) == {29049, 31721, 41997}
    assert last["cleared"] == events[-2]["asns"]  # those blocked until this event
    # ...with the whole period's numbers: 2 an hour on each of the three networks for most of the
    # 54 hours (each from its first to its last anomalous hour), ~90% anomalous
    hours = (BLOCK_END - BLOCK_START) / timedelta(hours=1)
    assert 3 * 2 * (hours - 6) <= last["measurements"] <= 3 * 2 * hours
    assert last["anomalies"] >= 0.8 * last["measurements"]
    assert len(last["evidence"]) >= 3 * 2
    assert not database.parent.exists()  # no Telegram, no database: not even its folder


async def test_backtest_prints_the_rendered_alerts_and_leaves_the_database_alone(tmp_path, episode):
    database = tmp_path / "blockwatch.db"
    store = await Store.open(database)  # a bot's database with a watcher of the very pair
    await store.run(ensure_chat, 42, "private")
    await store.run(add_watches, 42, "AZ", ["tiktok"])
    await store.close()
    before = folder_digest(tmp_path)
    async with FakeOoni(episode) as fake:
        code, out, err = await blockwatch("backtest", *AZ_RANGE, "--step", "3", ooni=fake.url, cwd=tmp_path, database=database)
    assert code == 0, err
    assert folder_digest(tmp_path) == before  # not a byte written, no journal left behind
    messages = [m for m in out.split("\n\n\n") if m.strip()]
    assert all(re.match(r"\[2022-09-1\d \d\d:\d\d UTC\]\n", m.strip()) for m in messages), messages  # each event's time
    assert "TikTok — Azerbaijan (AZ): signs of blocking" in messages[0]
    assert "AS29049 Delta Telecom" in messages[0] and "TLS" in messages[0]
    assert "(https://explorer.ooni.org/m/2022091" in messages[0]  # evidence links keep their address
    assert "<b>" not in out and "&amp;" not in out  # Telegram HTML turned into terminal text
    assert "no more signs of blocking" in messages[-1] and "2 days, 6 hours" in messages[-1]


async def test_backtest_of_the_real_background_rows_raises_nothing(tmp_path, background):
    counts: dict[str, int] = {}
    for row in background:
        counts[row["probe_cc"]] = counts.get(row["probe_cc"], 0) + 1
    busiest = max(counts, key=counts.get)
    platforms = [arg for name in catalog.PLATFORMS for arg in ("--platform", name)]
    async with FakeOoni(background) as fake, FakeIoda() as ioda:  # every platform, `internet` too: IODA quiet
        code, out, err = await blockwatch(
            "backtest", "--country", busiest, *platforms, "--since", "2024-01-01", "--until", "2024-01-02",
            "--step", "0.25", "--json", ooni=fake.url, ioda=ioda.url, cwd=tmp_path, database=tmp_path / "db.sqlite",
        )
        assert len(ioda.requests) == 2  # the country's alerts and its networks'

        assert (code, out) == (0, ""), err
        # and every other country of the rows, in-process through the same source and replay
        async with OoniSource(fake.url) as source:
            for cc in sorted(c for c in counts if catalog.find_country(c)):
                observations = await source.history(cc, list(catalog.PLATFORMS), date(2024, 1, 1), date(2024, 1, 2))
                start = datetime(2024, 1, 1, tzinfo=UTC)
                events = replay(observations, cc, list(catalog.PLATFORMS), start, start + timedelta(days=1), timedelta(hours=1))
                assert events == [], cc


async def test_replay_never_peeks_past_its_clock(episode):
    """Events up to any moment are the same whether or not later data exists."""
    async with FakeOoni(episode) as fake, OoniSource(fake.url) as source:
        full = await source.history("AZ", ["tiktok"], date(2022, 9, 13), date(2022, 9, 20))
    start, end, step = datetime(2022, 9, 13, tzinfo=UTC), datetime(2022, 9, 20, tzinfo=UTC), timedelta(minutes=20)
    everything = replay(full, "AZ", ["tiktok"], start, end, step)
    assert len(everything) >= 2
    # cut the data at each event's moment (where a peek would show first) and at a few others
    cuts = sorted({e.time for e in everything} | {BLOCK_START + timedelta(hours=h) for h in range(1, 6)})
    for cut in cuts:
        known = [o for o in full if o.end <= cut]
        assert replay(known, "AZ", ["tiktok"], start, cut, step) == [e for e in everything if e.time <= cut]
    # and each event's time is a step of the clock, after the data behind it
    for event in everything:
        assert (event.time - start) % step == timedelta(0)


@pytest.mark.parametrize(
    "args, says",
    [
        (["--country", "XX", "--platform", "tiktok"], "unknown country 'XX'"),
        (["--country", "Azerbajan", "--platform", "tiktok"], "did you mean AZ (Azerbaijan)?"),
        (["--country", "AZ", "--platform", "tiktk"], "unknown platform 'tiktk' — did you mean tiktok?"),
        (["--country", "AZ", "--platform", "tiktok", "--since", "2022-09-31"], "--since must be a date written YYYY-MM-DD"),
        (["--country", "AZ", "--platform", "tiktok", "--since", "2022-09-20"], "must be before --until"),
        (["--country", "AZ", "--platform", "tiktok", "--step", "0"], "--step must be a number of hours greater than 0"),
    ],
)
async def test_bad_arguments_exit_2_with_one_clear_line(tmp_path, args, says):
    full = {"--since": "2022-09-13", "--until": "2022-09-20"}
    for flag, value in zip(args[::2], args[1::2]):
        full[flag] = value
    argv = [item for pair in full.items() for item in pair]
    async with FakeOoni() as fake:
        code, out, err = await blockwatch("backtest", *argv, ooni=fake.url, cwd=tmp_path, database=tmp_path / "db")
        assert fake.requests == []  # refused before asking OONI anything
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and says in err, err


async def test_an_ooni_failure_exits_1_with_one_line_and_no_events(tmp_path, episode):
    async with FakeOoni(episode) as fake:
        fake.fail_next(1, status=400)  # a refusal is not retried: the quickest real failure
        code, out, err = await blockwatch("backtest", *AZ_RANGE, "--json", ooni=fake.url, cwd=tmp_path, database=tmp_path / "db")
    assert code == 1
    assert out == ""
    # the source's own warning may come first (its log); the command's word on it is one last line
    assert err.strip().splitlines()[-1].startswith("blockwatch backtest: could not fetch the history from OONI"), err
    assert "Traceback" not in err


async def test_backtest_of_the_uganda_shutdown_gives_outage_and_restored_as_the_contract_says(tmp_path):
    cc, rows = uganda_alerts()
    async with FakeIoda({cc: rows}) as ioda, FakeOoni() as ooni:
        code, out, err = await blockwatch(
            "backtest", "--country", "UG", "--platform", "shutdown", "--since", "2026-01-12", "--until", "2026-01-19",
            "--step", "0.25", "--json", ooni=ooni.url, ioda=ioda.url, cwd=tmp_path, database=tmp_path / "db.sqlite",
        )
        assert code == 0, err
        assert ooni.requests == []  # internet outages are IODA's alone
        windows = {(q["from"], q["until"]) for _, q in ioda.requests}
        assert windows == {(str(int(at("2026-01-05T00:00:00Z").timestamp())), str(int(at("2026-01-18T23:59:59Z").timestamp())))}
        plain_code, plain, _ = await blockwatch(
            "backtest", "--country", "Uganda", "--platform", "internet", "--since", "2026-01-12", "--until", "2026-01-19",
            ooni=ooni.url, ioda=ioda.url, cwd=tmp_path, database=tmp_path / "db.sqlite",
        )
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(line["kind"], line["time"]) for line in lines] == [
        ("outage", "2026-01-13T16:00:00Z"),  # an hour after the first network went critical (15:00)
        ("restored", "2026-01-17T21:30:00Z"),  # the telescope, last back, recovered at 21:30
    ]
    outage, restored = lines
    for line in lines:
        assert list(line)[:7] == ["time", "country", "platform", "kind", "asns", "method", "evidence"]
        assert (line["country"], line["platform"], line["method"]) == ("UG", "internet", None)
        assert line["evidence"] and all(link.startswith("https://ioda.inetintel.cc.gatech.edu/") for link in line["evidence"])
    assert outage["asns"] == [37075]  # at 16:00 only Airtel had been down an hour
    assert restored["asns"] == [20294, 21491, 37075]
    assert restored["since"] == "2026-01-13T15:00:00Z" and restored["duration_seconds"] == (4 * 24 + 6) * 3600 + 30 * 60
    assert plain_code == 0 and not (tmp_path / "db.sqlite").exists()  # nothing written to the bot's database
    assert "Internet outage — Uganda (UG)" in plain and "Internet restored — Uganda (UG)" in plain
    assert "active probing (networks that answer) 85% below normal" in plain
    assert "It lasted 4 days, 6 hours" in plain
