"""The chat's clock: /timezone (every time shown on it) and /quiet (alerts in those hours come silently)."""

from __future__ import annotations

from telegram import Update
from telegram.ext import ContextTypes

from bot.chat_clock import UTC_NAME, BadClock, parse_window, parse_zone
from bot.handlers.common import chat_row, refuse_unless_admin, reply, services
from storage import chat_settings


async def _settings(update: Update, context: ContextTypes.DEFAULT_TYPE) -> chat_settings.ChatSettings:
    return await services(context).store.run(chat_settings.get, update.effective_chat.id)


async def timezone_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    text = " ".join(context.args or [])
    now = services(context).clock()
    if not text:
        settings = await _settings(update, context)
        await reply(update, context, "chat_clock", kind="zone_now", zone_name=settings.zone or UTC_NAME, now=now)
        return
    try:
        zone = parse_zone(text)
    except BadClock as error:
        await reply(update, context, "chat_clock", kind=error.kind, text=text[:64])
        return
    if await refuse_unless_admin(update, context, "timezone"):
        return
    chat = await chat_row(update, context)
    await services(context).store.run(chat_settings.set_zone, chat["id"], None if zone == UTC_NAME else zone)
    await reply(update, context, "chat_clock", lang=chat["language"], kind="zone_set", zone_name=zone, now=now)


async def quiet(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    text = " ".join(context.args or [])
    settings = await _settings(update, context)
    zone = settings.zone or UTC_NAME
    now = services(context).clock()
    if not text:
        await reply(update, context, "chat_clock", kind="quiet_now", window=settings.quiet, zone_name=zone, now=now)
        return
    window = None
    if text.lower() not in ("off", "no", "none"):
        try:
            window = parse_window(text).text()
        except BadClock as error:
            await reply(update, context, "chat_clock", kind=error.kind, text=text[:64])
            return
    if await refuse_unless_admin(update, context, "quiet"):
        return
    chat = await chat_row(update, context)
    await services(context).store.run(chat_settings.set_quiet, chat["id"], window)
    await reply(update, context, "chat_clock", lang=chat["language"], kind="quiet_set", window=window, zone_name=zone, now=now)
