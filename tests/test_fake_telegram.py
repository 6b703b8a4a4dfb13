"""Tests of the fake Telegram server (tests/fakes/telegram.py) against the real python-telegram-bot.

Every end-to-end test trusts this fake, so these tests check it the way the bot will use it: the
real `telegram.Bot` / `Application` over loopback HTTP, PTB's own exceptions for each fault, and
plain aiohttp for the wire format (form, multipart, JSON, long polling).
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import json
import time

import aiohttp
import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, InvalidToken, RetryAfter, TimedOut
from telegram.ext import CallbackQueryHandler, ChatMemberHandler, CommandHandler, MessageHandler, filters
from telegram.request import HTTPXRequest

from tests.fakes.telegram import (
    BOT_USERNAME,
    FakeTelegram,
    HTMLParseError,
    application_builder,
    command_entities,
    parse_html,
    polling,
    utf16_len,
)

# PTB 22 warns when retry_after is read as an int; the fake is not what that warning is about.
pytestmark = pytest.mark.filterwarnings("ignore:Deprecated since version v22.2.*retry_after")

TOKEN = "123:ABC"
USER = 42  # a private chat's id is its user's id
GROUP = -1001234567890
ADMIN = 1000  # where handlers under test report what they saw, so tests can await it


@pytest.fixture
async def fake():
    async with FakeTelegram(token=TOKEN) as server:
        yield server


@pytest.fixture
async def bot(fake):
    async with Bot(TOKEN, base_url=f"{fake.url}/bot", base_file_url=f"{fake.url}/file/bot") as b:
        yield b


def seconds(value) -> float:
    """RetryAfter.retry_after is an int or a timedelta depending on PTB's settings."""
    return value.total_seconds() if isinstance(value, dtm.timedelta) else value


# -- startup and the wire ----------------------------------------------------------------------


async def test_get_me_gives_a_bot_user_ptb_accepts(bot, fake):
    me = await bot.get_me()
    assert me.id == 123 and me.is_bot and me.username == BOT_USERNAME
    assert me.can_join_groups is True
    call = fake.calls("getMe")[-1]  # Bot.initialize() called it too
    assert call.ok and call.status == 200


async def test_unknown_token_and_unknown_method_answer_like_telegram(fake):
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{fake.url}/bot999:WRONG/getMe") as response:
            assert response.status == 401
            assert await response.json() == {"ok": False, "error_code": 401,
                                             "description": "Unauthorized"}
        async with http.post(f"{fake.api_url}/sendTelepathy") as response:
            assert response.status == 404
            assert await response.json() == {"ok": False, "error_code": 404,
                                             "description": "Not Found: method not found"}
        async with http.get(f"{fake.api_url}/GETME") as response:  # names are case-insensitive
            assert (await response.json())["result"]["username"] == BOT_USERNAME
    with pytest.raises(InvalidToken):  # PTB's Bot.initialize() calls getMe
        async with Bot("999:WRONG", base_url=f"{fake.url}/bot"):
            pass


