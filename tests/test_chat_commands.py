"""End to end: the real Application polling the fake Bot API; each test asserts on what the bot sent."""

import asyncio

import pytest

from bot import catalog, notifier
from storage import subscriptions
from tests.conftest import ADMIN

GROUP = -1001234


async def watches_of(bot, chat_id):
    return await bot.store.run(subscriptions.chat_watches, chat_id)


async def test_start_explains_with_examples_and_the_menu_is_set(bot):
    reply = await bot.say("/start")
    assert reply.params["parse_mode"] == "HTML"
    assert reply.chat_id == 100
    assert "/watch AZ tiktok" in reply.text and "/report" in reply.text
    menus = {c.params.get("language_code"): c.params["commands"] for c in bot.fake.calls("setMyCommands")}
    assert set(menus) == {None, "az", "ru"}
    for menu in menus.values():
        assert [c["command"] for c in menu] == ["watch", "unwatch", "watches", "status", "report", "history", "mute", "unmute",
                                                    "digest", "timezone", "quiet", "language", "forgetme", "help"]
    assert menus["ru"][0]["description"].startswith("Получать оповещения")
    assert menus[None][0]["description"] == "Get alerts for a country: /watch AZ tiktok"
    assert (await bot.say("/help")).text == reply.text


async def test_watch_one_platform_stores_it_and_shows_status(bot):
    reply = await bot.say("/watch AZ tiktok")
    assert "Watching Azerbaijan (AZ): TikTok" in reply.text
    assert "not known yet" in reply.text
    assert await watches_of(bot, 100) == [("AZ", "tiktok")]


@pytest.mark.parametrize("country", ["az", "Azerbaijan", "AZERBAIJAN"])
async def test_country_by_code_or_name_in_any_case_and_no_platform_means_all(bot, country):
    reply = await bot.say(f"/watch {country}")
    assert "Watching Azerbaijan (AZ)" in reply.text
    watched = await watches_of(bot, 100)
    assert len(watched) == len(catalog.PLATFORMS) == 11 and {p for _, p in watched} >= {"tiktok", "whatsapp", "psiphon"}


async def test_aliases_and_repeats(bot):
    await bot.say("/watch AZ fb ig,yt x")
    assert {p for _, p in await watches_of(bot, 100)} == {"facebook", "instagram", "youtube", "twitter"}
    again = await bot.say("/watch AZ facebook")
    assert "Already watched: Facebook" in again.text


async def test_typos_get_suggestions_and_store_nothing(bot):
    reply = await bot.say("/watch AZ tiktk")
    assert "Unknown platform 'tiktk'" in reply.text and "Did you mean tiktok?" in reply.text
    reply = await bot.say("/watch Azerbajan tiktok")
    assert "Unknown country 'Azerbajan'" in reply.text and "Did you mean Azerbaijan?" in reply.text
    assert await watches_of(bot, 100) == []


async def test_missing_and_too_many_arguments(bot):
    assert "Which country?" in (await bot.say("/watch")).text
    assert "/unwatch all" in (await bot.say("/unwatch")).text
    many = await bot.say("/watch AZ " + " ".join(["tiktok"] * 20))
    assert "more than /watch takes" in many.text
    assert await watches_of(bot, 100) == []


async def test_a_5000_character_message_is_refused(bot):
    text = "/watch AZ " + "tiktok " * 715
    reply = await bot.say(text)
    assert "too long" in reply.text and f"({len(text)} characters" in reply.text
    assert "too long" in (await bot.say("x" * 5000)).text
    assert await watches_of(bot, 100) == []


@pytest.mark.parametrize("text", ["<b>unclosed", "a&b", "<script>alert(1)</script>", "*bold* _it_"])
async def test_markup_in_user_text_is_escaped(bot, text):
    reply = await bot.say(f"/watch {text}")
    assert reply.ok  # the fake answers 400 to broken HTML, as Telegram does
    assert "Unknown country" in reply.text
    assert text.split()[0].split("<")[-1].split(">")[-1][:3] in reply.result["text"]


async def test_command_addressed_to_this_bot_works_and_to_another_bot_is_ignored(bot):
    bot.fake.send_text(100, 100, "/watch@some_other_bot AZ tiktok")
    reply = await bot.say(f"/watch@{bot.fake.bot_user['username']} AZ whatsapp")
    assert "WhatsApp" in reply.text
    assert await watches_of(bot, 100) == [("AZ", "whatsapp")]
    assert len(bot.fake.sent(100)) == 1


async def test_an_edited_command_is_not_run_again(bot):
    await bot.say("/watch AZ tiktok")
    first = bot.fake.calls("sendMessage")[0]
    message_id = max(m["message_id"] for m in bot.fake.messages(100) if m.get("from", {}).get("id") == 100)
    before = len(bot.fake.sent(100))
    bot.fake.edit_text(100, 100, message_id, "/watch AZ whatsapp")
    reply = (await bot.fake.wait_sent(100, count=before + 1))[-1]
    assert "Edited messages are not run again" in reply.text
    assert await watches_of(bot, 100) == [("AZ", "tiktok")]
    assert first.ok


