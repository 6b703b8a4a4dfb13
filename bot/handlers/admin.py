"""Admins' commands: /broadcast (preview, then Confirm or Cancel) and /stats.

Only user ids in ADMIN_IDS get past `refuse_unless_bot_admin`; every action is written to the
audit table. A broadcast goes out through the outbox like an alert: same rate limits, same faults.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.ext import ContextTypes

from bot import catalog, notifier, telegram_html
from bot.handlers.common import language_of, refuse_unless_bot_admin, reply, reply_error, services
from bot.parsing import BadInput, parse_country
from bot.render import TELEGRAM_LIMIT, render, render_plain, telegram_length
from storage import findings, subscriptions
from storage.db import transaction

DRAFT_TTL = timedelta(minutes=15)  # a preview left longer than this is stale: watchers may have changed
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


def _finding_texts(recipients: list[dict], country, platform, text: str) -> dict[str, str]:
    languages = {row["language"] or "en" for row in recipients} or {"en"}
    return {lang: render("finding", lang, country=country, platform=platform, text=text) for lang in languages}


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
    preview = render("finding", lang, country=country, platform=platform, text=text)
    if telegram_length(preview) > TELEGRAM_LIMIT - 200:  # room for the preview's own lines
        await reply(update, context, "errors", kind="too_long", command="broadcast",
                    length=telegram_length(preview), limit=TELEGRAM_LIMIT - 200)
        return
    store = services(context).store
    now = datetime.now(timezone.utc)
    recipients = await store.run(subscriptions.watchers, country.code, platform_name)
    draft_id = await store.run(findings.create_draft, update.effective_user.id, update.effective_chat.id,
                               country.code, platform_name, text, now)
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


def _decide(db, draft_id: int, user_id: int, confirm: bool, now: datetime) -> tuple[str, int]:
    """What a press on a preview's button does, decided in one transaction: (outcome, recipients)."""
    with transaction(db):
        draft = findings.get_draft(db, draft_id)
        if draft is None:
            return "unknown", 0
        if draft["admin_id"] != user_id:
            return "not_yours", 0
        if draft["status"] != "pending":
            return f"already_{draft['status']}", 0
        if not findings.close_draft(db, draft_id, "sent" if confirm else "cancelled", now - DRAFT_TTL):
            findings.close_draft(db, draft_id, "expired", datetime.min.replace(tzinfo=timezone.utc))
            findings.audit(db, user_id, "broadcast_expired", now, draft=draft_id)
            return "expired", 0
        if not confirm:
            findings.audit(db, user_id, "broadcast_cancelled", now, draft=draft_id)
            return "cancelled", 0
        # the watchers at the moment of Confirm, not of the preview: someone may have left since
        recipients = subscriptions.watchers(db, draft["country"], draft["platform"])
        country = catalog.find_country(draft["country"])
        platform = catalog.PLATFORMS.get(draft["platform"]) if draft["platform"] else None
        finding_id = findings.record_finding(db, user_id, draft["country"], draft["platform"], draft["text"],
                                             f"broadcast:{draft_id}", len(recipients), now)
        notifier.queue_text(db, [row["id"] for row in recipients], _finding_texts(recipients, country, platform, draft["text"]),
                            kind="finding", ref=f"finding:{finding_id}")
        findings.audit(db, user_id, "broadcast", now, finding=finding_id, country=draft["country"],
                       platform=draft["platform"], recipients=len(recipients))
        return "sent", len(recipients)


async def broadcast_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    parts = (query.data or "").split(":")
    lang = await language_of(update, context)
    if len(parts) != 3 or parts[1] not in ("ok", "no") or not parts[2].isdigit():
        await query.answer(render_plain("notice", lang, kind="stale_button"))
        return
    outcome, count = await services(context).store.run(
        _decide, int(parts[2]), update.effective_user.id, parts[1] == "ok", datetime.now(timezone.utc)
    )
    if outcome == "sent":
        await services(context).wake_sender()
    await query.answer(render_plain("notice", lang, kind=outcome, count=count))
    if outcome in ("sent", "cancelled", "expired"):
        await query.edit_message_text(
            render("broadcast_done", lang, outcome=outcome, count=count),
            parse_mode=ParseMode.HTML,
        )


def gather_stats(db, now: datetime) -> dict:
    """The figures /stats shows, read in one go on the DB thread."""
    from storage import events, outbox, reports  # the tables of other parts; imported here to keep this a leaf

    chats = db.execute("select count(*), coalesce(sum(paused), 0) from chats").fetchone()
    watches = list(db.query(
        "select country, platform, count(*) as chats from watches group by country, platform "
        "order by chats desc, country, platform"
    ))
    return {
        "chats": chats[0],
        "paused": chats[1],
        "watch_count": sum(row["chats"] for row in watches),
        "watches": watches,
        "events_week": events.count_events(db, now - timedelta(days=7)),
        "reports_day": reports.count_reports(db, now - timedelta(days=1)),
        "signals_day": reports.count_signals(db, now - timedelta(days=1)),
        "outbox": outbox.counts(db),
    }


async def stats(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if await refuse_unless_bot_admin(update, context, "stats"):
        return
    svc = services(context)
    figures = await svc.store.run(gather_stats, datetime.now(timezone.utc))
    last_poll = svc.poller.last if svc.poller is not None else None
    await reply(update, context, "stats", **figures, last_poll=last_poll, limit=15)