async def test_ptb_sends_form_encoded_and_the_fake_decodes_every_encoding(fake, bot):
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Yes", callback_data="y:1")]])
    await bot.send_message(USER, "123", reply_markup=markup, disable_notification=True)
    [call] = fake.calls("sendMessage")
    # "123" is a string field and stays a string; non-strings arrive json.dumps-ed and are decoded
    assert call.params["text"] == "123"
    assert call.params["chat_id"] == USER and call.params["disable_notification"] is True
    assert call.params["reply_markup"] == {"inline_keyboard": [[{"text": "Yes", "callback_data": "y:1"}]]}

    keyboard = {"inline_keyboard": [[{"text": "No", "callback_data": "n"}]]}
    async with aiohttp.ClientSession() as http:
        await http.post(f"{fake.api_url}/sendMessage",
                        json={"chat_id": 7, "text": "json", "reply_markup": keyboard})
        form = aiohttp.FormData()
        form.add_field("chat_id", "8")
        form.add_field("caption", "<b>pic</b>")
        form.add_field("parse_mode", "HTML")
        form.add_field("photo", b"\x89PNG fake", filename="chart.png", content_type="image/png")
        async with http.post(f"{fake.api_url}/sendPhoto", data=form) as response:
            photo = await response.json()
        async with http.get(f"{fake.api_url}/sendChatAction",
                            params={"chat_id": "9", "action": "typing"}) as response:
            assert (await response.json()) == {"ok": True, "result": True}
    json_call, photo_call = fake.calls("sendMessage")[1], fake.calls("sendPhoto")[0]
    assert json_call.params == {"chat_id": 7, "text": "json", "reply_markup": keyboard}
    assert photo_call.params["chat_id"] == 8
    assert photo_call.params["photo"].filename == "chart.png"
    assert photo_call.params["photo"].data == b"\x89PNG fake"
    assert photo["result"]["caption"] == "pic"
    assert photo["result"]["caption_entities"] == [{"type": "bold", "offset": 0, "length": 3}]
    assert fake.calls("sendChatAction")[0].params == {"chat_id": 9, "action": "typing"}


async def test_sent_message_looks_like_telegrams(bot, fake):
    before = time.time()
    first = await bot.send_message(USER, "<b>Blocked</b> on AS29049 😀", parse_mode=ParseMode.HTML)
    second = await bot.send_message(USER, "again")
    assert first.text == "Blocked on AS29049 😀"  # visible text, tags parsed into entities
    assert [(e.type, e.offset, e.length) for e in first.entities] == [("bold", 0, 7)]
    assert first.chat.id == USER and first.chat.type == "private"
    assert first.from_user.id == 123 and first.from_user.is_bot
    assert second.message_id == first.message_id + 1
    assert abs(first.date.timestamp() - before) < 5  # seconds, not milliseconds
    assert [c.text for c in fake.sent(USER)] == ["<b>Blocked</b> on AS29049 😀", "again"]
    assert fake.sent(USER + 1) == []


