"""The sender end to end: the real Application's bot draining the outbox into the fake Bot API.

Rate (SEND_RATE overall, 1/s and in order per chat), Telegram's answers mid-broadcast (429, 403,
a migrated group, 5xx, timeouts, a refused message), and restarts of a real `blockwatch run`
process: killed between sends, stopped cleanly, and killed with a send in flight (the one case
that can repeat a message, bounded to the deliveries that were in flight).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import datetime, timedelta, timezone

import pytest

from bot import notifier
from bot.detector import Event
from bot.sender import SendWindow, Sender
from storage import outbox, subscriptions
from storage.db import Store
from tests.fakes.telegram import FakeTelegram
from tests.harness import running_bot, settled

# PTB 22 warns when RetryAfter.retry_after is read as an int; the sender reads it either way
pytestmark = pytest.mark.filterwarnings("ignore:Deprecated since version v22.2.*retry_after")

T0 = datetime(2022, 9, 14, 6, tzinfo=timezone.utc)


def event(kind="blocked", platform="tiktok", asns=(29049, 31721), hours=0, **extra) -> Event:
    values = dict(method="tls", since=T0, anomalies=31, measurements=38, evidence=("20220914T0600Z_webconnectivity_AZ_29049_n1_abc",))
    values.update(extra)
    if kind == "unblocked":
        values.setdefault("duration", timedelta(hours=54))
        values.setdefault("ended", T0 + timedelta(hours=54))
    return Event(kind, "AZ", platform, T0 + timedelta(hours=hours), tuple(asns), **values)


def add_watchers(db, chat_ids, country="AZ", platforms=("tiktok",), language="en") -> None:
    for chat_id in chat_ids:
        subscriptions.ensure_chat(db, chat_id, "private" if chat_id > 0 else "group", language)
        subscriptions.add_watches(db, chat_id, country, platforms)


def successes(fake: FakeTelegram, chat_ids) -> dict[int, int]:
    counts = {chat_id: 0 for chat_id in chat_ids}
    for call in fake.calls("sendMessage"):
        if call.ok and call.chat_id in counts:
            counts[call.chat_id] += 1
    return counts


def busiest_second(times: list[float]) -> int:
    """The most sends within any sliding second (as the fake and Telegram count)."""
    times = sorted(times)
    most, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


async def queue(bot, *events) -> int:
    total = 0
    for e in events:
        total += await bot.store.run(notifier.queue_event, e)
    await bot.services.sender.wake()
    return total


# --- rate and order ----------------------------------------------------------------------------


async def test_a_broadcast_goes_out_at_send_rate_without_a_single_429(telegram, tmp_path):
    chats = list(range(1001, 1061))
    telegram.limit_rate(30)  # Telegram's broadcast limit, enforced as a sliding second
    async with running_bot(telegram, tmp_path / "bw.db", sending=True, send_rate=30) as bot:
        await bot.store.run(add_watchers, chats)
        assert await queue(bot, event()) == 60
        await telegram.wait_sent(count=60, timeout=10)
        counts = await settled(bot)
        stats = await bot.services.sender.stats()
    sends = [c for c in telegram.calls("sendMessage") if c.chat_id in chats]
    assert [c.status for c in sends] == [200] * 60  # no 429: the sender kept under the limit itself
    assert successes(telegram, chats) == {chat: 1 for chat in chats}
    assert busiest_second([c.time for c in sends]) <= 30
    assert sends[-1].time - sends[0].time >= 59 / 30 - 0.05  # ... and no faster than SEND_RATE
    assert counts["sent"] == 60 and counts["backlog"] == 0
    assert (stats.sent, stats.failed, stats.backlog) == (60, 0, 0)


async def test_one_chat_gets_its_messages_in_order_a_second_apart_while_others_go_on(telegram, tmp_path):
    async with running_bot(telegram, tmp_path / "bw.db", sending=True, send_rate=30) as bot:
        await bot.store.run(add_watchers, [100], "AZ", ("tiktok", "whatsapp"))
        await bot.store.run(add_watchers, [200], "AZ", ("whatsapp",))
        await queue(bot, event("blocked", "tiktok"), event("blocked", "whatsapp", hours=1), event("unblocked", "tiktok", hours=2))
        other = (await telegram.wait_sent(200))[0]
        mine = await telegram.wait_sent(100, count=3, timeout=10)
    assert ["TikTok" in mine[0].text, "WhatsApp" in mine[1].text, "no more signs" in mine[2].text] == [True] * 3
    gaps = [b.time - a.time for a, b in zip(mine, mine[1:])]
    assert all(gap >= 0.99 for gap in gaps), gaps
    assert other.time < mine[1].time  # chat 200 did not wait for chat 100's spacing


async def test_a_group_gets_at_most_20_messages_a_minute(telegram, tmp_path):
    group = -100777
    async with running_bot(telegram, tmp_path / "bw.db", sending=True, send_rate=30) as bot:
        await bot.store.run(add_watchers, [group, 300], "AZ", ("tiktok", "whatsapp"))
        await queue(bot, event("blocked", "tiktok"), event("blocked", "whatsapp", hours=1))
        private = await telegram.wait_sent(300, count=2, timeout=10)
        sent = await telegram.wait_sent(group, count=2, timeout=10)
    assert sent[1].time - sent[0].time >= 2.99  # 3 s apart: Telegram's 20 a minute in a group
    assert 0.99 <= private[1].time - private[0].time < 2.5  # a private chat keeps 1 a second


async def test_send_window_spaces_starts_and_counts_each_send_until_a_period_after_its_answer():
    now = [0.0]

    async def sleep(seconds):  # a clock that moves only when the window waits
        now[0] += seconds

    window = SendWindow(3, clock=lambda: now[0], sleep=sleep)
    assert (window.size, window.period, window.spacing) == (3, 1.0, pytest.approx(1 / 3))
    starts = []
    for _ in range(3):
        await window.acquire()
        starts.append(now[0])
        now[0] += 0.4  # Telegram answers after 0.4 s
        window.release()
    await window.acquire()  # the 4th may start only a second after the 1st was answered
    assert starts == pytest.approx([0.0, 0.4, 0.8])
    assert now[0] == pytest.approx(1.4, abs=1e-3)
    window.release()
    window.pause(2.0)  # a 429 holds the next start
    await window.acquire()
    assert now[0] == pytest.approx(3.4, abs=1e-3)


# --- Telegram's answers mid-broadcast ----------------------------------------------------------


async def test_429_mid_broadcast_holds_every_send_for_retry_after_and_resends_each_once(telegram, tmp_path):
    chats = list(range(2001, 2021))
    async with running_bot(telegram, tmp_path / "bw.db", sending=True, send_rate=20) as bot:
        await bot.store.run(add_watchers, chats)
        await queue(bot, event())
        await telegram.wait_sent(count=5)
        telegram.rate_limit_next(2, retry_after=1)
        await telegram.wait_sent(count=20, timeout=15)
        counts = await settled(bot)
    sends = [c for c in telegram.calls("sendMessage") if c.chat_id in chats]
    limited = [c for c in sends if c.status == 429]
    assert len(limited) == 2
    first_429 = limited[0]
    after = [c for c in sends if c.time > first_429.time]
    assert after and after[0].time - first_429.time >= 0.95  # retry_after honoured by every send
    assert successes(telegram, chats) == {chat: 1 for chat in chats}
    assert counts["sent"] == 20


async def test_403_mid_broadcast_pauses_that_chat_and_drops_what_waits_for_it(telegram, tmp_path):
    chats = list(range(3001, 3011))
    telegram.fail_chat(3005)  # the user blocked the bot
    async with running_bot(telegram, tmp_path / "bw.db", sending=True, send_rate=50) as bot:
        await bot.store.run(add_watchers, chats)
        await queue(bot, event("blocked"), event("changed", asns=(29049,), cleared=(31721,), hours=1))
        await telegram.wait_sent(count=18, timeout=10)
        counts = await settled(bot)
        watchers = [row["id"] for row in await bot.store.run(subscriptions.watchers, "AZ", "tiktok")]
        gone = await bot.store.run(outbox.deliveries_of, 3005)
        chat = await bot.store.run(subscriptions.get_chat, 3005)
    assert successes(telegram, chats) == {chat: (0 if chat == 3005 else 2) for chat in chats}
    assert len([c for c in telegram.calls("sendMessage") if c.chat_id == 3005]) == 1  # the second was never tried
    assert chat["paused"] == 1 and 3005 not in watchers and len(watchers) == 9
    assert [d["status"] for d in gone] == ["dropped", "dropped"]
    assert counts["dropped"] == 2 and counts["sent"] == 18


async def test_a_migrated_group_gets_the_alert_at_its_new_id_and_keeps_its_watches(telegram, tmp_path):
    old, new = -5005, -1000000005005
    telegram.migrate_chat(old, new)
    async with running_bot(telegram, tmp_path / "bw.db", sending=True) as bot:
        await bot.store.run(add_watchers, [old])
        await queue(bot, event())
        [message] = await telegram.wait_sent(new)
        await settled(bot)
        watches = await bot.store.run(subscriptions.chat_watches, new)
        left = await bot.store.run(subscriptions.chat_watches, old)
        [delivery] = await bot.store.run(outbox.deliveries_of, new)
    assert "signs of blocking" in message.text
    assert telegram.sent(old) == []
    assert watches == [("AZ", "tiktok")] and left == []
    assert delivery["status"] == "sent" and delivery["attempts"] == 2


async def test_a_telegram_5xx_is_retried_with_backoff_and_sent_once(telegram, tmp_path):
    telegram.fail_chat(4001, 502, "Bad Gateway")
    async with running_bot(telegram, tmp_path / "bw.db", sending=True) as bot:
        await bot.store.run(add_watchers, [4001])
        await queue(bot, event())
        await telegram.wait_for("sendMessage", chat_id=4001)
        telegram.clear_failures(4001)
        [sent] = await telegram.wait_sent(4001, timeout=5)
        await settled(bot)
        [delivery] = await bot.store.run(outbox.deliveries_of, 4001)
    failed = [c for c in telegram.calls("sendMessage") if c.chat_id == 4001 and not c.ok]
    assert [c.status for c in failed] == [502]
    assert sent.time - failed[0].time >= 0.95  # the first backoff step is a second
    assert delivery["status"] == "sent" and delivery["attempts"] == 2


async def test_a_timeout_is_sent_again(telegram, tmp_path):
    async with running_bot(telegram, tmp_path / "bw.db") as bot:
        await bot.store.run(add_watchers, [4101])
        await bot.store.run(notifier.queue_event, event())
        drain = Sender(bot.store, rate=30, bot=bot.app.bot, send_timeout=0.3)
        telegram.delay(0.8, methods=["sendMessage"])
        task = asyncio.create_task(drain.run())
        try:
            await telegram.wait_for("sendMessage", chat_id=4101, timeout=5)  # the first, answered too late
            telegram.delay(0)
            await telegram.wait_sent(4101, count=2, timeout=5)
            while (await bot.store.run(outbox.counts))["backlog"]:
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        [delivery] = await bot.store.run(outbox.deliveries_of, 4101)
    assert delivery["status"] == "sent" and delivery["attempts"] == 2
    assert drain.retried == 1
    # a timeout cannot tell whether Telegram got the message: resending may show it twice, never zero times


async def test_a_refused_message_fails_alone_and_the_chats_next_one_goes(telegram, tmp_path):
    async with running_bot(telegram, tmp_path / "bw.db", sending=True) as bot:
        await bot.store.run(add_watchers, [4201])
        await bot.store.run(notifier.queue_text, [4201], "broken <blink>markup</blink>", kind="finding", ref="finding:1")
        await bot.store.run(notifier.queue_text, [4201], "fine <b>markup</b>", kind="finding", ref="finding:2")
        await bot.services.sender.wake()
        [sent] = await telegram.wait_sent(4201)
        counts = await settled(bot)
        first, second = await bot.store.run(outbox.deliveries_of, 4201)
        stats = await bot.services.sender.stats()
    assert sent.text == "fine <b>markup</b>" and sent.result["text"] == "fine markup"
    assert first["status"] == "failed" and "can't parse entities" in first["error"].lower()
    assert second["status"] == "sent"
    assert counts["failed"] == 1 and stats.failed == 1


# --- restarts of a real process -----------------------------------------------------------------


async def start_bot(fake: FakeTelegram, database, cwd, send_rate=4):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "OONI_", "IODA_", "DATABASE_", "SEND_"))},
        "TELEGRAM_BOT_TOKEN": fake.token,
        "TELEGRAM_API_URL": fake.url,
        "OONI_API_URL": "http://127.0.0.1:9",  # nothing listens: the poller finds nothing, quietly
        "IODA_API_URL": "http://127.0.0.1:9",
        "DATABASE_PATH": str(database),
        "POLL_INTERVAL": "3600",
        "SEND_RATE": str(send_rate),
    }
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )


async def queued_broadcast(path, chats) -> None:
    store = await Store.open(path)
    try:
        await store.run(add_watchers, chats)
        assert await store.run(notifier.queue_event, event()) == len(chats)
    finally:
        await store.close()


async def read_deliveries(path) -> list[dict]:
    store = await Store.open(path)
    try:
        return await store.run(outbox.deliveries_of)
    finally:
        await store.close()


async def finish(process, sig=signal.SIGTERM) -> tuple[int, str]:
    if process.returncode is None:
        process.send_signal(sig)
    output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    return process.returncode, output.decode()


async def test_killed_between_sends_the_restart_delivers_the_rest_and_nothing_twice(tmp_path):
    path, chats = tmp_path / "bw.db", list(range(5001, 5017))
    await queued_broadcast(path, chats)
    async with FakeTelegram() as fake:
        process = await start_bot(fake, path, tmp_path)
        try:
            await fake.wait_sent(count=6, timeout=30)
            await asyncio.sleep(0.08)  # its answer recorded; the next send is 0.25 s after the last
        finally:
            await finish(process, signal.SIGKILL)
        before = successes(fake, chats)
        left = await read_deliveries(path)
        assert 6 <= sum(before.values()) < len(chats)  # killed mid-broadcast
        assert [d["status"] for d in left].count("sending") == 0
        assert sum(d["status"] == "sent" for d in left) == sum(before.values())

        process = await start_bot(fake, path, tmp_path)
        try:
            await fake.wait_sent(count=len(chats), timeout=30)
            await asyncio.sleep(0.3)
        finally:
            code, output = await finish(process)
    assert code == 0, output
    assert successes(fake, chats) == {chat: 1 for chat in chats}
    assert all(d["status"] == "sent" for d in await read_deliveries(path))


async def test_a_clean_stop_mid_broadcast_repeats_nothing_and_the_restart_sends_the_rest(tmp_path):
    path, chats = tmp_path / "bw.db", list(range(6001, 6013))
    await queued_broadcast(path, chats)
    async with FakeTelegram() as fake:
        fake.delay(0.3, methods=["sendMessage"])  # each send is in flight for a while
        process = await start_bot(fake, path, tmp_path)
        try:
            await fake.wait_sent(count=4, timeout=30)
            await asyncio.sleep(0.1)  # the next send is on its way when SIGTERM comes
        finally:
            code, output = await finish(process)
        assert code == 0, output
        fake.delay(0)
        left = await read_deliveries(path)
        assert [d["status"] for d in left].count("sending") == 0  # the stop waited for its answer
        assert sum(successes(fake, chats).values()) == sum(d["status"] == "sent" for d in left) < len(chats)

        process = await start_bot(fake, path, tmp_path)
        try:
            await fake.wait_sent(count=len(chats), timeout=30)
            await asyncio.sleep(0.3)
        finally:
            code, output = await finish(process)
    assert code == 0, output
    assert successes(fake, chats) == {chat: 1 for chat in chats}


async def test_a_kill_with_sends_in_flight_repeats_only_those(tmp_path):
    """The bound: only deliveries left `sending` by a hard kill can arrive twice (at most one per chat)."""
    path, chats = tmp_path / "bw.db", list(range(7001, 7011))
    await queued_broadcast(path, chats)
    async with FakeTelegram() as fake:
        process = await start_bot(fake, path, tmp_path)
        try:
            await fake.wait_sent(count=3, timeout=30)
            fake.delay(1.5, methods=["sendMessage"])  # what is sent now reaches Telegram; its answer comes too late
            await asyncio.sleep(0.5)
        finally:
            await finish(process, signal.SIGKILL)
        rows = await read_deliveries(path)
        in_flight = [d["chat_id"] for d in rows if d["status"] == "sending"]
        sent_before = sum(d["status"] == "sent" for d in rows)
        assert 1 <= len(in_flight) <= 4  # SEND_RATE=4: never more than 4 sends open at once
        await asyncio.sleep(1.6)  # what had reached Telegram is delivered by now
        fake.delay(0)
        delivered_before_restart = successes(fake, chats)

        process = await start_bot(fake, path, tmp_path)
        try:
            await fake.wait_sent(count=len(chats) + sum(delivered_before_restart.values()) - sent_before, timeout=30)
            await asyncio.sleep(0.3)
        finally:
            code, output = await finish(process)
    assert code == 0, output
    assert "being sent when the bot last stopped" in output
    final = successes(fake, chats)
    assert all(count >= 1 for count in final.values())  # nothing lost
    twice = {chat for chat, count in final.items() if count == 2}
    assert twice <= set(in_flight) and max(final.values()) <= 2  # repeats only where a send was in flight
    assert twice == {chat for chat in in_flight if delivered_before_restart[chat]}  # exactly those Telegram had got
