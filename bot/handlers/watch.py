"""/watch, /unwatch, /watches and /status: what a chat follows and how it stands."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from telegram import Update
from telegram.ext import ContextTypes

from bot import catalog
from bot.handlers.common import chat_row, refuse_unless_admin, reply, reply_error, services
from bot.parsing import BadInput, check_length, parse_status, parse_watch, split_args
from bot.status import load_statuses
from storage import findings, subscriptions

FINDINGS_SHOWN_FOR = timedelta(days=7)  # a journalist asking later still sees what admins confirmed


async def watch(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    try:
        check_length(update.effective_message.text)
        request = parse_watch(context.args or [])
    except BadInput as error:
        await reply_error(update, context, error, "watch")
        return
    if await refuse_unless_admin(update, context, "watch"):
        return
    store = services(context).store
    chat = await chat_row(update, context)
    added = await store.run(subscriptions.add_watches, chat["id"], request.country.code, request.platforms)
    await store.run(subscriptions.set_last_country, chat["id"], request.country.code)
    statuses = await store.run(load_statuses, request.country.code, request.platforms)
    await reply(
        update,
        context,
        "watch_added",
        lang=chat["language"],
        country=request.country,
        added=[catalog.PLATFORMS[name] for name in added],
        already=[catalog.PLATFORMS[name] for name in request.platforms if name not in added],
        statuses=statuses,
        all_platforms=request.all_platforms,
    )


async def unwatch(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    words = split_args(context.args or [])
    try:
        check_length(update.effective_message.text)
        if not words:
            raise BadInput("no_country", all_allowed=True)
        request = None if [w.lower() for w in words] == ["all"] else parse_watch(words)
    except BadInput as error:
        await reply_error(update, context, error, "unwatch")
        return
    if await refuse_unless_admin(update, context, "unwatch"):
        return
    store = services(context).store
    chat_id = update.effective_chat.id
    if request is None:
        removed = await store.run(subscriptions.remove_watches, chat_id)
    else:
        platforms = None if request.all_platforms else request.platforms
        removed = await store.run(subscriptions.remove_watches, chat_id, request.country.code, platforms)
    await reply(
        update,
        context,
        "unwatched",
        removed=[(catalog.find_country(cc), catalog.PLATFORMS[p]) for cc, p in removed],
        everything=request is None,
        country=request.country if request else None,
    )


async def watches(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    store = services(context).store
    pairs = await store.run(subscriptions.chat_watches, update.effective_chat.id)
    by_country: dict[str, list[str]] = {}
    for country, platform in pairs:
        by_country.setdefault(country, []).append(platform)
    groups = []
    for country, platforms in by_country.items():
        groups.append((catalog.find_country(country), await store.run(load_statuses, country, platforms)))
    await reply(update, context, "watches", groups=groups)


async def status(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    try:
        check_length(update.effective_message.text)
        request = parse_status(context.args or [])
    except BadInput as error:
        await reply_error(update, context, error, "status")
        return
    store = services(context).store
    statuses = await store.run(load_statuses, request.country.code, request.platforms)
    platform = request.platforms[0] if len(request.platforms) == 1 else None
    since = datetime.now(timezone.utc) - FINDINGS_SHOWN_FOR
    recent = await store.run(findings.recent_findings, request.country.code, platform, since)
    if platform is None and not request.all_platforms:  # several named: their findings and the country-wide ones
        recent = [f for f in recent if f["platform"] in (None, *request.platforms)]
    await reply(update, context, "status", country=request.country, statuses=statuses, findings=recent)