async def test_commands_are_stored_per_scope(bot, fake):
    await bot.set_my_commands([("watch", "Watch a country"), ("status", "Current status")])
    commands = await bot.get_my_commands()
    assert [(c.command, c.description) for c in commands] == [
        ("watch", "Watch a country"), ("status", "Current status")]
    assert fake.my_commands()[0] == {"command": "watch", "description": "Watch a country"}
    with pytest.raises(BadRequest, match="(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([("Bad-Name", "x")])
    await bot.delete_my_commands()
    assert await bot.get_my_commands() == ()


# -- long polling ------------------------------------------------------------------------------


async def test_get_updates_long_polls_and_offset_confirms(fake):
    async with aiohttp.ClientSession() as http:
        async def get_updates(**params):
            async with http.post(f"{fake.api_url}/getUpdates", data=params) as response:
                return (await response.json())["result"]

        started = time.monotonic()
        assert await get_updates(timeout="0.3") == []
        assert 0.25 <= time.monotonic() - started < 2  # waited for the timeout

        asyncio.get_running_loop().call_later(0.2, fake.send_text, USER, USER, "hi")
        started = time.monotonic()
        [update] = await get_updates(timeout="10")
        assert time.monotonic() - started < 2  # answered when the update came, not at 10 s
        assert update["message"]["text"] == "hi"

        assert [u["update_id"] for u in await get_updates()] == [update["update_id"]]  # unconfirmed
        assert await get_updates(offset=str(update["update_id"] + 1)) == []
        assert fake.pending_updates() == []


async def test_a_second_poller_ends_the_first_with_conflict(fake):
    async with aiohttp.ClientSession() as http:
        first = asyncio.create_task(http.post(f"{fake.api_url}/getUpdates", data={"timeout": "5"}))
        await asyncio.sleep(0.1)  # let the first poll reach the server and wait there
        async with http.post(f"{fake.api_url}/getUpdates", data={"timeout": "0"}) as second:
            assert second.status == 200
        response = await asyncio.wait_for(first, 2)
        assert response.status == 409 and "Conflict" in (await response.json())["description"]


# -- the real Application ------------------------------------------------------------------------


async def test_start_command_reaches_the_handler_and_the_reply_is_recorded(fake):
    seen = []

    async def start(update: Update, context) -> None:
        seen.append((update.effective_chat.id, context.args))
        await update.effective_message.reply_html(f"Hello <b>{update.effective_user.first_name}</b>")

    app = application_builder(fake).build()
    app.add_handler(CommandHandler("start", start))
    async with polling(app):
        fake.send_text(USER, USER, "/start", first_name="Aysel")
        fake.send_text(GROUP, 7, f"/start@{BOT_USERNAME} AZ", chat_title="Newsroom")
        replies = await fake.wait_sent(count=2)
    assert seen == [(USER, []), (GROUP, ["AZ"])]
    assert [(c.chat_id, c.text) for c in replies] == [(USER, "Hello <b>Aysel</b>"),
                                                     (GROUP, "Hello <b>Tester</b>")]
    assert replies[0].params["parse_mode"] == "HTML"
    assert [m["text"] for m in fake.messages(USER)] == ["/start", "Hello Aysel"]
    assert [m["text"] for m in fake.bot_messages(USER)] == ["Hello Aysel"]


async def test_text_without_a_command_does_not_reach_a_command_handler(fake):
    async def command(update, context):
        await update.effective_message.reply_text("command")

    async def text(update, context):
        await update.effective_message.reply_text("text")

    app = application_builder(fake).build()
    app.add_handler(CommandHandler("start", command))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, text))
    async with polling(app):
        fake.send_text(USER, USER, "start please")
        fake.send_text(USER, USER, "/start")
        replies = await fake.wait_sent(USER, count=2)
    assert [c.text for c in replies] == ["text", "command"]


async def test_button_press_reaches_callback_query_handler(fake):
    answered = []

    async def ask(update, context):
        keyboard = [[InlineKeyboardButton("Confirm", callback_data="confirm:5")]]
        await update.message.reply_text("Send it?", reply_markup=InlineKeyboardMarkup(keyboard))

    async def on_press(update, context):
        query = update.callback_query
        answered.append((query.data, query.message.message_id, query.from_user.id))
        await query.answer("Sent")
        await query.edit_message_text("Sent to 3 chats")

    app = application_builder(fake).build()
    app.add_handler(CommandHandler("broadcast", ask))
    app.add_handler(CallbackQueryHandler(on_press))
    async with polling(app):
        fake.send_text(USER, USER, "/broadcast AZ")
        [question] = await fake.wait_sent(USER)
        message_id = question.result["message_id"]
        with pytest.raises(KeyError, match="(?i)no button"):
            fake.press_button(USER, USER, message_id, "confirm:6")
        fake.press_button(USER, USER, message_id, "confirm:5")
        await fake.wait_for("editMessageText")
    assert answered == [("confirm:5", message_id, USER)]
    assert fake.calls("answerCallbackQuery")[0].ok
    assert fake.message(USER, message_id)["text"] == "Sent to 3 chats"
    assert "reply_markup" not in fake.message(USER, message_id)  # an edit without markup drops it


