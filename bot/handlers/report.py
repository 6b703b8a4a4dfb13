"""Crowd reports in chat: /report, typed in full or filled in with buttons (admins review the signals
they make in bot/handlers/admin.py). Thin: parse (bot/report_form.py) → call (bot/signals/) → render
→ reply; the keyboards are drawn here.

Reporters stay safe here: the reporter's chat is never stored by /report (in a private chat its id
is the user's id); the user's id goes no further than bot/signals/, which keeps a pseudonym only.
"""

from __future__ import annotations

import html
from dataclasses import replace

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.ext import ContextTypes

from bot import catalog, signals
from bot.crowd import Rules
from bot.clock import unix
from bot.handlers.common import edit_form, language_of, reply, reply_error, services
from bot.parsing import BadInput, check_length
from bot.render import country_title, render
from bot.report_form import CANCEL, FORM_TTL, ReportDraft, encode, form_countries, next_step, parse_report, read_button, signer
from bot.signals import Outcome
from storage import subscriptions

# -- what the templates are given --------------------------------------------------------------


def _label(lang: str, kind: str, **values) -> str:
    """A button label or a callback notice: plain text (Telegram shows no HTML there)."""
    return html.unescape(render("report_label", lang, kind=kind, **values))


def _view(draft: ReportDraft) -> dict:
    """The template's view of a draft."""
    return {
        "country": catalog.find_country(draft.country) if draft.country else None,
        "platform": catalog.PLATFORMS[draft.platform] if draft.platform else None,
        "symptom": draft.symptom,
        "asn": draft.asn,
        "network": draft.network,
        "note": draft.note,
    }


def _done_values(draft: ReportDraft, outcome: Outcome, rules: Rules) -> dict:
    return {**_view(draft), "outcome": outcome.verdict, "needed": rules.min_reporters,
            "window": rules.window, "limit": rules.burst_limit}


def _keyboard(step: str, draft: ReportDraft, lang: str, sign, chat_countries: list[str]) -> InlineKeyboardMarkup:
    """The buttons of one step; `sign(payload)` makes a button's callback data."""
    buttons: list[InlineKeyboardButton] = []
    per_row = 2
    if step == "country":
        for country in form_countries(chat_countries):
            buttons.append(InlineKeyboardButton(country_title(country, lang), callback_data=sign(encode(replace(draft, country=country.code)))))
    elif step == "platform":
        per_row = 3
        for name, platform in catalog.PLATFORMS.items():
            buttons.append(InlineKeyboardButton(platform.title, callback_data=sign(encode(replace(draft, platform=name)))))
    elif step == "symptom":
        per_row = 1
        for symptom in ("blocked", "slow", "down"):
            buttons.append(InlineKeyboardButton(_label(lang, symptom), callback_data=sign(encode(replace(draft, symptom=symptom)))))
    elif step == "network":
        for network in catalog.country_networks(draft.country)[:8]:
            chosen = replace(draft, asn=network.asn, network=network.name, network_asked=True)
            buttons.append(InlineKeyboardButton(f"{_short_name(network.name)} (AS{network.asn})", callback_data=sign(encode(chosen))))
        buttons.append(InlineKeyboardButton(_label(lang, "no_network"), callback_data=sign(encode(replace(draft, network_asked=True)))))
    rows = [buttons[i:i + per_row] for i in range(0, len(buttons), per_row)]
    rows.append([InlineKeyboardButton(_label(lang, "button_cancel"), callback_data=sign(CANCEL))])
    return InlineKeyboardMarkup(rows)


def _short_name(name: str) -> str:
    words = [w for w in name.split() if w.lower().strip(".,") not in ("llc", "ltd", "jsc", "cjsc", "pjsc", "ojsc", "plc", "inc", "limited")]
    return " ".join(words) or name


# -- /report -----------------------------------------------------------------------------------


async def _chat_countries(update: Update, context: ContextTypes.DEFAULT_TYPE) -> list[str]:
    """The chat's last country, then those it watches — read only: /report never stores the chat."""
    store = services(context).store
    chat_id = update.effective_chat.id
    row = await store.run(subscriptions.get_chat, chat_id)
    watched = await store.run(subscriptions.chat_watches, chat_id) if row else []
    countries = [row["last_country"]] if row and row["last_country"] else []
    return list(dict.fromkeys([*countries, *(country for country, _ in watched)]))


def _now(context: ContextTypes.DEFAULT_TYPE) -> int:
    return unix(services(context).clock())


def _signer(context: ContextTypes.DEFAULT_TYPE, chat_id: int, user_id: int):
    return signer(services(context).pseudonyms, chat_id, user_id, _now(context))


async def _submit(update: Update, context: ContextTypes.DEFAULT_TYPE, draft: ReportDraft) -> Outcome:
    return await signals.submit(services(context), update.effective_user.id, draft, _now(context))


async def report(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if update.effective_user is None or update.effective_message.sender_chat is not None:
        await reply(update, context, "report_done", outcome="anonymous", **_view(ReportDraft()),
                    needed=0, window=0, limit=0)
        return
    chat_countries = await _chat_countries(update, context)
    try:
        check_length(update.effective_message.text)
        draft = parse_report(context.args or [], chat_countries[0] if chat_countries else None)
    except BadInput as error:
        await reply_error(update, context, error, "report")
        return
    lang = await language_of(update, context)
    if not draft.complete:
        await _send_form(update, context, draft, lang, chat_countries)
        return
    outcome = await _submit(update, context, draft)
    await reply(update, context, "report_done", lang=lang, **_done_values(draft, outcome, signals.rules_of(services(context))))


async def _send_form(update, context, draft: ReportDraft, lang: str, chat_countries: list[str]) -> None:
    step = next_step(draft)
    sign = _signer(context, update.effective_chat.id, update.effective_user.id)
    await context.bot.send_message(
        update.effective_chat.id,
        render("report_form", lang, step=step, minutes=FORM_TTL // 60, **_view(draft)),
        parse_mode=ParseMode.HTML,
        reply_markup=_keyboard(step, draft, lang, sign, chat_countries),
        disable_web_page_preview=True,
    )


async def report_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A press on the form: the next step, the stored report, or a refusal that changes nothing."""
    query = update.callback_query
    lang = await language_of(update, context)
    if query.message is None or update.effective_user is None:
        await query.answer(_label(lang, "invalid"), show_alert=True)
        return
    chat_id, user_id = query.message.chat.id, update.effective_user.id
    meaning, value = read_button(services(context).pseudonyms, chat_id, user_id, query.data, _now(context))
    if meaning == "invalid":
        await query.answer(_label(lang, "invalid"), show_alert=True)
        return
    # the message changes first and the press is answered last, so "answered" means "done"
    if meaning in ("expired", "cancel"):
        await edit_form(query, render("report_form", lang, step=meaning, minutes=FORM_TTL // 60, **_view(ReportDraft())))
        await query.answer(_label(lang, meaning))
        return
    draft: ReportDraft = value
    step = next_step(draft)
    if step is not None:
        chat_countries = await _chat_countries(update, context) if step == "country" else []
        await edit_form(
            query,
            render("report_form", lang, step=step, minutes=FORM_TTL // 60, **_view(draft)),
            _keyboard(step, draft, lang, _signer(context, chat_id, user_id), chat_countries),
        )
        await query.answer()
        return
    outcome = await _submit(update, context, draft)
    await edit_form(query, render("report_done", lang, **_done_values(draft, outcome, signals.rules_of(services(context)))))
    await query.answer(_label(lang, outcome.verdict))
