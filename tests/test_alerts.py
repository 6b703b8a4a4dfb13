"""Alerts end to end: the real Application and sender, the fake Bot API, the real poller and detector
reading the fake OONI API through the September 2022 Azerbaijan TikTok block.

A watcher gets the blocked alert (networks with names, the method explained, since when, the
numbers, evidence and chart links), then the unblocked one with how long it lasted — in the chat's
language; a non-watcher gets nothing; /status, /watches and /watch tell the same facts compactly.
Every message passed the fake's Telegram-HTML and length checks (it answers 400 otherwise).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from bot import catalog
from bot.poller import Poller
from bot.render import format_duration
from bot.sources.ooni import OoniSource
from storage import outbox
from tests.fakes.ooni import AZ_BLOCKED_ASNS, AZ_OK_ASNS, FakeOoni, az_tiktok_episode, PublishingClock, no_sleep
from tests.harness import running_bot, settled

UTC = timezone.utc
LEAD_IN = datetime(2022, 9, 13)  # naive UTC, as the episode builder takes it
BLOCK_START = datetime(2022, 9, 14, 6, tzinfo=UTC)
BLOCK_END = datetime(2022, 9, 16, 12, tzinfo=UTC)

EN, RU, AZ_CHAT = 100, 101, 102  # watch AZ tiktok in English, Russian, Azerbaijani
OTHER_PLATFORM, OTHER_COUNTRY, NOBODY = 200, 300, 400


@pytest.fixture(scope="module")
def rows():
    before = az_tiktok_episode(LEAD_IN, LEAD_IN, after=timedelta(hours=30), blocked_asns=(),
                               ok_asns=AZ_BLOCKED_ASNS + AZ_OK_ASNS, seed=13)
    during_and_after = az_tiktok_episode(after=timedelta(hours=84))
    return sorted(before + during_and_after, key=lambda r: r["measurement_start_time"])


def links(call) -> list[str]:
    """The URLs of the links Telegram made of the message (the fake parses the HTML as Telegram does)."""
    return [e["url"] for e in call.result.get("entities", []) if e["type"] == "text_link"]


async def test_watchers_get_the_block_and_its_end_in_their_language_and_nobody_else_hears_of_it(telegram, tmp_path, rows):
    async with FakeOoni() as ooni, OoniSource(ooni.url, sleep=no_sleep) as source:
        async with running_bot(telegram, tmp_path / "bw.db", sending=True, ooni_api_url=ooni.url) as bot:
            await bot.say("/watch AZ tiktok", chat_id=EN)
            await bot.say("/language ru", chat_id=RU)
            await bot.say("/watch AZ tiktok", chat_id=RU)
            telegram.send_text(AZ_CHAT, AZ_CHAT, "/watch AZ tiktok", language_code="az")
            await telegram.wait_sent(AZ_CHAT)
            await bot.say("/watch AZ whatsapp", chat_id=OTHER_PLATFORM)
            await bot.say("/watch AM tiktok", chat_id=OTHER_COUNTRY)
            await bot.say("/help", chat_id=NOBODY)
            replies = {chat: len(telegram.sent(chat)) for chat in (EN, RU, AZ_CHAT, OTHER_PLATFORM, OTHER_COUNTRY, NOBODY)}

            clock = PublishingClock(ooni, rows, BLOCK_START - timedelta(hours=1))
            poller = Poller(bot.services, source, clock=clock)
            events = list((await poller.poll_once()).events)
            for hours in range(1, 19, 2):  # every two hours into the block
                clock.move(BLOCK_START + timedelta(hours=hours))
                events += (await poller.poll_once()).events
            await settled(bot)

            # the same facts, compactly, on demand
            status = await bot.say("/status AZ tiktok", chat_id=NOBODY)
            listed = await bot.say("/watches", chat_id=RU)
            added = await bot.say("/watch AZ tiktok whatsapp", chat_id=500)

            for hours in range(3, 85, 3):  # after the block: OK data for days
                clock.move(BLOCK_END + timedelta(hours=hours))
                events += (await poller.poll_once()).events
            await settled(bot)

    kinds = [e.kind for e in events]
    assert kinds[0] == "blocked" and kinds[-1] == "unblocked" and set(kinds[1:-1]) <= {"changed"}
    blocked, unblocked = events[0], events[-1]
    assert set(blocked.asns) <= set(AZ_BLOCKED_ASNS) and blocked.method == "tls" and blocked.evidence

    answers = (status, listed, added)
    alerts = {chat: [c for c in telegram.sent(chat)[replies[chat]:] if c not in answers] for chat in replies}
    assert [len(alerts[chat]) for chat in (EN, RU, AZ_CHAT)] == [len(events)] * 3
    assert alerts[OTHER_PLATFORM] == alerts[OTHER_COUNTRY] == alerts[NOBODY] == []
    assert all(c.ok for c in telegram.calls("sendMessage"))  # valid HTML, within 4096: the fake checks both

    first, last = alerts[EN][0], alerts[EN][-1]
    text = first.result["text"]  # what the reader sees
    assert text.startswith("🔴 TikTok — Azerbaijan (AZ): signs of blocking")
    for asn in blocked.asns:
        assert f"AS{asn} {catalog.network_name(asn)}" in text
    assert "Method: TLS interference — connections dropped after the ClientHello" in text
    assert "Since: September 14, 2022" in text
    assert (f"{blocked.anomalies} of {blocked.measurements} measurements anomalous on "
            f"{len(blocked.asns)} network{'s' if len(blocked.asns) > 1 else ''}") in text
    assert "not proof" in text  # TLS interference is never confirmed by a block page
    urls = links(first)
    assert blocked.evidence[0].startswith("https://explorer.ooni.org/m/") and blocked.evidence[0] in urls
    [chart] = [u for u in urls if "/chart/mat?" in u]
    assert "probe_cc=AZ" in chart and "test_name=web_connectivity" in chart and "www.tiktok.com" in chart
    assert "since=2022-09-11" in chart and "axis_y=probe_asn" in chart

    end = last.result["text"]
    assert end.startswith("🟢 TikTok — Azerbaijan (AZ): no more signs of blocking")
    assert f"It lasted {format_duration(unblocked.duration)}: from September 14, 2022" in end
    assert unblocked.duration > timedelta(days=2)
    for asn in unblocked.asns:
        assert f"AS{asn}" in end

    assert alerts[RU][0].result["text"].startswith("🔴 TikTok — Азербайджан (AZ): признаки блокировки")
    assert "Способ: вмешательство в TLS" in alerts[RU][0].result["text"]
    assert alerts[RU][-1].result["text"].startswith("🟢 TikTok — Азербайджан (AZ): признаков блокировки больше нет")
    assert alerts[AZ_CHAT][0].result["text"].startswith("🔴 TikTok — Azərbaycan (AZ): bloklanma əlamətləri")
    assert "Müddət:" in alerts[AZ_CHAT][-1].result["text"]

    # /status, /watches and /watch during the block
    shown = status.result["text"]
    assert "TikTok: signs of blocking on AS" in shown and "TLS interference" in shown and "since September 14, 2022" in shown
    assert "measurements anomalous on" in shown and any("/chart/mat?" in u for u in links(status))
    assert any(u.startswith("https://explorer.ooni.org/m/") for u in links(status))
    assert "TikTok: признаки блокировки в сетях AS" in listed.result["text"]
    assert "TikTok: signs of blocking" in added.result["text"] and "WhatsApp: " in added.result["text"]


async def test_outside_values_are_escaped_and_long_lists_cut_within_telegrams_limit(telegram, tmp_path):
    from bot import notifier
    from bot.detector import Event
    from storage import subscriptions

    hostile = tuple(f"https://explorer.ooni.org/m/{uid}" for uid in ('x"><b>uid', "</a><i>&amp;", *(f"uid{i}" for i in range(500))))
    many = tuple(range(1, 2001))
    event = Event("changed", "AZ", "tiktok", BLOCK_START, many, added=many[:1000], cleared=(99999,),
                  method="<script>", since=BLOCK_START, anomalies=10**6, measurements=2 * 10**6, evidence=hostile)
    async with running_bot(telegram, tmp_path / "bw.db", sending=True) as bot:
        for chat, language in ((EN, "en"), (RU, "ru"), (AZ_CHAT, "az")):
            await bot.store.run(subscriptions.ensure_chat, chat, "private", language)
            await bot.store.run(subscriptions.add_watches, chat, "AZ", ["tiktok"])
        assert await bot.store.run(notifier.queue_event, event) == 3
        await bot.services.sender.wake()
        messages = [(await telegram.wait_sent(chat))[0] for chat in (EN, RU, AZ_CHAT)]
    for message in messages:
        assert message.ok and len(message.result["text"]) < 4096
        assert "<script>" not in message.params["text"] and "<i>" not in message.params["text"]
    english = messages[0].result["text"]
    assert "and 1,992 more" in english and "and 992 more" in english  # 8 of 2,000 networks, 8 of 1,000 added
    assert "1,000,000 of 2,000,000 measurements anomalous on 2,000 networks" in english
    assert hostile[0] in links(messages[0])  # the link stays whole, as data
    assert "и ещё 1\xa0992" in messages[1].result["text"]