async def test_my_chat_member_reaches_handler_and_blocking_makes_sends_fail(fake, bot):
    changes = []

    async def on_member(update, context):
        change = update.my_chat_member
        changes.append((change.chat.id, change.old_chat_member.status, change.new_chat_member.status))
        await context.bot.send_message(ADMIN, f"chat {change.chat.id} is now {change.new_chat_member.status}")

    app = application_builder(fake).build()
    app.add_handler(ChatMemberHandler(on_member, ChatMemberHandler.MY_CHAT_MEMBER))
    async with polling(app):
        fake.chat_member_update(USER, USER, "member", "kicked")
        fake.chat_member_update(GROUP, 7, "member", "administrator")
        await fake.wait_sent(ADMIN, count=2)
    assert changes == [(USER, "member", "kicked"), (GROUP, "member", "administrator")]
    with pytest.raises(Forbidden, match="(?i)bot was blocked by the user"):
        await bot.send_message(USER, "alert")
    fake.chat_member_update(USER, USER, "kicked", "member")  # the user restarted the bot
    await bot.send_message(USER, "alert")


async def test_non_text_and_edited_and_channel_updates_reach_their_handlers(fake):
    kinds = []

    async def record(update, context):
        message = update.effective_message
        kinds.append("sticker" if message.sticker else "photo" if message.photo else
                     "edited" if update.edited_message else
                     "channel" if update.channel_post else "text")
        await context.bot.send_message(ADMIN, kinds[-1])

    app = application_builder(fake).build()
    app.add_handler(MessageHandler(filters.ALL, record))
    async with polling(app):
        fake.send_sticker(USER, USER)
        fake.send_photo(USER, USER, caption="screenshot")
        fake.edit_text(USER, USER, 1, "edited")
        fake.channel_post(-1009, "news")
        await fake.wait_sent(ADMIN, count=4)
    assert kinds == ["sticker", "photo", "edited", "channel"]


# -- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("html, reason", [
    ("<b>unclosed", 'Can\'t find end tag corresponding to start tag "b"'),
    ("<script>alert(1)</script>", 'Unsupported start tag "script"'),
    ("1 < 2", 'Unsupported start tag ""'),
    ("a &foo; b", 'Unknown entity "&foo;"'),
    ("</b>", "Unexpected end tag"),
    ("<b><i>x</b></i>", "Unmatched end tag"),
    ("<span>x</span>", 'Tag "span" must have class "tg-spoiler"'),
    ("line<br>break", 'Unsupported start tag "br"'),
])
async def test_html_that_telegram_rejects_is_a_bad_request(bot, fake, html, reason):
    with pytest.raises(BadRequest, match="(?i)can't parse entities") as error:
        await bot.send_message(USER, html, parse_mode=ParseMode.HTML)
    assert reason.lower() in str(error.value).lower()  # PTB rewords the description's case
    assert fake.calls("sendMessage")[0].status == 400
    assert fake.sent() == [] and fake.messages(USER) == []


@pytest.mark.parametrize("html, visible", [
    ("a & b > c", "a & b > c"),
    ("&lt;b&gt; &amp; &quot;x&quot; &#39; &#x1F600;", '<b> & "x" \' 😀'),
    ("<b>bold <i>both</i></b> <strong>s</strong> <em>e</em> <u>u</u> <ins>i</ins>", "bold both s e u i"),
    ("<s>s</s><strike>t</strike><del>d</del>", "std"),
    ('<a href="https://explorer.ooni.org/m/20220914?a=1&amp;b=2">evidence</a>', "evidence"),
    ('<pre><code class="language-python">x = 1</code></pre>', "x = 1"),
    ("<blockquote expandable>quote</blockquote><blockquote>q</blockquote>", "quoteq"),
    ('<span class="tg-spoiler">s</span><tg-spoiler>t</tg-spoiler>', "st"),
    ('<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>', "👍"),
    ("<B>upper case tags</B>", "upper case tags"),
])
async def test_html_that_telegram_accepts(bot, html, visible):
    message = await bot.send_message(USER, html, parse_mode=ParseMode.HTML)
    assert message.text == visible