async def test_in_a_group_only_admins_change_watches(bot):
    bot.fake.set_chat_admins(GROUP, [501])
    refused = await bot.say("/watch AZ tiktok", chat_id=GROUP, user_id=502)
    assert "only its admins" in refused.text
    assert await watches_of(bot, GROUP) == []
    done = await bot.say("/watch AZ tiktok", chat_id=GROUP, user_id=501)
    assert "Watching Azerbaijan" in done.text
    assert "only its admins" in (await bot.say("/unwatch all", chat_id=GROUP, user_id=502)).text
    listed = await bot.say("/watches", chat_id=GROUP, user_id=502)  # reading is for everyone
    assert "TikTok" in listed.text
    assert await watches_of(bot, GROUP) == [("AZ", "tiktok")]


async def test_a_channel_post_gets_a_plain_answer(bot):
    before = len(bot.fake.sent(-100777))
    bot.fake.channel_post(-100777, "/watch AZ tiktok")
    reply = (await bot.fake.wait_sent(-100777, count=before + 1))[-1]
    assert "not in channels" in reply.text
    assert await watches_of(bot, -100777) == []


async def test_stickers_photos_and_plain_text_point_to_help(bot):
    bot.fake.send_sticker(100, 100)
    sticker = (await bot.fake.wait_sent(100))[-1]
    assert "text commands" in sticker.text
    bot.fake.send_photo(100, 100, caption="/watch AZ tiktok")
    photo = (await bot.fake.wait_sent(100, count=2))[-1]
    assert "text commands" in photo.text
    assert "commands only" in (await bot.say("is tiktok blocked?")).text
    assert "I don't know /frobnicate" in (await bot.say("/frobnicate now")).text
    assert await watches_of(bot, 100) == []


async def test_watch_then_forgetme_then_watches(bot):
    await bot.say("/watch AZ tiktok whatsapp")
    await bot.store.run(notifier.queue_text, [100], "an alert still waiting", kind="finding")
    forgot = await bot.confirm("/forgetme")
    assert "2 watches are deleted" in forgot.text
    assert await bot.store.run(subscriptions.get_chat, 100) is None
    assert await bot.store.run(lambda db: db.execute("select count(*) from deliveries where chat_id = 100").fetchone()[0]) == 0
    listed = await bot.say("/watches")
    assert "watches nothing yet" in listed.text


async def test_unwatch_some_then_all(bot):
    await bot.say("/watch AZ tiktok whatsapp telegram")
    assert "Stopped watching: TikTok (AZ)" in (await bot.say("/unwatch az tiktok")).text
    assert await watches_of(bot, 100) == [("AZ", "whatsapp"), ("AZ", "telegram")]
    assert "was not watching that" in (await bot.say("/unwatch AM")).text
    everything = await bot.confirm("/unwatch all")
    assert "WhatsApp (AZ)" in everything.text and "Telegram (AZ)" in everything.text
    assert await watches_of(bot, 100) == []


async def test_blocking_the_bot_pauses_watches_and_coming_back_resumes(bot):
    await bot.say("/watch AZ tiktok")
    assert [c["id"] for c in await bot.store.run(subscriptions.watchers, "AZ", "tiktok")] == [100]
    bot.fake.chat_member_update(100, 100, "member", "kicked", chat_type="private")
    await wait_until(lambda: bot.store.run(subscriptions.watchers, "AZ", "tiktok"), [])
    bot.fake.chat_member_update(100, 100, "kicked", "member", chat_type="private")
    await wait_until(lambda: bot.store.run(subscriptions.watchers, "AZ", "tiktok"), lambda rows: len(rows) == 1)
    assert await watches_of(bot, 100) == [("AZ", "tiktok")]


async def test_language_is_stored_and_bad_codes_explained(bot):
    assert "Which language?" in (await bot.say("/language")).text
    assert "I don't have 'klingon'" in (await bot.say("/language klingon")).text
    await bot.say("/language ru")
    assert (await bot.store.run(subscriptions.get_chat, 100))["language"] == "ru"


async def test_status_without_watching(bot):
    reply = await bot.say("/status Azerbaijan whatsapp")
    assert "Azerbaijan (AZ)" in reply.text and "WhatsApp" in reply.text
    assert await watches_of(bot, 100) == []


async def wait_until(read, expected, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await read()
        ok = expected(value) if callable(expected) else value == expected
        if ok:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still {value!r} after {timeout}s")
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("flag", ["🇦🇿", "🇦🇿\ufe0f"])
async def test_a_flag_emoji_names_the_country(bot, flag):
    reply = await bot.say(f"/watch {flag} tiktok")
    assert "Watching Azerbaijan (AZ): TikTok" in reply.text
    assert await watches_of(bot, 100) == [("AZ", "tiktok")]
    assert "Unknown country" in (await bot.say("/watch 🇦 tiktok")).text  # half a flag is not a country


async def test_status_takes_several_platforms_like_watch(bot):
    reply = await bot.say("/status AZ tiktok whatsapp")
    assert "TikTok" in reply.text and "WhatsApp" in reply.text and "Telegram" not in reply.text
    assert "Unknown platform 'tiktk'" in (await bot.say("/status AZ tiktk whatsapp")).text
