"""Subscribing in one tap and no destructive surprises, end to end (the real Application, the fake
Bot API): deep links and share links, /watch as buttons, and the Confirm/Cancel of /forgetme and
/unwatch all — signed for the chat and the person, expiring."""

from __future__ import annotations

import pytest

from bot import catalog, watch_form
from storage import subscriptions
from tests.fakes.telegram import BOT_USERNAME

GROUP = -1001234


async def watches_of(bot, chat_id):
    return await bot.store.run(subscriptions.chat_watches, chat_id)


def labels(call) -> list[str]:
    markup = call.params.get("reply_markup") or call.result.get("reply_markup") or {}
    return [key["text"] for row in markup.get("inline_keyboard", []) for key in row]


# -- deep links and share links ---------------------------------------------------------------


@pytest.mark.parametrize("lang, watching, share", [
    ("en", "Watching Azerbaijan (AZ): TikTok", "Share it"),
    ("az", "İzlənilir", "Paylaşın"),
    ("ru", "Подписка", "Поделитесь"),
])
async def test_a_deep_link_adds_the_watch_and_answers_as_watch_with_its_share_link(bot, lang, watching, share):
    reply = await bot.say("/start watch_AZ_tiktok", language_code=lang)
    assert watching.split()[0] in reply.text and share in reply.text
    assert f"https://t.me/{BOT_USERNAME}?start=watch_AZ_tiktok" in reply.text
    assert await watches_of(bot, 100) == [("AZ", "tiktok")]


async def test_every_watch_reply_carries_the_share_link_of_what_it_added(bot):
    assert f"?start=watch_AM_tiktok_whatsapp" in (await bot.say("/watch AM tiktok,whatsapp")).text
    reply = await bot.say("/watch Azerbaijan")
    assert f"https://t.me/{BOT_USERNAME}?start=watch_AZ\n" in reply.text + "\n"  # all platforms: the country alone
    again = await bot.say(f"/start {watch_form.deep_link_payload('AZ', ('tiktok',), False)}")
    assert "Already watched: TikTok" in again.text


async def test_a_deep_link_with_a_typo_is_refused_and_plain_start_still_helps(bot):
    assert "Did you mean tiktok?" in (await bot.say("/start watch_AZ_tiktk")).text
    assert "Unknown country" in (await bot.say("/start watch_XX")).text
    assert "/watch AZ tiktok" in (await bot.say("/start somethingelse")).text  # help
    assert await watches_of(bot, 100) == []


def test_deep_link_payloads_stay_within_telegrams_64_characters():
    every = ("tiktok", "whatsapp", "telegram", "signal", "facebook", "instagram", "youtube", "twitter", "tor")
    assert watch_form.deep_link_payload("AZ", every, False) == "watch_AZ"  # would not fit: the country alone
    assert watch_form.read_deep_link("watch_AZ_tiktok_whatsapp") == ["AZ", "tiktok", "whatsapp"]
    assert watch_form.read_deep_link("watch_") is None and watch_form.read_deep_link("report_AZ") is None


# -- /watch as buttons -------------------------------------------------------------------------


async def test_watch_without_arguments_is_a_button_form_country_then_platform_toggles_then_done(bot):
    await bot.say("/watch AM tiktok", chat_id=300)  # another chat makes Armenia frequent
    form = await bot.say("/watch")
    assert "Which country?" in form.text
    countries = labels(form)
    assert countries[0] == "Armenia" and "Azerbaijan" in countries and countries[-1] == "Cancel"
    step, _ = await bot.press(form, "Azerbaijan")
    assert "Azerbaijan (AZ)" in step.text and "which platforms?" in step.text
    message = bot.fake.message(100, form.result["message_id"])
    step, _ = await bot.press(_as_call(form, message), "TikTok")
    assert "✅ TikTok" in labels(step)
    step, _ = await bot.press(_as_call(form, bot.fake.message(100, form.result["message_id"])), "WhatsApp")
    assert "✅ WhatsApp" in labels(step) and "Done (2)" in labels(step)
    step, _ = await bot.press(_as_call(form, bot.fake.message(100, form.result["message_id"])), "✅ TikTok")  # untoggled
    assert "TikTok" in labels(step) and "Done (1)" in labels(step)
    assert await watches_of(bot, 100) == []  # nothing until Done
    done, _ = await bot.press(_as_call(form, bot.fake.message(100, form.result["message_id"])), "Done")
    assert "Watching Azerbaijan (AZ): WhatsApp" in done.text and "?start=watch_AZ_whatsapp" in done.text
    assert await watches_of(bot, 100) == [("AZ", "whatsapp")]


