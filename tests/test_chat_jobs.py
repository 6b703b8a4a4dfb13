"""Mute + summary, the daily digest and /history end to end: the real Application and sender, the
fake Bot API, and ChatJobs driven by a test clock (no waiting for wall-clock times)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bot import notifier
from bot.chat_jobs import ChatJobs
from bot.detection.pattern import Pattern
from bot.detector import Event
from storage import chat_settings, events, outbox
from tests.harness import running_bot, settled

UTC = timezone.utc
MUTED, OTHER = 100, 101


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def blocked(at: datetime, platform: str = "tiktok") -> Event:
    return Event("blocked", "AZ", platform, at, asns=(29049,), method="tls", since=at - timedelta(hours=3),
                 anomalies=31, measurements=38, evidence=("20220914T061502Z_webconnectivity_AZ_29049_n1_aaa",))


def unblocked(at: datetime, since: datetime, platform: str = "tiktok") -> Event:
    return Event("unblocked", "AZ", platform, at, asns=(29049, 31721), cleared=(29049, 31721), method="tls", since=since,
                 duration=at - since, ended=at, anomalies=50, measurements=60)


async def kinds_to(bot, chat_id) -> list[str]:
    return [d["kind"] for d in await bot.store.run(outbox.deliveries_of, chat_id)]


@pytest.mark.parametrize("lang, muted, summary, change", [
    ("en", "Muted until", "Your mute has ended", "signs of blocking on AS29049"),
    ("az", "səssizdir", "Səssiz rejim bitdi", "bloklanma əlamətləri"),
    ("ru", "Без оповещений до", "Пауза закончилась", "признаки блокировки"),
])
async def test_a_muted_watch_gets_no_alert_then_one_summary_when_the_mute_ends(telegram, tmp_path, lang, muted, summary, change):
    async with running_bot(telegram, tmp_path / "bw.db", sending=True) as bot:
        for chat in (MUTED, OTHER):
            await bot.say("/watch AZ tiktok", chat_id=chat)
        await bot.say(f"/language {lang}", chat_id=MUTED)
        reply = await bot.say("/mute AZ tiktok 6h", chat_id=MUTED)
        assert muted in reply.text
        now = datetime.now(UTC)
        await bot.store.run(notifier.queue_event, blocked(now))
        await bot.services.wake_sender()
        await settled(bot)
        assert await kinds_to(bot, MUTED) == [] and await kinds_to(bot, OTHER) == ["alert_blocked"]  # it waits

        jobs = ChatJobs(bot.services, clock=Clock(now + timedelta(hours=5)))
        assert await jobs.tick() == 0  # still muted
        jobs.clock.now = now + timedelta(hours=6, minutes=1)
        assert await jobs.tick() == 1
        await settled(bot)
        message = telegram.sent(MUTED)[-1]
        assert summary in message.text and change in message.text and "TikTok" in message.text
        assert await jobs.tick() == 0 and await ChatJobs(bot.services, clock=jobs.clock).tick() == 0  # once, restart or not
        assert await kinds_to(bot, MUTED) == ["mute_summary"]


async def test_unmute_ends_every_mute_now_with_its_summary_and_nothing_changed_says_so(bot_with_sender):
    bot = bot_with_sender
    await bot.say("/watch AZ tiktok", chat_id=MUTED)
    # bad input, in other chats (each chat gets about a message a second: the test stays quick)
    assert "Nothing is muted" in (await bot.say("/unmute", chat_id=OTHER)).text
    assert "For how long?" in (await bot.say("/mute AZ", chat_id=OTHER + 1)).text  # "AZ" is not a duration
    assert "For how long?" in (await bot.say("/mute 45d", chat_id=OTHER + 2)).text
    for chat in (OTHER, OTHER + 1, OTHER + 2):
        assert await bot.store.run(chat_settings.mutes_of, chat) == []  # bad input stored nothing
    assert "every watch of this chat" in (await bot.say("/mute 2d", chat_id=MUTED)).text
    before = len(bot.fake.sent(MUTED))
    assert "summary of what happened" in (await bot.say("/unmute", chat_id=MUTED)).text
    [*_, summary] = await bot.fake.wait_sent(MUTED, count=before + 2)
    assert "Your mute has ended" in summary.text and "Nothing changed." in summary.text
    assert await bot.store.run(chat_settings.mutes_of, MUTED) == []


@pytest.fixture
async def bot_with_sender(telegram, tmp_path):
    async with running_bot(telegram, tmp_path / "bw.db", sending=True) as running:
        yield running


async def test_the_digest_comes_at_its_local_time_once_even_across_a_restart(telegram, tmp_path):
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    baku_nine = tomorrow + timedelta(hours=5)  # 09:00 in Baku (UTC+4)
    database = tmp_path / "bw.db"
    async with running_bot(telegram, database, sending=True) as bot:
        for chat in (MUTED, OTHER):
            await bot.say("/watch AZ tiktok whatsapp", chat_id=chat)
            await bot.say("/timezone Asia/Baku", chat_id=chat)
        reply = await bot.say("/digest 09:00", chat_id=MUTED)
        assert "Every day at 09:00 (Asia/Baku)" in reply.text
        await bot.say("/digest 9:00", chat_id=OTHER)
        assert "At what time?" in (await bot.say("/digest soon", chat_id=OTHER)).text
        await bot.store.run(events.record_events, [blocked(baku_nine - timedelta(hours=2)),
                                                   blocked(baku_nine - timedelta(days=2), "whatsapp")])  # too old for it
        jobs = ChatJobs(bot.services, clock=Clock(baku_nine - timedelta(minutes=1)))
        assert await jobs.tick() == 0
        jobs.clock.now = baku_nine
        assert await jobs.tick() == 2
        await settled(bot)
        digest = telegram.sent(MUTED)[-1]
        assert "Daily digest" in digest.text and "09:00 UTC+4" in digest.text
        assert "07:00 UTC+4 · <b>TikTok</b> (AZ): signs of blocking on AS29049" in digest.text and "WhatsApp" not in digest.text
        jobs.clock.now = baku_nine + timedelta(hours=3)
        assert await jobs.tick() == 0  # once a day
    async with running_bot(telegram, database, sending=True) as bot:  # a restart the same morning
        assert await ChatJobs(bot.services, clock=Clock(baku_nine + timedelta(hours=4))).tick() == 0
        # the next morning: the bot was down at 09:00 and is up at 11:00 — the digest is late, not lost
        late = ChatJobs(bot.services, clock=Clock(baku_nine + timedelta(days=1, hours=2)))
        assert await late.tick() == 2
        await settled(bot)
        assert "Nothing changed." in telegram.sent(MUTED)[-1].text
        assert [k for k in await kinds_to(bot, MUTED) if k == "digest"] == ["digest", "digest"]
        assert "No more daily digests" in (await bot.say("/digest off", chat_id=MUTED)).text
        assert await ChatJobs(bot.services, clock=Clock(baku_nine + timedelta(days=2, hours=1))).tick() == 1  # OTHER only


async def test_history_names_an_intermittent_blocks_rhythm_as_the_alerts_do(bot):
    now = datetime.now(UTC).replace(microsecond=0)
    rhythm = Pattern("Asia/Baku", 8, 17, True, True, None, None)
    daytime = Event("blocked", "AZ", "whatsapp", now - timedelta(days=3), asns=(29049,), method="tls",
                    since=now - timedelta(days=3, hours=2), anomalies=20, measurements=30, intermittent=True)
    later = Event("changed", "AZ", "whatsapp", now - timedelta(days=1), asns=(29049,), method="tls",
                  since=daytime.since, anomalies=60, measurements=90, intermittent=True, pattern=rhythm)
    await bot.store.run(events.record_events, [daytime, later])
    text = (await bot.say("/history AZ whatsapp")).text
    assert "Intermittent: daytime only (about 08:00–17:00 local time), off on weekends." in text, text


@pytest.mark.parametrize("lang, ongoing, continuous", [("en", "ongoing", "continuous"), ("ru", "продолжается", "непрерывно")])
async def test_history_lists_the_blocks_of_the_last_90_days_on_the_chats_clock(bot, lang, ongoing, continuous):
    now = datetime.now(UTC).replace(microsecond=0)
    start = (now - timedelta(days=10)).replace(hour=6, minute=0, second=0)
    await bot.store.run(events.record_events, [
        blocked(now - timedelta(days=200)), unblocked(now - timedelta(days=199), now - timedelta(days=200)),  # too old
        blocked(start + timedelta(hours=3)), unblocked(start + timedelta(days=2, hours=6), start),
        blocked(now - timedelta(hours=5), "whatsapp"),
    ])
    await bot.say(f"/language {lang}")
    await bot.say("/timezone UTC+4")
    reply = await bot.say("/history AZ")
    text = reply.text
    assert text.count("TikTok") == 1 and "WhatsApp" in text
    assert f"{(start + timedelta(hours=4)):%H:%M} UTC+4" in text  # the block's start on the chat's clock
    assert ongoing in text and continuous in text and "AS29049" in text and "AS31721" in text
    assert "TLS" in text
    assert text.index("WhatsApp") < text.index("TikTok")  # newest first
    only = await bot.say("/history AZ whatsapp")
    assert "WhatsApp" in only.text and "TikTok" not in only.text
    nothing = await bot.say("/history AM")
    assert "Armenia" in nothing.text or "Армения" in nothing.text
    assert "tiktk" in (await bot.say("/history AZ tiktk")).text
