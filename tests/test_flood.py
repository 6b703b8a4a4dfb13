"""Every message through one flood-aware place (bot/flood.py), end to end: the real Application polling
the fake Bot API, replies to commands and the Sender's alerts sharing Telegram's limits and answers.

Slow answers (applied at once, answered late) make no duplicates, or at most one a message when the
answer comes after the bot stopped waiting; a reply meeting 429 is resent once; a reply to a chat that
answers 403 pauses it; replies overtake a fan-out; a surge is answered in full; a 429 pause outlives
a restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

import pytest

from bot import notifier
from bot.flood import PRIVATE_BURST, ChatWindow, FloodControl, SendGate
from bot.sender import Sender
from storage import outbox, subscriptions
from tests.harness import running_bot
from tests.test_sender import add_watchers, busiest_second, event, queue, settled

pytestmark = pytest.mark.filterwarnings("ignore:Deprecated since version v22.2.*retry_after")


def limiter(bot) -> FloodControl:
    return bot.app.bot.rate_limiter


def sends_to(fake, chat_ids) -> Counter:
    """Messages each chat has (as Telegram applied them, whatever the bot heard back)."""
    wanted = set(chat_ids)
    return Counter(c.chat_id for c in fake.calls("sendMessage") if c.ok and c.chat_id in wanted)


async def until(condition, timeout=10.0):
    """Wait for an async condition with a bounded poll; its last value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await condition()
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.05)


# --- every call passes the one place -------------------------------------------------------------


async def test_replies_and_alerts_leave_through_the_same_gate(bot):
    await bot.say("/help")
    gate = limiter(bot).gate

    async def counted():
        return limiter(bot).replies == 1

    assert isinstance(limiter(bot), FloodControl) and await until(counted)
    drain = Sender(bot.store, bot=bot.app.bot)
    drain._ensure_bot()
    assert drain.window is gate  # the alerts' turns come from the replies' gate


# --- slow answers ----------------------------------------------------------------------------------


async def test_answers_delayed_after_the_send_was_applied_make_no_duplicates(telegram, tmp_path, caplog):
    # Telegram applies each send but answers 2 s late; the bot waits 4 s for an answer (20 s and 60 s in
    # production: telegram_http.ANSWER_TIMEOUT), so it learns each one arrived and sends nothing again
    chats = list(range(5001, 5013))
    telegram.delay_answers(2.0)
    async with running_bot(telegram, tmp_path / "bw.db", sending=True, build={"answer_timeout": 4.0}) as bot:
        await bot.store.run(add_watchers, chats)
        await queue(bot, event())
        reply = await bot.say("/help", chat_id=5100)
        counts = await settled(bot, timeout=20)
        stats = await bot.services.sender.stats()
    assert "watch" in reply.text
    assert sends_to(telegram, chats + [5100]) == {chat: 1 for chat in chats + [5100]}
    assert counts["sent"] == 12 and stats.unknown == 0 and limiter(bot).unknown == 0
    assert not [r for r in caplog.records if "twice" in r.getMessage()]


async def test_an_answer_later_than_the_bot_waits_costs_at_most_one_duplicate_counted_and_logged(telegram, tmp_path, caplog):
    # answered after the bot gave up waiting: each send's fate is unknown. Sent once more, not forever
    chats = list(range(5201, 5205))
    telegram.delay_answers(1.0)
    caplog.set_level(logging.WARNING)
    async with running_bot(telegram, tmp_path / "bw.db", sending=True, build={"answer_timeout": 0.4}) as bot:
        await bot.store.run(add_watchers, chats)
        await queue(bot, event())
        counts = await settled(bot, timeout=20)
        stats = await bot.services.sender.stats()
        rows = await bot.store.run(outbox.deliveries_of)
    assert sends_to(telegram, chats) == {chat: 2 for chat in chats}  # never a third copy
    assert stats.unknown == 4 and counts["failed"] == 4  # counted; each marked as possibly arrived
    assert all("fate unknown" in row["error"] for row in rows)
    assert len([r for r in caplog.records if "may see it twice" in r.getMessage()]) == 4


# --- Telegram's answers to a reply ------------------------------------------------------------------


async def test_a_reply_that_meets_429_is_resent_after_retry_after_and_arrives_once(bot):
    bot.fake.rate_limit_next(1, retry_after=1, methods=["sendMessage"])
    reply = await bot.say("/help", chat_id=6001)
    calls = bot.fake.calls("sendMessage")
    assert [c.status for c in calls] == [429, 200]
    assert calls[1].time - calls[0].time >= 0.99  # waited retry_after
    assert sends_to(bot.fake, [6001]) == {6001: 1} and "watch" in reply.text
    assert limiter(bot).retried == 1