def test_parse_html_entities_use_utf16_offsets():
    text, entities = parse_html(
        '😀 <b>x</b> <a href="https://t.me">t</a> <pre><code class="language-py">y</code></pre>')
    assert text == "😀 x t y"
    assert entities == [
        {"type": "bold", "offset": 3, "length": 1},
        {"type": "text_link", "offset": 5, "length": 1, "url": "https://t.me"},
        {"type": "pre", "offset": 7, "length": 1, "language": "py"},
    ]
    assert parse_html("a &foo; b", strict_entities=False)[0] == "a &foo; b"  # Telegram's own way
    with pytest.raises(HTMLParseError):
        parse_html("<tg-emoji>x</tg-emoji>")


def test_command_entities_match_what_a_client_marks():
    assert command_entities("/watch AZ tiktok") == [{"type": "bot_command", "offset": 0, "length": 6}]
    assert command_entities(f"/start@{BOT_USERNAME}") == [
        {"type": "bot_command", "offset": 0, "length": 1 + 5 + 1 + len(BOT_USERNAME)}]
    assert command_entities("and/or, no command") == []
    assert utf16_len("😀a") == 3


async def test_text_length_is_counted_in_utf16_after_parsing(bot):
    await bot.send_message(USER, "a" * 4096)
    await bot.send_message(USER, "😀" * 2048)  # 4096 UTF-16 units
    await bot.send_message(USER, "<b>" + "a" * 4096 + "</b>", parse_mode=ParseMode.HTML)
    await bot.send_message(USER, "&amp;" * 4096, parse_mode=ParseMode.HTML)
    for too_long in ("a" * 4097, "😀" * 2048 + "a"):
        with pytest.raises(BadRequest, match="(?i)message is too long"):
            await bot.send_message(USER, too_long)


@pytest.mark.parametrize("text, parse_mode", [("", None), ("   \n", None), ("<b></b>", ParseMode.HTML)])
async def test_empty_text_is_a_bad_request(bot, text, parse_mode):
    with pytest.raises(BadRequest, match="(?i)message text is empty"):
        await bot.send_message(USER, text, parse_mode=parse_mode)


async def test_callback_data_over_64_bytes_is_rejected(bot):
    def keyboard(data):
        return InlineKeyboardMarkup([[InlineKeyboardButton("b", callback_data=data)]])

    await bot.send_message(USER, "ok", reply_markup=keyboard("x" * 64))
    for data in ("x" * 65, "й" * 33):  # 66 bytes in UTF-8
        with pytest.raises(BadRequest, match="(?i)BUTTON_DATA_INVALID"):
            await bot.send_message(USER, "no", reply_markup=keyboard(data))


async def test_edits_of_unknown_or_unchanged_messages_fail_like_telegram(bot):
    message = await bot.send_message(USER, "status: ok")
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_text("status: ok", chat_id=USER, message_id=message.message_id)
    edited = await bot.edit_message_text("status: blocked", chat_id=USER, message_id=message.message_id)
    assert edited.text == "status: blocked" and edited.edit_date is not None
    with pytest.raises(BadRequest, match="(?i)message to edit not found"):
        await bot.edit_message_text("x", chat_id=USER, message_id=999)
    await bot.delete_message(USER, message.message_id)
    with pytest.raises(BadRequest, match="(?i)message to delete not found"):
        await bot.delete_message(USER, message.message_id)
    with pytest.raises(BadRequest, match="(?i)query is too old"):
        await bot.answer_callback_query("12345")


async def test_chat_members_and_admins_are_configurable(bot, fake):
    fake.add_chat(GROUP, "supergroup", title="Newsroom")
    fake.set_chat_admins(GROUP, [7, 8], creator=9)
    assert (await bot.get_chat_member(GROUP, 7)).status == "administrator"
    assert (await bot.get_chat_member(GROUP, 9)).status == "creator"
    assert (await bot.get_chat_member(GROUP, 10)).status == "member"
    assert (await bot.get_chat_member(USER, USER)).status == "member"
    admins = await bot.get_chat_administrators(GROUP)
    assert [(m.user.id, m.status) for m in admins] == [(9, "creator"), (7, "administrator"),
                                                       (8, "administrator")]
    with pytest.raises(BadRequest, match="(?i)no administrators in the private chat"):
        await bot.get_chat_administrators(USER)
    chat = await bot.get_chat(GROUP)
    assert chat.title == "Newsroom" and chat.type == "supergroup"


