"""The chat's clock: /timezone (every time shown on it), /quiet (alerts in those hours come silently),
/mute and /unmute (alerts held back, then summed up), /digest (a daily summary at a local time)."""

from __future__ import annotations

from telegram import Update
from telegram.ext import ContextTypes

from bot import catalog
from bot.clock import unix
from bot.chat_clock import UTC_NAME, BadClock, local_day, parse_clock, parse_duration, parse_window, parse_zone
from bot.chat_clock import zone as zone_of_name
from bot.handlers.common import chat_row, refuse_unless_admin, reply, reply_error, services
from bot.parsing import BadInput, check_length, parse_mute
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


# -- /mute, /unmute: alerts held back, summed up in one message when the mute ends ---------------------


async def mute(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    try:
        check_length(update.effective_message.text)
        request = parse_mute(context.args or [])
        length = parse_duration(request.words_of_duration)
    except BadInput as error:
        await reply_error(update, context, error, "mute")
        return
    except BadClock as error:
        await reply(update, context, "chat_clock", kind=error.kind, text=error.text[:64])
        return
    if await refuse_unless_admin(update, context, "mute"):
        return
    chat = await chat_row(update, context)
    now = services(context).clock()
    until = now + length
    await services(context).store.run(
        chat_settings.add_mute, chat["id"], request.country.code if request.country else "", request.platform or "",
        unix(now), unix(until),
    )
    await reply(update, context, "chat_clock", lang=chat["language"], kind="muted", until=until, length=length,
                country=request.country, platform=catalog.PLATFORMS.get(request.platform or ""))


async def unmute(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if await refuse_unless_admin(update, context, "unmute"):
        return
    svc = services(context)
    mutes = await svc.store.run(chat_settings.mutes_of, update.effective_chat.id)
    await reply(update, context, "chat_clock", kind="unmuted", count=len(mutes))
    if mutes:  # each mute's summary follows through the outbox
        await svc.chat_jobs.unmute(update.effective_chat.id)


# -- /digest HH:MM: the last 24 h of this chat's watches, every day at that local time ----------------


async def digest(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    text = " ".join(context.args or [])
    settings = await _settings(update, context)
    zone = settings.zone or UTC_NAME
    if not text:
        await reply(update, context, "chat_clock", kind="digest_now", at=settings.digest_at, zone_name=zone)
        return
    at = None
    if text.lower() not in ("off", "no", "none"):
        try:
            at = parse_clock(text).strftime("%H:%M")
        except BadClock:
            await reply(update, context, "chat_clock", kind="bad_digest", text=text[:64])
            return
    if await refuse_unless_admin(update, context, "digest"):
        return
    chat = await chat_row(update, context)
    now = services(context).clock()
    store = services(context).store
    await store.run(chat_settings.set_digest, chat["id"], at)
    if at is not None and parse_clock(at) <= now.astimezone(zone_of_name(zone)).time():
        # today's time has passed: the first digest is tomorrow's, not one right now
        await store.run(chat_settings.mark_digest, chat["id"], local_day(now, zone).isoformat())
    await reply(update, context, "chat_clock", lang=chat["language"], kind="digest_set", at=at, zone_name=zone)
