"""/watch, /unwatch, /watches and /status: what a chat follows and how it stands."""

from __future__ import annotations

import logging
from datetime import timedelta

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.ext import ContextTypes

from bot import buttons, catalog, chart_maker, recap, watch_form
from bot.clock import unix
from bot.handlers.common import (
    answer_confirmation, ask_to_confirm, chat_identity, edit_form, language_of, may_change_chat, read_confirmation, refuse_unless_admin,
    reply, reply_error, send_html, services, zone_of,
)
from bot.parsing import BadInput, WatchRequest, check_length, parse_status, parse_watch, split_args
from bot.render import country_title, render, render_plain
from bot.report_form import form_countries
from bot.status import load_statuses
from storage import events, findings, subscriptions

log = logging.getLogger(__name__)
FINDINGS_SHOWN_FOR = timedelta(days=7)  # a journalist asking later still sees what admins confirmed


def _share(context: ContextTypes.DEFAULT_TYPE, request: WatchRequest) -> str:
    payload = watch_form.deep_link_payload(request.country.code, request.platforms, request.all_platforms)
    return watch_form.share_link(context.bot.username, payload)


async def _add(update: Update, context: ContextTypes.DEFAULT_TYPE, request: WatchRequest) -> tuple[str, str]:
    """Subscribe the chat; (the watch_added text in the chat's language and zone, its language)."""
    store = services(context).store
    chat, added = await store.run(subscriptions.watch, *chat_identity(update), request.country.code, request.platforms)
    statuses = await store.run(load_statuses, request.country.code, request.platforms)
    text = render(
        "watch_added",
        chat["language"],
        zone=await zone_of(update, context),
        country=request.country,
        added=[catalog.PLATFORMS[name] for name in added],
        already=[catalog.PLATFORMS[name] for name in request.platforms if name not in added],
        statuses=statuses,
        all_platforms=request.all_platforms,
        share=_share(context, request),
    )
    return text, chat["language"]