async def test_a_reply_to_a_chat_answering_403_pauses_that_chat_as_alerts_do(bot):
    await bot.store.run(add_watchers, [6101, 6102])
    await bot.store.run(notifier.queue_event, event())  # no sender wired: both deliveries wait
    bot.fake.fail_chat(6101, 403)
    bot.fake.send_text(6101, 6101, "/watches")
    await bot.fake.wait_for("sendMessage", chat_id=6101)

    async def paused():
        return (await bot.store.run(subscriptions.get_chat, 6101))["paused"]

    assert await until(paused)
    mine = await bot.store.run(outbox.deliveries_of, 6101)
    other = await bot.store.run(outbox.deliveries_of, 6102)
    assert [row["status"] for row in mine] == ["dropped"]
    assert [row["status"] for row in other] == ["pending"]  # other chats go on
    assert not (await bot.store.run(subscriptions.get_chat, 6102))["paused"]


async def test_a_reply_to_a_migrated_group_goes_to_its_new_id(bot):
    bot.fake.send_text(-6201, 6202, "/help", chat_type="group")  # the group is known to the fake
    await bot.fake.wait_sent(-6201)
    bot.fake.migrate_chat(-6201, -1006201)
    bot.fake.send_text(-6201, 6202, "/help")
    [reply] = await bot.fake.wait_sent(-1006201)
    assert "watch" in reply.text


async def test_a_photo_that_meets_429_is_uploaded_again_and_arrives_once(bot):
    bot.fake.rate_limit_next(1, retry_after=1, methods=["sendPhoto"])
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
    message = await bot.app.bot.send_photo(6401, png, caption="chart")
    calls = bot.fake.calls("sendPhoto")
    assert [c.status for c in calls] == [429, 200] and message.caption == "chart"
    assert calls[1].params["photo"].data == png  # the file went again, whole


async def test_a_pause_and_late_replies_are_logged_once_each_and_every_reply_still_goes(bot, caplog):
    caplog.set_level(logging.INFO)
    limiter(bot).late_after = 0.5
    bot.fake.rate_limit_next(3, retry_after=1, methods=["sendMessage"])
    users = list(range(6501, 6511))
    for user in users:
        bot.fake.send_text(user, user, "/help")
    await bot.fake.wait_sent(count=10, timeout=10)
    assert sends_to(bot.fake, users) == {user: 1 for user in users}
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "Telegram asked to wait" in m]) == 1  # not once per reply it held
    assert len([m for m in messages if "replies are going out late" in m]) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# --- priorities and surges -------------------------------------------------------------------------------


async def test_a_reply_during_a_fan_out_overtakes_queued_alerts(telegram, tmp_path):
    chats = list(range(7001, 7091))  # 3 s of alerts at 30/s
    telegram.limit_rate(30)
    async with running_bot(telegram, tmp_path / "bw.db", sending=True, send_rate=30) as bot:
        await bot.store.run(add_watchers, chats)
        await queue(bot, event())
        await telegram.wait_sent(count=10, timeout=5)  # the fan-out is under way
        asked = time.time()
        reply = await bot.say("/help", chat_id=7500)
        await settled(bot)
        alerts = [c for c in telegram.calls("sendMessage") if c.ok and c.chat_id in chats]
    assert reply.time - asked < 1.0
    assert len([c for c in alerts if c.time > reply.time]) >= 50  # most alerts were still queued
    assert len(alerts) == 90 and all(c.status == 200 for c in telegram.calls("sendMessage"))


async def test_replies_to_one_private_chat_go_a_short_burst_then_one_a_second(telegram, tmp_path):
    async with running_bot(telegram, tmp_path / "bw.db", build={"private_burst": PRIVATE_BURST}) as bot:
        for _ in range(5):
            telegram.send_text(6601, 6601, "/help")
        replies = await telegram.wait_sent(6601, count=5, timeout=10)
    times = [c.time for c in replies]
    assert all(later - first >= 2.95 for first, later in zip(times, times[3:]))  # never 4 within 3 s
    assert times[2] - times[0] < 1.0  # ... but a conversation's first replies do not wait