@pytest.mark.parametrize("lang, which, everything", [("az", "Hansı ölkə?", "Bütün platformalar"), ("ru", "Какая страна?", "Все платформы")])
async def test_the_form_speaks_the_chats_language_and_all_platforms_is_one_tap(bot, lang, which, everything):
    await bot.say(f"/language {lang}")
    form = await bot.say("/watch")
    assert which in form.text
    await bot.press(form, 0)
    done, _ = await bot.press(_as_call(form, bot.fake.message(100, form.result["message_id"])), everything)
    assert len(await watches_of(bot, 100)) == len(catalog.PLATFORMS) == 11 and "?start=watch_" in done.text


async def test_done_with_nothing_chosen_cancel_and_another_persons_press_change_nothing(bot):
    bot.fake.set_chat_admins(GROUP, [501])
    form = await bot.say("/watch", chat_id=GROUP, user_id=501)
    step, _ = await bot.press(form, 0, user_id=501)
    current = _as_call(form, bot.fake.message(GROUP, form.result["message_id"]))
    _, answer = await bot.press(current, "Done", user_id=501)
    assert "at least one platform" in answer.params["text"]
    edited, answer = await bot.press(current, "TikTok", user_id=502)  # someone else in the group
    assert edited is None and "not valid" in answer.params["text"] and answer.params.get("show_alert")
    cancelled, _ = await bot.press(current, "Cancel", user_id=501)
    assert "nothing was added" in cancelled.text
    assert await watches_of(bot, GROUP) == []


async def test_a_forged_form_button_is_refused(bot):
    form = await bot.say("/watch")
    data = form.result["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    forged = data.replace(":p:", ":d:", 1) if ":p:" in data else data[:-2] + "AA"
    bot.fake.press_button(100, 100, form.result["message_id"], forged, forged=True)
    [answer] = await bot.fake.wait_for("answerCallbackQuery")
    assert "not valid" in answer.params["text"]
    assert await watches_of(bot, 100) == []


def _as_call(first, message: dict):
    """The form's message as it is now (after edits), shaped like the Call `bot.press` reads."""
    from dataclasses import replace

    return replace(first, response={"ok": True, "result": message})


# -- confirmations -------------------------------------------------------------------------------


@pytest.mark.parametrize("lang, asks, button, done", [
    ("en", "This deletes this chat's 2 watches", "Delete everything", "2 watches are deleted"),
    ("az", "2 izləməsini", "Hamısını sil", "2"),
    ("ru", "подписки этого чата (2)", "Удалить всё", "2"),
])
async def test_forgetme_asks_first_and_deletes_only_on_confirm(bot, lang, asks, button, done):
    await bot.say(f"/language {lang}")
    await bot.say("/watch AZ tiktok whatsapp")
    asked = await bot.say("/forgetme")
    assert asks in asked.text and labels(asked)[0] == button
    assert len(await watches_of(bot, 100)) == 2  # nothing deleted yet
    forgotten, _ = await bot.press(asked, 0)
    assert done in forgotten.text and "reply_markup" not in forgotten.params
    assert await watches_of(bot, 100) == [] and await bot.store.run(subscriptions.get_chat, 100) is None


async def test_unwatch_all_asks_first_and_cancel_keeps_everything(bot):
    await bot.say("/watch AZ tiktok whatsapp telegram")
    asked = await bot.say("/unwatch all")
    assert "This stops all 3 watches" in asked.text and labels(asked) == ["Stop all", "Cancel"]
    cancelled, _ = await bot.press(asked, 1)
    assert "nothing was changed" in cancelled.text
    assert len(await watches_of(bot, 100)) == 3
    stopped = await bot.confirm("/unwatch all")
    assert "Stopped watching" in stopped.text and await watches_of(bot, 100) == []
    assert "was not watching anything" in (await bot.say("/unwatch all")).text  # nothing to confirm


async def test_a_confirmation_expires(bot):
    await bot.say("/watch AZ tiktok")
    asked = await bot.say("/unwatch all")
    from datetime import timedelta

    from bot.clock import system_clock
    from bot.handlers.common import CONFIRM_TTL

    bot.services.clock = lambda: system_clock() + timedelta(seconds=CONFIRM_TTL + 1)  # the question is left too long
    expired, _ = await bot.press(asked, 0)
    assert "expired" in expired.text
    assert await watches_of(bot, 100) == [("AZ", "tiktok")]


async def test_only_the_person_who_asked_can_confirm(bot):
    bot.fake.set_chat_admins(GROUP, [501, 502])
    await bot.say("/watch AZ tiktok", chat_id=GROUP, user_id=501)
    asked = await bot.say("/unwatch all", chat_id=GROUP, user_id=501)
    edited, answer = await bot.press(asked, 0, user_id=502)
    assert edited is None and "not valid" in answer.params["text"]
    assert await watches_of(bot, GROUP) == [("AZ", "tiktok")]