async def watch(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if not context.args:
        if await refuse_unless_admin(update, context, "watch"):
            return
        await _send_form(update, context)
        return
    await watch_words(update, context, context.args)


async def watch_words(update: Update, context: ContextTypes.DEFAULT_TYPE, words: list[str]) -> None:
    """`/watch CC [platform…]`, also reached by a deep link (`/start watch_AZ_tiktok`)."""
    try:
        check_length(update.effective_message.text)
        request = parse_watch(words)
    except BadInput as error:
        await reply_error(update, context, error, "watch")
        return
    if await refuse_unless_admin(update, context, "watch"):
        return
    text, _ = await _add(update, context, request)
    await send_html(context, update.effective_chat.id, text)


# -- /watch without arguments: the button form ---------------------------------------------------


def _signer(context: ContextTypes.DEFAULT_TYPE, chat_id: int, user_id: int):
    expires = unix(services(context).clock()) + watch_form.FORM_TTL
    pseudonyms = services(context).pseudonyms
    return lambda payload: buttons.sign(pseudonyms, watch_form.CALLBACK_PREFIX, chat_id, user_id, payload, expires)


def _label(lang: str, kind: str, **values) -> str:
    return render_plain("watch_form", lang, kind=kind, **values)


def _country_keyboard(countries, lang: str, sign) -> InlineKeyboardMarkup:
    keys = [InlineKeyboardButton(country_title(c, lang), callback_data=sign(watch_form.step_payload(c.code, ()))) for c in countries]
    rows = [keys[i:i + 2] for i in range(0, len(keys), 2)]
    rows.append([InlineKeyboardButton(_label(lang, "button_cancel"), callback_data=sign(watch_form.CANCEL))])
    return InlineKeyboardMarkup(rows)


def _platform_keyboard(country: catalog.Country, chosen: tuple[str, ...], lang: str, sign) -> InlineKeyboardMarkup:
    keys = []
    for name, platform in catalog.PLATFORMS.items():
        toggled = tuple(p for p in chosen if p != name) if name in chosen else (*chosen, name)
        mark = "✅ " if name in chosen else ""
        keys.append(InlineKeyboardButton(mark + platform.title, callback_data=sign(watch_form.step_payload(country.code, toggled))))
    rows = [keys[i:i + 2] for i in range(0, len(keys), 2)]
    everything = tuple(catalog.PLATFORMS)
    rows.append([InlineKeyboardButton(_label(lang, "button_all"), callback_data=sign(watch_form.step_payload(country.code, everything, done=True)))])
    rows.append([
        InlineKeyboardButton(_label(lang, "button_done", count=len(chosen)), callback_data=sign(watch_form.step_payload(country.code, chosen, done=True))),
        InlineKeyboardButton(_label(lang, "button_cancel"), callback_data=sign(watch_form.CANCEL)),
    ])
    return InlineKeyboardMarkup(rows)


async def _send_form(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    store = services(context).store
    chat_id = update.effective_chat.id
    lang = await language_of(update, context)
    row = await store.run(subscriptions.get_chat, chat_id)
    own = [row["last_country"]] if row and row["last_country"] else []
    own += [country for country, _ in await store.run(subscriptions.chat_watches, chat_id)] if row else []
    popular = await store.run(subscriptions.most_watched_countries, watch_form.FORM_COUNTRIES)
    countries = watch_form.form_countries(own, popular, [c.code for c in form_countries([])])
    sign = _signer(context, chat_id, update.effective_user.id)
    await context.bot.send_message(
        chat_id,
        render("watch_form", lang, kind="country", minutes=watch_form.FORM_TTL // 60),
        parse_mode=ParseMode.HTML,
        reply_markup=_country_keyboard(countries, lang, sign),
    )


async def watch_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A press on the /watch form: the next step, the added watches, or a refusal that changes nothing."""
    query = update.callback_query
    lang = await language_of(update, context)
    if query.message is None or update.effective_user is None:
        await query.answer(_label(lang, "invalid"), show_alert=True)
        return
    chat_id, user_id = query.message.chat.id, update.effective_user.id
    meaning, payload = buttons.read(services(context).pseudonyms, watch_form.CALLBACK_PREFIX, chat_id, user_id, query.data, unix(services(context).clock()))
    step = watch_form.read_payload(payload) if meaning == "ok" and payload != watch_form.CANCEL else None
    if meaning == "invalid" or (meaning == "ok" and payload != watch_form.CANCEL and step is None):
        await query.answer(_label(lang, "invalid"), show_alert=True)
        return
    if meaning == "expired" or payload == watch_form.CANCEL:
        kind = "expired" if meaning == "expired" else "cancelled"
        await edit_form(query, render("watch_form", lang, kind=kind, minutes=watch_form.FORM_TTL // 60))
        await query.answer(_label(lang, kind))
        return
    action, country, chosen = step
    if action == "platforms" or not chosen:
        text = render("watch_form", lang, kind="platforms", country=country, minutes=watch_form.FORM_TTL // 60)
        await edit_form(query, text, _platform_keyboard(country, chosen, lang, _signer(context, chat_id, user_id)))
        await query.answer(_label(lang, "choose_one") if action == "done" else None)
        return
    if not await may_change_chat(update, context):
        await query.answer(_label(lang, "admins_only"), show_alert=True)
        return
    everything = set(chosen) == set(catalog.PLATFORMS)
    request = WatchRequest(country, tuple(catalog.PLATFORMS) if everything else chosen, all_platforms=everything)
    text, _ = await _add(update, context, request)
    await edit_form(query, text)
    await query.answer()


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
        watched = await store.run(subscriptions.chat_watches, chat_id)
        if watched:  # all of them: ask first
            await ask_to_confirm(update, context, UNWATCH_ALL_PREFIX, await language_of(update, context),
                                 kind="unwatch_all", watches=len(watched))
            return
        removed = []
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


UNWATCH_ALL_PREFIX = "ua"


async def unwatch_all_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Confirm of `/unwatch all`: every watch of the chat goes."""
    lang = await language_of(update, context)
    if await answer_confirmation(update, context, read_confirmation(update, context, UNWATCH_ALL_PREFIX), lang):
        return
    if not await may_change_chat(update, context):
        await update.callback_query.answer(_label(lang, "admins_only"), show_alert=True)
        return
    removed = await services(context).store.run(subscriptions.remove_watches, update.effective_chat.id)
    text = render("unwatched", lang, zone=await zone_of(update, context),
                  removed=[(catalog.find_country(cc), catalog.PLATFORMS[p]) for cc, p in removed], everything=True, country=None)
    await edit_form(update.callback_query, text)
    await update.callback_query.answer()


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
    store, lookup = services(context).store, services(context).status_lookup
    if lookup is not None:  # any country: what the poller does not fetch is fetched on demand
        statuses = await lookup.statuses(request.country.code, list(request.platforms))
    else:
        statuses = await store.run(load_statuses, request.country.code, request.platforms)
    platform = request.platforms[0] if len(request.platforms) == 1 else None
    since = services(context).clock() - FINDINGS_SHOWN_FOR
    recent = await store.run(findings.recent_findings, request.country.code, platform, since)
    if platform is None and not request.all_platforms:  # several named: their findings and the country-wide ones
        recent = [f for f in recent if f["platform"] in (None, *request.platforms)]
    await reply(update, context, "status", country=request.country, statuses=statuses, findings=recent)
    charts = services(context).charts
    # no chart where OONI was just asked and had nothing to draw (it would cost a 14-day history for an empty picture)
    if platform is not None and charts is not None and chart_maker.charted(platform) and statuses[0].state != "no_data":
        key = chart_maker.key_of(request.country.code, platform, services(context).clock())
        caption = render("chart_caption", await language_of(update, context), country=request.country, platform=catalog.PLATFORMS[platform])
        try:
            await charts.send(context.bot, update.effective_chat.id, key, caption)
        except chart_maker.ChartUnavailable as error:  # the status above answered; the picture needs OONI
            log.warning("/status without its chart: %s", error)


HISTORY_DAYS = 90
HISTORY_EVENTS = 2000  # a pair's events over 90 days are a handful; this bounds a pathological flapper


async def history(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """`/history CC [platform…]`: the blocks of the last 90 days, from the bot's own events."""
    try:
        check_length(update.effective_message.text)
        request = parse_status(context.args or [])
    except BadInput as error:
        await reply_error(update, context, error, "history")
        return
    now = services(context).clock()
    since = now - timedelta(days=HISTORY_DAYS)
    platform = request.platforms[0] if len(request.platforms) == 1 else None
    found = await services(context).store.run(
        events.recent_events, None, request.country.code, platform, HISTORY_EVENTS
    )
    wanted = set(request.platforms)
    shown = [b for b in recap.blocks([e for e in found if e["platform"] in wanted], now) if b.end is None or b.end >= since]
    await reply(update, context, "history", country=request.country, blocks=shown, limit=10, days=HISTORY_DAYS, since=since,
                platforms=[] if request.all_platforms else [catalog.PLATFORMS[p] for p in request.platforms])