async def test_a_surge_of_300_users_is_answered_in_full(telegram, tmp_path):
    users = list(range(8001, 8301))
    telegram.limit_rate(100)  # answers 429 beyond 100 sends in any second
    async with running_bot(telegram, tmp_path / "bw.db", send_rate=100) as bot:
        for user in users:
            telegram.send_text(user, user, "/help")
        await telegram.wait_sent(count=300, timeout=15)

        async def counted():
            return limiter(bot).replies == 300

        assert await until(counted)
    answered = sends_to(telegram, users)
    assert answered == {user: 1 for user in users}  # every one answered, none twice
    assert busiest_second([c.time for c in telegram.calls("sendMessage") if c.ok]) <= 100


async def test_a_429_pause_is_remembered_across_a_restart(telegram, tmp_path):
    path = tmp_path / "bw.db"
    telegram.rate_limit_next(1, retry_after=3, methods=["sendMessage"])
    async with running_bot(telegram, path, sending=True) as bot:
        await bot.store.run(add_watchers, [9001])
        await queue(bot, event())
        [refused] = await telegram.wait_for("sendMessage", chat_id=9001)
    assert refused.status == 429
    async with running_bot(telegram, path, sending=True) as bot:  # restarted within the pause
        await bot.store.run(add_watchers, range(9002, 9007))
        await queue(bot, event("blocked", hours=1))
        sent = await telegram.wait_sent(count=6, timeout=8)
    assert sorted(c.chat_id for c in sent) == list(range(9001, 9007))
    assert min(c.time for c in sent) >= refused.time + 2.9  # nothing went out before the pause ended


async def test_a_button_press_is_answered_at_once_whatever_the_queue(bot):
    reply = await bot.say("/help", chat_id=6301)
    bot.fake.clear()
    limiter(bot).gate.pause(30)  # a long 429 pause holds every message, but an answer to a press is none
    bot.fake.press_button(6301, 6301, reply.result["message_id"], "stale:button", forged=True)
    [answer] = await bot.fake.wait_for("answerCallbackQuery", timeout=3)
    assert answer.ok and not bot.fake.sent(6301)


async def test_a_button_press_does_not_wait_for_the_slots_a_surge_holds():
    from telegram import CallbackQuery, Update, User

    from bot.app import PerChatOrder

    order = PerChatOrder(max_concurrent_updates=1)
    held, ran = asyncio.Event(), []

    async def reply_waiting_for_its_turn():
        await held.wait()

    async def press():
        ran.append("press")

    user = User(1, "x", False)
    command = Update(1)  # an update of another kind, holding the only slot
    surge = asyncio.create_task(order.process_update(command, reply_waiting_for_its_turn()))
    queued = asyncio.create_task(order.process_update(Update(2), press()))  # a second command waits ...
    pressed = Update(3, callback_query=CallbackQuery("q", user, "c", data="d"))
    await asyncio.wait_for(order.process_update(pressed, press()), 1)  # ... a press does not
    assert ran == ["press"]
    held.set()
    await asyncio.gather(surge, queued)
    assert ran == ["press", "press"]


# --- the parts, on an injected clock ------------------------------------------------------------------


async def test_the_gate_serves_urgent_waiters_first_and_in_order():
    now = [0.0]

    async def sleep(seconds):
        now[0] += seconds
        await asyncio.sleep(0)

    gate = SendGate(2, clock=lambda: now[0], sleep=sleep)
    order = []

    async def take(name, urgent):
        await gate.acquire(urgent=urgent)
        order.append((name, now[0]))
        gate.release()

    gate.pause(1.0)
    tasks = [asyncio.create_task(take(f"alert{i}", False)) for i in range(3)]
    await asyncio.sleep(0)
    tasks += [asyncio.create_task(take(f"reply{i}", True)) for i in range(2)]
    await asyncio.gather(*tasks)
    assert [name for name, _ in order] == ["reply0", "reply1", "alert0", "alert1", "alert2"]
    assert order[0][1] == pytest.approx(1.0)
    times = [at for _, at in order]
    assert all(c - a >= 1.0 - 1e-9 for a, c in zip(times, times[2:]))  # never more than 2 in a second


def test_a_private_chat_gets_a_short_burst_then_one_a_second_and_a_group_20_a_minute():
    now = [0.0]
    window = ChatWindow(clock=lambda: now[0])
    for _ in range(3):
        assert window.wait(42) == 0
        window.started(42)
    assert window.wait(42) == pytest.approx(3.0)
    now[0] = 1.5
    assert window.wait(42) == pytest.approx(1.5)
    for _ in range(20):
        assert window.wait(-42) == 0
        window.started(-42)
    assert window.wait(-42) == pytest.approx(60.0)
