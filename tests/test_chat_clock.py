"""A chat's clock: /timezone and /quiet end to end (the real Application, sender and fake Bot API),
alerts rendered once per (language, time zone), and the pure parsing and window rules."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

import pytest

from bot import notifier
from bot.chat_clock import BadClock, Window, digest_due, is_quiet, offset_label, parse_window, parse_zone, zone
from bot.detector import Event
from storage import chat_settings
from tests.harness import running_bot, settled

UTC = timezone.utc
T0 = datetime(2022, 9, 14, 6, tzinfo=UTC)
BAKU, LONDON, MOSCOW = 100, 101, 102


# -- pure ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, stored", [
    ("Asia/Baku", "Asia/Baku"), ("asia/baku", "Asia/Baku"), ("Baku", "Asia/Baku"), ("new york", "America/New_York"),
    ("UTC+4", "UTC+04:00"), ("+04:00", "UTC+04:00"), ("GMT-3:30", "UTC-03:30"), ("UTC", "UTC"), ("utc+0", "UTC"),
])
def test_zones_by_name_city_or_offset(text, stored):
    assert parse_zone(text) == stored


@pytest.mark.parametrize("text", ["Mars/Olympus", "UTC+15", "UTC-13", "UTC+4:75", "", "tomorrow"])
def test_what_is_not_a_zone_is_refused(text):
    with pytest.raises(BadClock):
        parse_zone(text)


def test_offsets_as_people_write_them_and_summer_time_followed():
    assert offset_label(T0.astimezone(zone("Asia/Baku"))) == "UTC+4"
    assert offset_label(T0.astimezone(zone("Asia/Kolkata"))) == "UTC+5:30"
    assert offset_label(T0.astimezone(zone("UTC-03:30"))) == "UTC−3:30"
    assert offset_label(T0.astimezone(zone("Europe/London"))) == "UTC+1"  # September: summer time
    assert offset_label(datetime(2022, 12, 1, tzinfo=UTC).astimezone(zone("Europe/London"))) == "UTC"
    assert zone("No/Such_Zone") is UTC  # a name this system lost reads as UTC, never a crash


def test_quiet_windows_wrap_midnight_on_the_chats_clock():
    night = parse_window("23:00-07:00")
    assert night == Window(time(23), time(7)) and night.text() == "23:00-07:00"
    assert parse_window("23-7") == night and parse_window("22:30 – 06:15").text() == "22:30-06:15"
    assert night.contains(time(23)) and night.contains(time(3)) and not night.contains(time(7)) and not night.contains(time(12))
    # 20:00 UTC is midnight in Baku: quiet there, not in London (21:00)
    assert is_quiet(datetime(2022, 9, 14, 20, tzinfo=UTC), "Asia/Baku", "23:00-07:00")
    assert not is_quiet(datetime(2022, 9, 14, 20, tzinfo=UTC), "Europe/London", "23:00-07:00")
    assert not is_quiet(datetime(2022, 9, 14, 20, tzinfo=UTC), "Asia/Baku", None)
    for bad in ("23:00", "25:00-07:00", "07:00-07:00", "night"):
        with pytest.raises(BadClock):
            parse_window(bad)


def test_a_digest_is_due_once_a_local_day_from_its_time():
    at = "09:00"  # Baku: 05:00 UTC
    assert digest_due(datetime(2022, 9, 14, 4, 59, tzinfo=UTC), "Asia/Baku", at, None) is None
    assert digest_due(datetime(2022, 9, 14, 5, 0, tzinfo=UTC), "Asia/Baku", at, None).isoformat() == "2022-09-14"
    assert digest_due(datetime(2022, 9, 14, 23, 0, tzinfo=UTC), "Asia/Baku", at, "2022-09-14") is None
    assert digest_due(datetime(2022, 9, 14, 22, 0, tzinfo=UTC), "Asia/Baku", at, "2022-09-14") is None  # 02:00 on the 15th: not yet
    assert digest_due(datetime(2022, 9, 15, 5, 0, tzinfo=UTC), "Asia/Baku", at, "2022-09-14").isoformat() == "2022-09-15"


# -- end to end --------------------------------------------------------------------------------


def blocked_event(**extra) -> Event:
    return Event("blocked", "AZ", "tiktok", T0 + timedelta(hours=2), asns=(29049,), method="tls", since=T0,
                 anomalies=31, measurements=38, evidence=("20220914T061502Z_webconnectivity_AZ_29049_n1_aaa",), **extra)


@pytest.mark.parametrize("lang, words", [
    ("en", "Times in this chat are now shown in Asia/Baku"),
    ("az", "Bu söhbətdə vaxt indi Asia/Baku"),
    ("ru", "Время в этом чате теперь показывается по Asia/Baku"),
])
async def test_timezone_is_answered_in_the_chats_language_with_the_offset(bot, lang, words):
    await bot.say(f"/language {lang}")
    reply = await bot.say("/timezone Asia/Baku")
    assert words in reply.text and "UTC+4" in reply.text
    assert (await bot.store.run(chat_settings.get, 100)).zone == "Asia/Baku"
    assert "UTC+4" in (await bot.say("/timezone")).text
    bad = await bot.say("/timezone Mars/Olympus")
    assert "Mars/Olympus" in bad.text and "UTC+4" in bad.text  # the error names an offset to type
    assert (await bot.store.run(chat_settings.get, 100)).zone == "Asia/Baku"  # unchanged
    await bot.say("/timezone UTC")
    assert (await bot.store.run(chat_settings.get, 100)).zone is None


async def test_an_alert_shows_each_chats_own_clock_rendered_once_per_language_and_zone(telegram, tmp_path):
    async with running_bot(telegram, tmp_path / "bw.db", sending=True) as bot:
        for chat, zone_text in ((BAKU, "Asia/Baku"), (LONDON, None), (MOSCOW, "UTC+3"), (103, "Asia/Baku")):
            await bot.say("/watch AZ tiktok", chat_id=chat)
            if zone_text:
                await bot.say(f"/timezone {zone_text}", chat_id=chat)
        await bot.say("/language ru", chat_id=MOSCOW)
        queued = await bot.store.run(notifier.queue_event, blocked_event())
        await bot.services.wake_sender()
        await settled(bot)
        assert queued == 4
        texts = {chat: telegram.sent(chat)[-1].text for chat in (BAKU, LONDON, MOSCOW, 103)}
        assert "September 14, 2022, 10:00 UTC+4" in texts[BAKU] and texts[103] == texts[BAKU]
        assert "September 14, 2022, 06:00 UTC" in texts[LONDON]
        assert "14 сентября 2022\u202fг., 09:00 UTC+3" in texts[MOSCOW]
        messages = await bot.store.run(lambda db: db.execute("select lang, text from outbox_messages where kind = 'alert_blocked'").fetchall())
        assert len(messages) == 3  # (en, Baku) for two chats, (en, UTC), (ru, UTC+3): one render each


async def test_quiet_hours_send_alerts_silently_only_inside_the_window(telegram, tmp_path):
    async with running_bot(telegram, tmp_path / "bw.db", sending=True) as bot:
        now = datetime.now(UTC)
        inside = f"{(now - timedelta(hours=1)):%H:%M}-{(now + timedelta(hours=1)):%H:%M}"  # on the UTC clock
        outside = f"{(now + timedelta(hours=2)):%H:%M}-{(now + timedelta(hours=3)):%H:%M}"
        await bot.say("/watch AZ tiktok", chat_id=BAKU)
        await bot.say("/watch AZ tiktok", chat_id=LONDON)
        reply = await bot.say(f"/quiet {inside}", chat_id=BAKU)
        assert "silently" in reply.text and inside[:5] in reply.text
        assert "silently" in (await bot.say(f"/quiet {outside}", chat_id=LONDON)).text
        assert "start-end" in (await bot.say("/quiet tonight", chat_id=LONDON)).text
        assert (await bot.store.run(chat_settings.get, LONDON)).quiet == outside  # the bad input changed nothing
        await bot.store.run(notifier.queue_event, blocked_event())
        await bot.services.wake_sender()
        await settled(bot)
        silent = telegram.sent(BAKU)[-1]
        loud = telegram.sent(LONDON)[-1]
        assert "signs of blocking" in silent.text and silent.params.get("disable_notification") is True
        assert "signs of blocking" in loud.text and not loud.params.get("disable_notification")
        assert "every alert comes with a sound" in (await bot.say("/quiet off", chat_id=BAKU)).text
        assert (await bot.store.run(chat_settings.get, BAKU)).quiet is None


async def test_forgetme_deletes_the_chats_clock_too(bot):
    await bot.say("/timezone Asia/Baku")
    await bot.say("/quiet 23:00-07:00")
    await bot.confirm("/forgetme")
    assert await bot.store.run(chat_settings.get, 100) == chat_settings.ChatSettings()


async def test_a_confirmed_crowd_finding_shows_its_times_on_each_watchers_clock(bot):
    """Signals and findings too: queue_text renders once per (language, zone) and each chat gets its own."""
    from bot.render import render

    for chat, zone_text in ((BAKU, "Asia/Baku"), (LONDON, None)):
        await bot.say("/watch AZ tiktok", chat_id=chat)
        if zone_text:
            await bot.say(f"/timezone {zone_text}", chat_id=chat)

    def queue(db):
        texts = notifier.texts_by_clock(db, [BAKU, LONDON], "chat_clock", kind="zone_set", zone_name="x", now=T0)
        return texts, notifier.queue_text(db, [BAKU, LONDON], texts, kind="finding", ref="signal:1")

    texts, queued = await bot.store.run(queue)
    assert queued == 2 and set(texts) == {("en", "Asia/Baku"), ("en", None)}
    assert "10:00 UTC+4" in texts[("en", "Asia/Baku")] and "06:00 UTC" in texts[("en", None)]
    rows = await bot.store.run(lambda db: db.execute(
        "select d.chat_id, m.text from deliveries d join outbox_messages m on m.id = d.message_id where m.kind = 'finding'"
    ).fetchall())
    assert {chat: "UTC+4" in text for chat, text in rows} == {BAKU: True, LONDON: False}
    assert render("chat_clock", "en", zone="Asia/Baku", kind="zone_set", zone_name="x", now=T0) == texts[("en", "Asia/Baku")]
