"""Charts: the pure data → PNG core, and end to end — a blocked alert followed by its chart
(sendPhoto, one render and one upload however many chats), /status CC platform with its chart —
through the real Application, sender, poller, the fake OONI API and the fake Bot API."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from bot import charts
from bot.chart_maker import ChartMaker, ChartUnavailable, key_of, read_key
from bot.observations import Observation
from tests.fakes.ooni import FakeOoni, az_tiktok_episode
from tests.fakes.telegram import UploadedFile
from tests.harness import running_bot

UTC = timezone.utc
LAST = date(2022, 9, 16)


def observations(networks: int = 11) -> list[Observation]:
    out = []
    for d in range(charts.DAYS):
        day = datetime(2022, 9, 3, tzinfo=UTC) + timedelta(days=d)
        for n in range(networks):
            asn = (29049, 41997, 31721, 28787, 57293)[n] if n < 5 else 60000 + n
            blocked = n < 3 and day.date() >= date(2022, 9, 14)
            out.append(Observation("AZ", "tiktok", asn, day, day + timedelta(hours=1), measurements=20 + n,
                                   anomalies=18 if blocked else n % 2))
    return out


def test_shares_per_network_and_day_with_at_most_eight_networks_and_the_rest_as_others():
    data = charts.chart_data(observations(), "AZ", "tiktok", LAST, datetime(2022, 9, 14, 6, tzinfo=UTC))
    assert data.title == "TikTok · AZ" and data.days[0] == date(2022, 9, 3) and data.days[-1] == LAST
    assert len(data.lines) == charts.MAX_NETWORKS + 1 and data.lines[-1].label == "others (3)"
    first = {line.label.split()[0]: line for line in data.lines}
    assert first["AS29049"].shares[-1] == pytest.approx(18 / 20) and first["AS29049"].shares[0] == 0
    assert [line.label.split()[0] for line in data.lines[:3]] == ["AS41997", "AS31721", "AS29049"]  # most anomalous first
    assert data.lines[1].label == "AS31721 Azercell Telecom"  # names shortened, the legal form dropped
    assert data.block_since == date(2022, 9, 14)
    few = charts.chart_data(observations(9), "AZ", "tiktok", LAST)  # one over the limit: shown, not "others (1)"
    assert len(few.lines) == 9 and not any(line.label.startswith("others") for line in few.lines)
    assert few.block_since is None
    empty = charts.chart_data([], "AZ", "tiktok", LAST)
    assert empty.lines == () and charts.png_size(charts.render_png(empty)) == (1200, 900)


def test_the_png_is_phone_sized_small_and_in_colour_blind_safe_colours():
    png = charts.render_png(charts.chart_data(observations(), "AZ", "tiktok", LAST, datetime(2022, 9, 14, tzinfo=UTC)))
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and charts.png_size(png) == (1200, 900)
    assert 20_000 < len(png) < 300_000
    # Okabe–Ito's eight, and a distinct marker and dash pattern per line so colour is never the only cue
    assert set(charts.COLOURS) == {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"}
    assert len(set(zip(charts.MARKERS, charts.DASHES))) == charts.MAX_NETWORKS


def test_chart_keys_are_one_per_pair_and_hour():
    key = key_of("AZ", "tiktok", datetime(2022, 9, 14, 6, 59, tzinfo=UTC))
    assert key == key_of("AZ", "tiktok", datetime(2022, 9, 14, 6, 1, tzinfo=UTC)) == "chart:AZ:tiktok:2022-09-14T06"
    assert read_key(key) == ("AZ", "tiktok", datetime(2022, 9, 14, 6, tzinfo=UTC))
    assert read_key("chart:AZ:nosuch:2022-09-14T06") is None and read_key("event:1") is None


async def test_chart_maker_renders_once_per_key_however_many_ask(tmp_path):
    from storage.db import Store
    import asyncio

    calls = []

    async def fetch(country, platform, since, until):
        calls.append((country, platform, since, until))
        return observations()

    store = await Store.open(tmp_path / "bw.db")
    try:
        maker = ChartMaker(store, fetch)
        key = key_of("AZ", "tiktok", datetime(2022, 9, 16, 12, tzinfo=UTC))
        pngs = await asyncio.gather(*(maker.png(key) for _ in range(20)))
        assert maker.renders == 1 and len(calls) == 1 and len(set(pngs)) == 1
        assert calls[0][2:] == (date(2022, 9, 3), date(2022, 9, 17))  # 14 days up to the hour's day, `until` exclusive
    finally:
        await store.close()


async def test_charts_past_the_hourly_budget_are_left_out_without_asking_ooni(tmp_path):
    """/status CC platform for any country cannot turn into unbounded OONI history requests."""
    from storage.db import Store

    calls = []

    async def fetch(country, platform, since, until):
        calls.append(country)
        return observations()

    store = await Store.open(tmp_path / "bw.db")
    try:
        maker = ChartMaker(store, fetch, per_hour=2)
        hour = datetime(2022, 9, 16, 12, tzinfo=UTC)
        await maker.png(key_of("AZ", "tiktok", hour))
        await maker.png(key_of("AM", "tiktok", hour))
        await maker.png(key_of("AZ", "tiktok", hour))  # one already made: free
        with pytest.raises(ChartUnavailable):
            await maker.png(key_of("UG", "tiktok", hour))
        assert calls == ["AZ", "AM"]
        await maker.png(key_of("UG", "tiktok", hour + timedelta(hours=1)))  # a new hour, a new budget
        assert calls == ["AZ", "AM", "UG"]
    finally:
        await store.close()


# -- end to end ---------------------------------------------------------------------------------


def today_rows():
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    return az_tiktok_episode(today - timedelta(days=1), today + timedelta(days=1), after=timedelta(0))


def photos(telegram, chat_id):
    return [c for c in telegram.calls("sendPhoto") if str(c.chat_id) == str(chat_id) and c.ok]


CAPTIONS = {100: ("en", "share of anomalous measurements per network"), 101: ("az", "anomal ölçmələrin"),
            102: ("ru", "доля аномальных измерений")}


async def test_a_blocked_alert_comes_with_its_chart_rendered_and_uploaded_once_for_every_chat(telegram, tmp_path):
    async with FakeOoni(today_rows()) as ooni:
        async with running_bot(telegram, tmp_path / "bw.db", sending=True, polling=True, poll_interval=0.2,
                               ooni_api_url=ooni.url) as bot:
            for chat, (lang, _) in CAPTIONS.items():
                await bot.say(f"/language {lang}", chat_id=chat)
                await bot.say("/watch AZ tiktok", chat_id=chat)
            for chat in CAPTIONS:
                await telegram.wait_for(lambda c, chat=chat: c.method == "sendPhoto" and str(c.chat_id) == str(chat), timeout=20)
            for chat, (_, caption) in CAPTIONS.items():
                [photo] = photos(telegram, chat)
                alert = [c for c in telegram.sent(chat) if "AS29049" in (c.text or "")]
                assert alert and alert[0].time <= photo.time  # the alert first, then its chart
                assert caption in photo.params["caption"] and "TikTok" in photo.params["caption"]  # in the chat's language
            uploads = [c for c in telegram.calls("sendPhoto") if isinstance(c.params["photo"], UploadedFile)]
            assert len(uploads) == 1  # one upload; the other chats got Telegram's file_id
            png = uploads[0].params["photo"].data
            assert png.startswith(b"\x89PNG") and charts.png_size(png) == (1200, 900) and len(png) < 300_000
            assert bot.services.charts.renders == 1  # one PNG for three languages


async def test_status_for_one_platform_answers_then_sends_its_chart(telegram, tmp_path):
    async with FakeOoni(today_rows()) as ooni:
        async with running_bot(telegram, tmp_path / "bw.db", ooni_api_url=ooni.url) as bot:
            await bot.say("/language ru")
            answer = await bot.say("/status AZ tiktok")
            assert "TikTok" in answer.text
            [photo] = await telegram.wait_for("sendPhoto", chat_id=100, timeout=20)
            assert "доля аномальных измерений" in photo.params["caption"]
            assert charts.png_size(photo.params["photo"].data) == (1200, 900)
            await bot.say("/status AZ")  # several platforms: no chart
            await bot.say("/status AZ tiktok")  # the same hour: Telegram's file_id, no second render or upload
            await telegram.wait_for("sendPhoto", chat_id=100, count=2, timeout=20)
            assert bot.services.charts.renders == 1 and bot.services.charts.uploads == 1
            assert isinstance(telegram.calls("sendPhoto")[-1].params["photo"], str)


async def test_without_ooni_the_alert_still_goes_and_the_chart_is_left_out_once(telegram, tmp_path, caplog):
    from bot import notifier
    from bot.detector import Event
    from storage import outbox
    import asyncio

    async with running_bot(telegram, tmp_path / "bw.db", sending=True) as bot:  # OONI on a closed port
        for chat in (100, 101):
            await bot.say("/watch AZ tiktok", chat_id=chat)
        now = datetime.now(UTC)
        await bot.store.run(notifier.queue_event, Event("blocked", "AZ", "tiktok", now, asns=(29049,), method="tls", since=now))
        await bot.services.wake_sender()
        for chat in (100, 101):
            await telegram.wait_for(lambda c, chat=chat: "AS29049" in (c.text or "") and str(c.chat_id) == str(chat), timeout=15)
        for _ in range(100):
            if (await bot.store.run(outbox.counts))["sent"] == 2:
                break
            await asyncio.sleep(0.05)
        assert (await bot.store.run(outbox.counts))["sent"] == 2  # the alerts are recorded sent before their charts are tried

        def logged() -> int:
            return sum("went without its chart" in r.getMessage() for r in caplog.records)

        for _ in range(200):
            if logged() and bot.services.charts._pngs and all(f.done() for f in bot.services.charts._pngs.values()):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # the second chat's attempt, from the failed chart kept for the hour
        assert logged() == 1 and telegram.calls("sendPhoto") == []
