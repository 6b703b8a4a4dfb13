"""Admins end to end: /broadcast with preview and Confirm/Cancel through the outbox, /stats, the audit log."""

import logging
from datetime import timedelta

import pytest

from bot.broadcasts import DRAFT_TTL
from bot.clock import system_clock
from storage import audit, outbox, subscriptions
from tests.test_chat_commands import wait_until
from tests.conftest import ADMIN
from tests.harness import running_bot, settled

ALICE, BOB, CAROL = 201, 202, 203  # watchers: AZ tiktok, AZ whatsapp, AM tiktok


@pytest.fixture
async def admin_bot(telegram, tmp_path):
    async with running_bot(telegram, tmp_path / "bot.db", sending=True, admin_ids=frozenset({ADMIN})) as running:
        await running.say("/watch AZ tiktok", chat_id=ALICE)
        await running.say("/watch AZ whatsapp", chat_id=BOB)
        await running.say("/watch AM tiktok", chat_id=CAROL)
        yield running


def buttons(call):
    markup = call.params["reply_markup"]
    return [b["callback_data"] for row in markup["inline_keyboard"] for b in row]


async def preview(bot, text):
    reply = await bot.say(text, chat_id=ADMIN)
    return reply, buttons(reply)


async def test_non_admins_are_refused_and_logged(admin_bot, caplog):
    caplog.set_level(logging.WARNING)
    for command in ("/broadcast AZ tiktok hello", "/stats"):
        reply = await admin_bot.say(command, chat_id=ALICE)
        assert "Only the bot's admins" in reply.text
    assert sum("refused /" in r.getMessage() for r in caplog.records) == 2
    assert await admin_bot.store.run(audit.entries) == []


async def test_preview_then_confirm_reaches_only_that_pairs_watchers(admin_bot):
    reply, (confirm, cancel) = await preview(admin_bot, "/broadcast AZ tiktok TikTok is <b>blocked</b> on Azercell & Delta")
    assert "It goes to 1 chat." in reply.text
    assert "TikTok is <b>blocked</b> on Azercell &amp; Delta" in reply.text, reply.text
    assert admin_bot.fake.sent(ALICE)[-1].text.startswith("✅")  # nothing new yet: the /watch answer is the last
    admin_bot.fake.press_button(ADMIN, ADMIN, reply.result["message_id"], confirm)
    finding = (await admin_bot.fake.wait_sent(ALICE, count=2))[-1]
    assert "TikTok in Azerbaijan" in finding.text and "<b>blocked</b> on Azercell" in finding.text
    edited = await admin_bot.fake.wait_for("editMessageText", chat_id=ADMIN)
    assert "queued for 1 chat" in edited[-1].text
    assert len(admin_bot.fake.sent(BOB)) == 1 and len(admin_bot.fake.sent(CAROL)) == 1  # only their /watch replies
    log = await admin_bot.store.run(audit.entries)
    assert [(row["action"], row["admin_id"]) for row in log] == [("broadcast", ADMIN)]


async def test_country_wide_broadcast_reaches_every_watcher_of_the_country(admin_bot):
    reply, (confirm, _) = await preview(admin_bot, "/broadcast Azerbaijan Mobile internet is down\nacross the country")
    assert "It goes to 2 chats." in reply.text
    admin_bot.fake.press_button(ADMIN, ADMIN, reply.result["message_id"], confirm)
    for chat in (ALICE, BOB):
        message = (await admin_bot.fake.wait_sent(chat, count=2))[-1]
        assert "Mobile internet is down\nacross the country" in message.text
    assert len(admin_bot.fake.sent(CAROL)) == 1


async def test_double_press_sends_once_and_others_cannot_press(admin_bot):
    reply, (confirm, _) = await preview(admin_bot, "/broadcast AZ tiktok once only")
    message_id = reply.result["message_id"]
    admin_bot.fake.press_button(ADMIN, BOB, message_id, confirm)
    notice = await admin_bot.fake.wait_for("answerCallbackQuery", count=1)
    assert "Only the admin who asked" in notice[-1].params["text"]
    admin_bot.fake.press_button(ADMIN, ADMIN, message_id, confirm, forged=True)
    admin_bot.fake.press_button(ADMIN, ADMIN, message_id, confirm, forged=True)
    notices = await admin_bot.fake.wait_for("answerCallbackQuery", count=3)
    assert sorted(n.params["text"] for n in notices[1:]) == ["Already done.", "Sent."]
    await admin_bot.fake.wait_sent(ALICE, count=2)
    await settled(admin_bot)
    assert [(d["kind"], d["status"]) for d in await admin_bot.store.run(outbox.deliveries_of, ALICE)] == [("finding", "sent")]
    assert sum("once only" in c.text for c in admin_bot.fake.sent(ALICE)) == 1