# -- faults --------------------------------------------------------------------------------------


async def test_rate_limit_next_raises_retry_after_then_recovers(bot, fake):
    fake.rate_limit_next(2, retry_after=3)
    for _ in range(2):
        with pytest.raises(RetryAfter) as error:
            await bot.send_message(USER, "alert")
        assert seconds(error.value.retry_after) == 3
    await bot.send_message(USER, "alert")
    assert [c.status for c in fake.calls("sendMessage")] == [429, 429, 200]
    assert fake.calls("sendMessage")[0].response["parameters"] == {"retry_after": 3}


async def test_limit_rate_answers_429_beyond_n_per_sliding_second(bot, fake):
    fake.limit_rate(per_second=5)
    for chat in range(1, 6):
        await bot.send_message(chat, "alert")
    with pytest.raises(RetryAfter) as error:
        await bot.send_message(6, "alert")
    assert seconds(error.value.retry_after) == 1
    await asyncio.sleep(1.05)
    await bot.send_message(6, "alert")

    fake.limit_rate(None, per_chat=1)
    await bot.send_message(USER, "one")
    with pytest.raises(RetryAfter):
        await bot.send_message(USER, "two")
    await bot.send_message(USER + 1, "other chat")


async def test_a_failing_chat_raises_forbidden_and_others_go_on(bot, fake):
    fake.fail_chat(USER)
    with pytest.raises(Forbidden, match="(?i)bot was blocked by the user"):
        await bot.send_message(USER, "alert")
    await bot.send_message(USER + 1, "alert")
    fake.clear_failures(USER)
    await bot.send_message(USER, "alert")
    assert [c.status for c in fake.calls("sendMessage")] == [403, 200, 200]


async def test_migrated_group_raises_chat_migrated(bot, fake):
    fake.migrate_chat(-555, GROUP)
    with pytest.raises(ChatMigrated) as error:
        await bot.send_message(-555, "alert")
    assert error.value.new_chat_id == GROUP
    message = await bot.send_message(GROUP, "alert")
    assert message.chat.type == "supergroup"


async def test_delay_makes_a_client_time_out(fake):
    fake.delay(0.5, methods={"sendMessage"})
    request = HTTPXRequest(read_timeout=0.1)
    async with Bot(TOKEN, base_url=f"{fake.url}/bot", request=request) as slow:
        with pytest.raises(TimedOut):
            await slow.send_message(USER, "alert")
    # the fake still carried the message out: "timed out" does not mean "not delivered"
    await fake.wait_sent(USER, timeout=2)
    fake.delay(0)


# -- recording -----------------------------------------------------------------------------------


async def test_wait_for_wakes_on_a_call_and_explains_a_timeout(bot, fake):
    waiter = asyncio.create_task(fake.wait_for("sendMessage", chat_id=USER, count=2))
    await bot.send_message(USER, "one")
    await bot.send_message(USER + 1, "other")
    assert not waiter.done()
    await bot.send_message(USER, "two")
    calls = await asyncio.wait_for(waiter, 1)
    assert [c.text for c in calls] == ["one", "two"]

    with pytest.raises(AssertionError, match=r"1 x sendMessage .*found 0.*getUpdates left out"):
        await fake.wait_for("sendMessage", chat_id=999, timeout=0.1)
    fake.clear()
    assert fake.calls() == [] and fake.sent() == []
    await bot.send_message(USER, "after clear")
    assert json.dumps(fake.sent(USER)[0].result["chat"]) == json.dumps(
        {"id": USER, "type": "private", "first_name": f"User{USER}"})
