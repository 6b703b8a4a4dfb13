"""Admins' commands: /broadcast (preview, then Confirm or Cancel), /stats, and the review of crowd
signals: /signals, /confirm ID [note], /dismiss ID.

Only user ids in ADMIN_IDS get past `refuse_unless_bot_admin`; every action is written to the
audit table. A broadcast goes out through the outbox like an alert: same rate limits, same faults.
"""

from __future__ import annotations

import logging
import re

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.ext import ContextTypes

from bot import broadcasts, catalog, signals, telegram_html
from bot.broadcasts import DRAFT_TTL
from bot.clock import unix
from bot.handlers.common import language_of, refuse_unless_bot_admin, reply, reply_error, services
from bot.parsing import BadInput, check_length, parse_country
from bot.render import TELEGRAM_LIMIT, render, render_plain, telegram_length
from storage import drafts, stats as stats_store, subscriptions

log = logging.getLogger(__name__)

CALLBACK_PREFIX = "bc"


def split_broadcast(text: str) -> tuple[catalog.Country, str | None, str]:
    """'/broadcast AZ tiktok <b>text</b>…' → (country, platform or None, the admin's text as typed)."""
    body = text.split(maxsplit=1)[1] if len(text.split(maxsplit=1)) > 1 else ""
    words = body.split()
    if not words:
        raise BadInput("broadcast_usage")
    country, rest = parse_country(words)
    used = len(words) - len(rest)
    platform = catalog.find_platform(rest[0]) if rest else None
    if platform is not None:
        used += 1
    message = re.sub(r"^\s*(?:\S+\s+){%d}" % used, "", body + " ", count=1).strip() if used < len(words) else ""
    if not message:
        raise BadInput("no_broadcast_text")
    return country, platform.name if platform else None, message


async def broadcast(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if await refuse_unless_bot_admin(update, context, "broadcast"):
        return
    try:
        country, platform_name, text = split_broadcast(update.effective_message.text)
    except BadInput as error:
        await reply_error(update, context, error, "broadcast")
        return
    platform = catalog.PLATFORMS.get(platform_name) if platform_name else None
    lang = await language_of(update, context)
    if reason := telegram_html.problem(text):
        await reply(update, context, "errors", kind="bad_html", command="broadcast", reason=reason)
        return
    text = telegram_html.escape_lone_ampersands(text)
    preview = render("finding", lang, country=country, platform=platform, text=text)
    if telegram_length(preview) > TELEGRAM_LIMIT - 200:  # room for the preview's own lines
        await reply(update, context, "errors", kind="too_long", command="broadcast",
                    length=telegram_length(preview), limit=TELEGRAM_LIMIT - 200)
        return
    svc = services(context)
    recipients = await svc.store.run(subscriptions.watchers, country.code, platform_name)
    draft_id = await svc.store.run(drafts.create_draft, update.effective_user.id, update.effective_chat.id,
                                   country.code, platform_name, text, svc.clock())
    buttons = InlineKeyboardMarkup([[
        InlineKeyboardButton(render_plain("notice", lang, kind="button_confirm"), callback_data=f"{CALLBACK_PREFIX}:ok:{draft_id}"),
        InlineKeyboardButton(render_plain("notice", lang, kind="button_cancel"), callback_data=f"{CALLBACK_PREFIX}:no:{draft_id}"),
    ]])
    await context.bot.send_message(
        update.effective_chat.id,
        render("broadcast_preview", lang, preview=preview, recipients=len(recipients), minutes=int(DRAFT_TTL.total_seconds() // 60)),
        parse_mode=ParseMode.HTML,
        reply_markup=buttons,
        disable_web_page_preview=True,
    )


async def broadcast_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    parts = (query.data or "").split(":")
    lang = await language_of(update, context)
    if len(parts) != 3 or parts[1] not in ("ok", "no") or not parts[2].isdigit():
        await query.answer(render_plain("notice", lang, kind="stale_button"))
        return
    svc = services(context)
    outcome, count = await svc.store.run(
        broadcasts.decide, int(parts[2]), update.effective_user.id, parts[1] == "ok", svc.clock(), svc.settings.admin_ids
    )
    if outcome == "not_admin":
        log.warning("refused a broadcast's Confirm from someone no longer in ADMIN_IDS")
    if outcome == "sent":
        await svc.wake_sender()
    await query.answer(render_plain("notice", lang, kind=outcome, count=count))
    if outcome in ("sent", "cancelled", "expired"):
        await query.edit_message_text(
            render("broadcast_done", lang, outcome=outcome, count=count),
            parse_mode=ParseMode.HTML,
        )


async def stats(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if await refuse_unless_bot_admin(update, context, "stats"):
        return
    svc = services(context)
    figures = await svc.store.run(stats_store.figures, svc.clock())
    last_poll = svc.poller.last if svc.poller is not None else None
    await reply(update, context, "stats", **figures, last_poll=last_poll, limit=15)


# -- crowd signals: /signals, /confirm, /dismiss ----------------------------------------------


def _signal_id(args: list[str]) -> int | None:
    if not args:
        return None
    text = args[0].lstrip("#")
    return int(text) if text.isdigit() and len(text) < 10 else None


def _note_of(text: str) -> str | None:
    """The admin's note as typed after `/confirm ID` (spacing and lines kept)."""
    parts = re.split(r"\s+", text.strip(), maxsplit=2)
    return parts[2].strip()[:1000] if len(parts) > 2 and parts[2].strip() else None


async def list_signals(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if await refuse_unless_bot_admin(update, context, "signals"):
        return
    views, total = await signals.pending(services(context))
    await reply(update, context, "signals", views=views, total=total)


async def _review(update: Update, context: ContextTypes.DEFAULT_TYPE, command: str) -> None:
    if await refuse_unless_bot_admin(update, context, command):
        return
    text = update.effective_message.text or ""
    signal_id = _signal_id(context.args or [])
    if signal_id is None:
        await reply(update, context, "signal_reply", kind="no_id", command=command, signal_id=None, count=0, note=None)
        return
    try:
        check_length(text)
    except BadInput as error:
        await reply_error(update, context, error, command)
        return
    note = _note_of(text) if command == "confirm" else None
    lang = await language_of(update, context) if command == "confirm" else None
    svc = services(context)
    outcome, count = await signals.review(svc, command, signal_id, note, unix(svc.clock()), update.effective_user.id, lang)
    await reply(update, context, "signal_reply", kind=outcome, command=command, signal_id=signal_id, count=count, note=note)


async def confirm(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _review(update, context, "confirm")


async def dismiss(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _review(update, context, "dismiss")