async def test_cancel_and_expiry_send_nothing(admin_bot):
    reply, (_, cancel) = await preview(admin_bot, "/broadcast AZ tiktok never mind")
    admin_bot.fake.press_button(ADMIN, ADMIN, reply.result["message_id"], cancel)
    edited = await admin_bot.fake.wait_for("editMessageText", chat_id=ADMIN)
    assert "Cancelled" in edited[-1].text

    reply, (confirm, _) = await preview(admin_bot, "/broadcast AZ tiktok too late")
    admin_bot.services.clock = lambda: system_clock() + DRAFT_TTL + timedelta(seconds=1)  # the preview is left too long
    admin_bot.fake.press_button(ADMIN, ADMIN, reply.result["message_id"], confirm)
    edited = await admin_bot.fake.wait_for("editMessageText", chat_id=ADMIN, count=2)
    assert "expired" in edited[-1].text
    assert len(admin_bot.fake.sent(ALICE)) == 1
    actions = [row["action"] for row in await admin_bot.store.run(audit.entries)]
    assert actions == ["broadcast_expired", "broadcast_cancelled"]


@pytest.mark.parametrize("text, reason", [
    ("<b>unclosed", "never closed"),
    ("<script>x</script>", "not allowed"),
    ("1 < 2", "'<'"),
])
async def test_invalid_markup_is_refused_at_preview(admin_bot, text, reason):
    reply = await admin_bot.say(f"/broadcast AZ tiktok {text}", chat_id=ADMIN)
    assert "Not sent" in reply.text and reason in reply.result["text"]
    assert "reply_markup" not in reply.params
    assert await admin_bot.store.run(lambda db: db.execute("select count(*) from drafts").fetchone()[0]) == 0


async def test_broadcast_needs_a_country_and_a_text(admin_bot):
    usage = (await admin_bot.say("/broadcast", chat_id=ADMIN)).text
    assert "Which country, and what should it say?" in usage
    assert "/broadcast AZ tiktok TikTok is blocked on Azercell since 14:00" in usage  # the example has a text
    assert "What should it say?" in (await admin_bot.say("/broadcast AZ tiktok", chat_id=ADMIN)).text
    assert "Unknown country" in (await admin_bot.say("/broadcast Atlantis all down", chat_id=ADMIN)).text


async def test_stats_match_what_was_set_up(admin_bot):
    thanks = await admin_bot.say("/report AZ whatsapp slow Azercell", chat_id=BOB)
    assert "Thank" in thanks.text
    reply, (confirm, _) = await preview(admin_bot, "/broadcast AZ tiktok counted in the outbox")
    admin_bot.fake.press_button(ADMIN, ADMIN, reply.result["message_id"], confirm)
    await admin_bot.fake.wait_sent(ALICE, count=2)
    await admin_bot.fake.wait_for("editMessageText", chat_id=ADMIN)  # the preview says "sent" before /stats is asked
    admin_bot.fake.chat_member_update(CAROL, CAROL, "member", "kicked", chat_type="private")
    await wait_until(lambda: admin_bot.store.run(subscriptions.watchers, "AM", "tiktok"), [])
    reply = await admin_bot.say("/stats", chat_id=ADMIN)
    assert "Chats: 3 (1 paused)" in reply.text  # the watchers; admin commands store no chat
    assert "Watches: 3" in reply.text
    assert "AZ tiktok: 1" in reply.text and "AM tiktok: 1" in reply.text
    assert "Reports in the last day: 1; signals: 0" in reply.text
    assert "Events in the last week: 0" in reply.text
    assert "Outbox: 0 waiting, 1 sent, 0 failed" in reply.text
    assert "Last poll: none since start" in reply.text


async def test_a_finding_shows_in_status_afterwards(admin_bot):
    reply, (confirm, _) = await preview(admin_bot, "/broadcast AZ tiktok Blocked on Delta since noon")
    admin_bot.fake.press_button(ADMIN, ADMIN, reply.result["message_id"], confirm)
    await admin_bot.fake.wait_sent(ALICE, count=2)
    status = await admin_bot.say("/status AZ tiktok", chat_id=CAROL)
    assert "Blocked on Delta since noon" in status.text
    other = await admin_bot.say("/status AZ whatsapp", chat_id=CAROL)
    assert "Blocked on Delta" not in other.text


async def test_the_preview_keeps_the_line_break_after_the_admins_text(admin_bot):
    reply, _ = await preview(admin_bot, "/broadcast AZ tiktok Blocked on Delta")
    lines = reply.result["text"].splitlines()
    closing = len(lines) - 1 - lines[::-1].index("——————")
    assert closing > 1 and lines[closing - 1].endswith("Blocked on Delta")  # the text, then the rule on its own line


@pytest.mark.parametrize("lang, admin_words, user_words", [
    ("en", "For the bot's admins", "Follow a country"),
    ("ru", "Для администраторов бота", "Подписаться на страну"),
])
async def test_admins_see_their_commands_in_help_and_others_do_not(admin_bot, lang, admin_words, user_words):
    await admin_bot.say(f"/language {lang}", chat_id=ADMIN)
    await admin_bot.say(f"/language {lang}", chat_id=ALICE)
    mine = (await admin_bot.say("/help", chat_id=ADMIN)).text
    assert admin_words in mine and user_words in mine
    assert all(command in mine for command in ("/broadcast AZ tiktok", "/signals", "/confirm 12", "/dismiss 12", "/stats"))
    theirs = (await admin_bot.say("/help", chat_id=ALICE)).text
    assert user_words in theirs and admin_words not in theirs and "/signals" not in theirs
