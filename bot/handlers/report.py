"""Crowd reports in chat: /report (typed in full, or filled in with buttons), and admins' review of
the signals they make: /signals, /confirm ID [note], /dismiss ID.

Reporters stay safe here: a report is stored under a keyed pseudonym only (bot/pseudonym.py); the
reporter's chat is never stored by /report (in a private chat its id is the user's id); nothing
logged names a reporter or their chat; admins see counts and networks, never who.

The button form keeps no state: each button carries the form so far — country, platform, symptom,
network — with an expiry time and a signature over it, the chat and the user
(`rp:AZ:3:b:28787:<expiry>:<signature>`, under 64 bytes). A forged button, another person's, or
one from an old form is refused without touching anything.
"""

from __future__ import annotations

import asyncio
import functools
import html
import logging
import re
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from bot import catalog, crowd, notifier
from bot.crowd import Assessment, Report, Rules
from bot.handlers.common import language_of, refuse_unless_bot_admin, reply, reply_error, services
from bot.parsing import BadInput, check_length, parse_country, split_args
from bot.pseudonym import Pseudonyms
from bot.render import country_title, render
from bot.services import Services
from bot.status import load_statuses
from storage import findings, reports, subscriptions
from storage.db import transaction

log = logging.getLogger(__name__)

CALLBACK_PREFIX = "rp"
FORM_TTL = 600  # seconds a form's buttons stay valid after its last step
MAX_NOTE = 300  # characters of free text kept with a report
PURGE_EVERY = 3600  # seconds between retention purges
SWEEP_EVERY = 600  # seconds between looks for signals no report raised
FORM_COUNTRIES = 12  # country buttons on the form's first step

# What people type for a symptom, in the bot's three languages
SYMPTOM_WORDS = {
    "blocked": "blocked", "block": "blocked", "blocking": "blocked", "banned": "blocked", "censored": "blocked",
    "bloklanib": "blocked", "bloklanıb": "blocked", "blok": "blocked", "bağlanıb": "blocked", "baglanib": "blocked",
    "заблокирован": "blocked", "заблокировано": "blocked", "заблокирована": "blocked", "блок": "blocked",
    "blokirovka": "blocked", "блокировка": "blocked",
    "slow": "slow", "slowly": "slow", "throttled": "slow", "lag": "slow", "laggy": "slow",
    "yavaş": "slow", "yavas": "slow", "zəif": "slow", "zeif": "slow",
    "медленно": "slow", "медленный": "slow", "медленная": "slow", "тормозит": "slow", "тормозят": "slow",
    "down": "down", "outage": "down", "offline": "down", "broken": "down", "dead": "down",
    "işləmir": "down", "islemir": "down", "açılmır": "down", "acilmir": "down",
    "лежит": "down", "недоступен": "down", "недоступна": "down", "упал": "down", "нет": "down",
}
SYMPTOM_CODES = {"blocked": "b", "slow": "s", "down": "d"}
CODE_SYMPTOMS = {code: name for name, code in SYMPTOM_CODES.items()}
NO_NETWORK = 0  # the form's "I don't know / another network"


# -- what a report is, parsed ------------------------------------------------------------------


@dataclass(frozen=True)
class ReportDraft:
    """A report as far as it is known; the form asks for what is missing."""

    country: str | None = None
    platform: str | None = None
    symptom: str | None = None
    asn: int | None = None
    network: str | None = None  # the network's registered name when the ASN is a known one
    network_asked: bool = False  # the form asked for the network (an answer may be "don't know")
    note: str | None = None

    @property
    def complete(self) -> bool:
        return self.country is not None and self.platform is not None and self.symptom is not None


def find_symptom(word: str) -> str | None:
    return SYMPTOM_WORDS.get(word.casefold().strip(".,!?:;"))


def clean_note(words: list[str]) -> str | None:
    """Free words as a short single-line note; control characters dropped (they are shown to admins)."""
    text = " ".join(words)
    text = "".join(ch for ch in text if ch.isprintable()).strip()
    return text[:MAX_NOTE] or None


def _network(country: str, words: list[str]) -> tuple[int | None, str | None, list[str]]:
    """A network named by the leading words (an ASN, or a known operator's name), and the words left."""
    if not words:
        return None, None, words
    for size in range(min(3, len(words)), 0, -1):
        found = catalog.find_network(country, " ".join(words[:size]))
        if found is not None:
            return found.asn, found.name, words[size:]
    asn = catalog.parse_asn(words[0])
    if asn is not None:  # an ASN we do not know for that country: kept as typed
        return asn, catalog.network_name(asn), words[1:]
    return None, None, words


def parse_report(args: list[str], default_country: str | None = None) -> ReportDraft:
    """`/report [CC] platform symptom [network] [words…]` → what is known; raises BadInput.

    The country may be left out when the chat has one (`default_country`). Leaving out the
    platform or the symptom is not an error: the form then asks for them."""
    words = split_args(args)
    if not words:
        return ReportDraft(country=None)
    country: str | None = None
    # "yt slow" is YouTube, not Mayotte: a leading platform followed by a symptom (or nothing) names no country
    if catalog.find_platform(words[0]) is not None and (len(words) == 1 or find_symptom(words[1])):
        rest = words
    else:
        try:
            found, rest = parse_country(words)
        except BadInput:
            if catalog.find_platform(words[0]) is not None:
                rest = words
            else:
                raise
        else:
            country = found.code
    country = country or default_country
    if not rest:
        return ReportDraft(country=country)
    platform = catalog.find_platform(rest[0])
    if platform is None:
        suggestion = catalog.suggest_platform(rest[0])
        raise BadInput("unknown_platform", text=rest[0], suggestion=suggestion.name if suggestion else None)
    if len(rest) == 1:
        return ReportDraft(country=country, platform=platform.name)
    symptom = find_symptom(rest[1])
    if symptom is None:
        raise BadInput("unknown_symptom", text=rest[1][:40])
    asn, network, note_words = _network(country, rest[2:]) if country else (None, None, rest[2:])
    return ReportDraft(country, platform.name, symptom, asn, network, network_asked=asn is not None, note=clean_note(note_words))


# -- the form's buttons ------------------------------------------------------------------------

_PLATFORM_NAMES = tuple(catalog.PLATFORMS)


def _encode(draft: ReportDraft) -> str:
    platform = str(_PLATFORM_NAMES.index(draft.platform)) if draft.platform else "-"
    symptom = SYMPTOM_CODES[draft.symptom] if draft.symptom else "-"
    network = "-" if not draft.network_asked else str(draft.asn or NO_NETWORK)
    return f"{draft.country or '-'}:{platform}:{symptom}:{network}"


def _decode(payload: str) -> ReportDraft | None:
    parts = payload.split(":")
    if len(parts) != 4:
        return None
    country, platform, symptom, network = parts
    draft = ReportDraft()
    if country != "-":
        found = catalog.find_country(country) if len(country) == 2 else None
        if found is None:
            return None
        draft = replace(draft, country=found.code)
    if platform != "-":
        if not (platform.isdigit() and int(platform) < len(_PLATFORM_NAMES)):
            return None
        draft = replace(draft, platform=_PLATFORM_NAMES[int(platform)])
    if symptom != "-":
        if symptom not in CODE_SYMPTOMS:
            return None
        draft = replace(draft, symptom=CODE_SYMPTOMS[symptom])
    if network != "-":
        if not network.isdigit() or len(network) > 10:
            return None
        asn = int(network)
        if asn != NO_NETWORK:
            known = catalog.find_network(draft.country or "", str(asn))
            if known is None:  # the form only offers the country's known networks
                return None
            draft = replace(draft, asn=asn, network=known.name)
        draft = replace(draft, network_asked=True)
    return draft


def _button_data(pseudonyms: Pseudonyms, chat_id: int, user_id: int, payload: str, expires: int) -> str:
    expiry = _base36(expires)
    signature = pseudonyms.sign(f"{chat_id}:{user_id}:{payload}:{expiry}")
    return f"{CALLBACK_PREFIX}:{payload}:{expiry}:{signature}"


def read_button(pseudonyms: Pseudonyms, chat_id: int, user_id: int, data: str, now: int) -> tuple[str, str | ReportDraft]:
    """What a pressed button means: ("ok", draft) | ("cancel", "") | ("expired", "") | ("invalid", reason)."""
    head, _, rest = (data or "").partition(":")
    parts = rest.rsplit(":", 2)
    if head != CALLBACK_PREFIX or len(parts) != 3:
        return "invalid", "malformed"
    payload, expiry, signature = parts
    if not pseudonyms.verify(f"{chat_id}:{user_id}:{payload}:{expiry}", signature):
        return "invalid", "signature"  # forged, or another person's form
    try:
        expires = int(expiry, 36)
    except ValueError:
        return "invalid", "malformed"
    if expires < now:
        return "expired", ""
    if payload == "x":
        return "cancel", ""
    draft = _decode(payload)
    if draft is None:
        return "invalid", "malformed"
    return "ok", draft


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out


def _label(lang: str, kind: str, **values) -> str:
    """A button label or a callback notice: plain text (Telegram shows no HTML there)."""
    return html.unescape(render("report_label", lang, kind=kind, **values))


def next_step(draft: ReportDraft) -> str | None:
    if draft.country is None:
        return "country"
    if draft.platform is None:
        return "platform"
    if draft.symptom is None:
        return "symptom"
    if not draft.network_asked and catalog.country_networks(draft.country):
        return "network"
    return None


def _form_countries(chat_countries: list[str]) -> list[catalog.Country]:
    """The chat's own countries first, then those whose networks we know."""
    codes = list(dict.fromkeys([*chat_countries, *_network_countries()]))[:FORM_COUNTRIES]
    return [country for country in map(catalog.find_country, codes) if country is not None]


@functools.cache
def _network_countries() -> tuple[str, ...]:
    return tuple(country.code for country in catalog.all_countries() if catalog.country_networks(country.code))


def _keyboard(step: str, draft: ReportDraft, lang: str, sign, chat_countries: list[str]) -> InlineKeyboardMarkup:
    """The buttons of one step; `sign(payload)` makes a button's callback data."""
    buttons: list[InlineKeyboardButton] = []
    per_row = 2
    if step == "country":
        for country in _form_countries(chat_countries):
            buttons.append(InlineKeyboardButton(country_title(country, lang), callback_data=sign(_encode(replace(draft, country=country.code)))))
    elif step == "platform":
        per_row = 3
        for name, platform in catalog.PLATFORMS.items():
            buttons.append(InlineKeyboardButton(platform.title, callback_data=sign(_encode(replace(draft, platform=name)))))
    elif step == "symptom":
        per_row = 1
        for symptom in ("blocked", "slow", "down"):
            buttons.append(InlineKeyboardButton(_label(lang, symptom), callback_data=sign(_encode(replace(draft, symptom=symptom)))))
    elif step == "network":
        for network in catalog.country_networks(draft.country)[:8]:
            chosen = replace(draft, asn=network.asn, network=network.name, network_asked=True)
            buttons.append(InlineKeyboardButton(f"{_short_name(network.name)} (AS{network.asn})", callback_data=sign(_encode(chosen))))
        buttons.append(InlineKeyboardButton(_label(lang, "no_network"), callback_data=sign(_encode(replace(draft, network_asked=True)))))
    rows = [buttons[i:i + per_row] for i in range(0, len(buttons), per_row)]
    rows.append([InlineKeyboardButton(_label(lang, "button_cancel"), callback_data=sign("x"))])
    return InlineKeyboardMarkup(rows)


def _short_name(name: str) -> str:
    words = [w for w in name.split() if w.lower().strip(".,") not in ("llc", "ltd", "jsc", "cjsc", "pjsc", "ojsc", "plc", "inc", "limited")]
    return " ".join(words) or name


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


# -- storing a report, and the signal it may make -----------------------------------------------


@dataclass(frozen=True)
class Outcome:
    verdict: str  # crowd.ACCEPT | crowd.DUPLICATE | crowd.TOO_MANY
    signal_id: int | None = None  # a signal this report opened


def pseudonyms_of(svc: Services) -> Pseudonyms:
    wire(svc)
    return svc.extras["pseudonyms"]


def rules_of(svc: Services) -> Rules:
    return Rules.from_settings(svc.settings)


def _languages(db, chat_ids) -> dict[int, str]:
    languages = {}
    for chat_id in chat_ids:
        row = subscriptions.get_chat(db, chat_id)
        languages[chat_id] = (row["language"] if row else None) or "en"
    return languages


def _pair_status(db, country: str, platform: str):
    return load_statuses(db, country, [platform])[0]


def _utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


def _signal_view(db, signal: dict, rules: Rules) -> dict:
    """What a signal's messages show: the crowd's numbers and the detector's evidence for the pair."""
    signal = {**signal, "first": _utc(signal["first_at"]), "last": _utc(signal["last_at"])}
    return {
        "signal": signal,
        "country": catalog.find_country(signal["country"]),
        "platform": catalog.PLATFORMS[signal["platform"]],
        "status": _pair_status(db, signal["country"], signal["platform"]),
        "notes": reports.recent_notes(db, signal["country"], signal["platform"], signal["first_at"] - 1),
        "window": rules.window,
    }


def raise_signal(db, assessment: Assessment | None, now: int, rules: Rules, admin_ids) -> int | None:
    """Grow the pair's pending signal, or open one when the assessment crosses and queue it to every
    admin; returns the id of a signal it opened."""
    if assessment is None:
        return None
    pending = reports.pending_signal(db, assessment.country, assessment.platform)
    if pending is not None:
        reports.update_signal(db, pending["id"], assessment)
        return None
    if not assessment.is_signal:
        return None
    signal_id = reports.open_signal(db, assessment, now)
    admins = sorted(admin_ids)
    if admins:
        view = _signal_view(db, reports.get_signal(db, signal_id), rules)
        languages = _languages(db, admins)
        texts = {lang: render("signal_alert", lang, **view) for lang in set(languages.values())}
        notifier.queue_text(db, admins, texts, kind="signal", ref=f"signal:{signal_id}")
    return signal_id


def accept_report(db, reporter: bytes, draft: ReportDraft, now: int, rules: Rules, admin_ids) -> Outcome:
    """Throttle, store, re-assess the pair and, when it first crosses, open a signal for the admins —
    one transaction, so a crash leaves the report and its signal both or neither."""
    with transaction(db):
        recent = reports.reporter_reports(db, reporter, now - crowd.lookback(rules))
        verdict = crowd.throttle(recent, country=draft.country, platform=draft.platform, now=now, rules=rules)
        if verdict != crowd.ACCEPT:
            return Outcome(verdict)
        reports.add_report(db, Report(reporter, draft.country, draft.platform, draft.symptom, now, draft.asn, draft.note))
        assessment = reports.assess_pair(db, draft.country, draft.platform, now, rules)
        return Outcome(verdict, raise_signal(db, assessment, now, rules, admin_ids))


def sweep(db, now: int, rules: Rules, admin_ids) -> list[int]:
    """Every pair that makes a signal now but has none open (SIGNAL_MIN_REPORTERS lowered, a restart):
    open it. Returns the ids opened."""
    opened = []
    for assessment in reports.evaluate(db, now, rules):
        with transaction(db):
            signal_id = raise_signal(db, assessment, now, rules, admin_ids)
        if signal_id is not None:
            opened.append(signal_id)
    return opened


async def _submit(update: Update, context: ContextTypes.DEFAULT_TYPE, draft: ReportDraft) -> Outcome:
    svc = services(context)
    reporter = pseudonyms_of(svc).reporter(update.effective_user.id)
    outcome = await svc.store.run(accept_report, reporter, draft, int(time.time()), rules_of(svc), svc.settings.admin_ids)
    if outcome.signal_id is not None:
        await _opened(svc, [outcome.signal_id])
    return outcome


async def _opened(svc: Services, signal_ids: list[int]) -> None:
    for signal_id in signal_ids:
        log.info("crowd signal #%s opened", signal_id)
        if not svc.settings.admin_ids:
            log.warning("crowd signal #%s has no one to review it: ADMIN_IDS is empty", signal_id)
    if signal_ids and (sender := svc.extras.get("sender")):
        await sender.wake()


def _done_values(draft: ReportDraft, outcome: Outcome, rules: Rules) -> dict:
    return {**_view(draft), "outcome": outcome.verdict, "needed": rules.min_reporters,
            "window": rules.window, "limit": rules.burst_limit}


# -- /report -----------------------------------------------------------------------------------


async def _chat_countries(update: Update, context: ContextTypes.DEFAULT_TYPE) -> list[str]:
    """The chat's last country, then those it watches — read only: /report never stores the chat."""
    store = services(context).store
    chat_id = update.effective_chat.id
    row = await store.run(subscriptions.get_chat, chat_id)
    watched = await store.run(subscriptions.chat_watches, chat_id) if row else []
    countries = [row["last_country"]] if row and row["last_country"] else []
    return list(dict.fromkeys([*countries, *(country for country, _ in watched)]))


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
    await reply(update, context, "report_done", lang=lang, **_done_values(draft, outcome, rules_of(services(context))))


def _signer(context: ContextTypes.DEFAULT_TYPE, chat_id: int, user_id: int):
    pseudonyms = pseudonyms_of(services(context))
    expires = int(time.time()) + FORM_TTL
    return lambda payload: _button_data(pseudonyms, chat_id, user_id, payload, expires)


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


async def _edit(query, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
    try:
        await query.edit_message_text(text, parse_mode=ParseMode.HTML, reply_markup=markup, disable_web_page_preview=True)
    except BadRequest as error:
        if "not modified" not in str(error).lower():  # the same form pressed twice: nothing to change
            raise


async def report_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A press on the form: the next step, the stored report, or a refusal that changes nothing."""
    query = update.callback_query
    lang = await language_of(update, context)
    if query.message is None or update.effective_user is None:
        await query.answer(_label(lang, "invalid"), show_alert=True)
        return
    chat_id, user_id = query.message.chat.id, update.effective_user.id
    meaning, value = read_button(pseudonyms_of(services(context)), chat_id, user_id, query.data, int(time.time()))
    if meaning == "invalid":
        await query.answer(_label(lang, "invalid"), show_alert=True)
        return
    # the message changes first and the press is answered last, so "answered" means "done"
    if meaning in ("expired", "cancel"):
        await _edit(query, render("report_form", lang, step=meaning, minutes=FORM_TTL // 60, **_view(ReportDraft())))
        await query.answer(_label(lang, meaning))
        return
    draft: ReportDraft = value
    step = next_step(draft)
    if step is not None:
        chat_countries = await _chat_countries(update, context) if step == "country" else []
        await _edit(
            query,
            render("report_form", lang, step=step, minutes=FORM_TTL // 60, **_view(draft)),
            _keyboard(step, draft, lang, _signer(context, chat_id, user_id), chat_countries),
        )
        await query.answer()
        return
    outcome = await _submit(update, context, draft)
    await _edit(query, render("report_done", lang, **_done_values(draft, outcome, rules_of(services(context)))))
    await query.answer(_label(lang, outcome.verdict))


# -- admins: /signals, /confirm, /dismiss ------------------------------------------------------


def _signal_id(args: list[str]) -> int | None:
    if not args:
        return None
    text = args[0].lstrip("#")
    return int(text) if text.isdigit() and len(text) < 10 else None


async def list_signals(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if await refuse_unless_bot_admin(update, context, "signals"):
        return
    svc = services(context)
    rules = rules_of(svc)

    def pending(db):
        return [_signal_view(db, signal, rules) for signal in reports.signals(db, reports.PENDING)], reports.count_signals(db, status=reports.PENDING)

    views, total = await svc.store.run(pending)
    await reply(update, context, "signals", views=views, total=total)


def _note_of(text: str) -> str | None:
    """The admin's note as typed after `/confirm ID` (spacing and lines kept)."""
    parts = re.split(r"\s+", text.strip(), maxsplit=2)
    return parts[2].strip()[:1000] if len(parts) > 2 and parts[2].strip() else None


def confirm_signal(db, signal_id: int, note: str | None, now: int, rules: Rules, admin_id: int, lang: str) -> tuple[str, int]:
    """Confirm a pending signal: record it as a finding, audit it, and queue it to every chat watching
    the pair — one transaction, so a crash leaves all of it or none."""
    with transaction(db):
        signal = reports.get_signal(db, signal_id)
        if signal is None:
            return "unknown", 0
        if signal["status"] != reports.PENDING:
            return f"already_{signal['status']}", 0
        watchers = subscriptions.watchers(db, signal["country"], signal["platform"])
        view = _signal_view(db, signal, rules)
        languages = {row["language"] or "en" for row in watchers}
        texts = {lang: render("signal_finding", lang, note=note, **view) for lang in languages}
        reports.decide_signal(db, signal_id, reports.CONFIRMED, now, note, recipients=len(watchers))
        moment = _utc(now)
        # findings hold Telegram HTML as admins write it: the note is plain text, so it goes in escaped
        summary = html.escape(note) if note else render("signal_record", lang, **view)
        findings.record_finding(db, admin_id, signal["country"], signal["platform"], summary,
                                f"signal:{signal_id}", len(watchers), moment)
        findings.audit(db, admin_id, "signal_confirmed", moment, signal=signal_id, recipients=len(watchers))
        if watchers:
            notifier.queue_text(db, [row["id"] for row in watchers], texts, kind="finding", ref=f"signal:{signal_id}")
        return "confirmed", len(watchers)


def dismiss_signal(db, signal_id: int, now: int, admin_id: int) -> tuple[str, int]:
    with transaction(db):
        signal = reports.get_signal(db, signal_id)
        if signal is None:
            return "unknown", 0
        if not reports.decide_signal(db, signal_id, reports.DISMISSED, now):
            return f"already_{signal['status']}", 0
        findings.audit(db, admin_id, "signal_dismissed", _utc(now), signal=signal_id)
        return "dismissed", 0


async def _decide(update: Update, context: ContextTypes.DEFAULT_TYPE, command: str) -> None:
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
    svc = services(context)
    now = int(time.time())
    note = _note_of(text) if command == "confirm" else None
    admin_id = update.effective_user.id
    if command == "confirm":
        lang = await language_of(update, context)
        outcome, count = await svc.store.run(confirm_signal, signal_id, note, now, rules_of(svc), admin_id, lang)
    else:
        outcome, count = await svc.store.run(dismiss_signal, signal_id, now, admin_id)
    if outcome in ("confirmed", "dismissed"):
        log.info("crowd signal #%s %s by an admin (%s chats to tell)", signal_id, outcome, count)
    if outcome == "confirmed" and count and (sender := svc.extras.get("sender")):
        await sender.wake()
    await reply(update, context, "signal_reply", kind=outcome, command=command, signal_id=signal_id, count=count, note=note)


async def confirm(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _decide(update, context, "confirm")


async def dismiss(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _decide(update, context, "dismiss")


# -- wiring ------------------------------------------------------------------------------------


async def upkeep_loop(svc: Services, every: float = SWEEP_EVERY) -> None:
    """From start-up on: every `every` seconds look for signals no report raised (see `sweep`), and
    every PURGE_EVERY seconds delete raw reports past REPORT_RETENTION_DAYS."""
    last_purge = None
    while True:
        now = int(time.time())
        try:
            await _opened(svc, await svc.store.run(sweep, now, rules_of(svc), svc.settings.admin_ids))
            if last_purge is None or now - last_purge >= PURGE_EVERY:
                removed = await svc.store.run(reports.purge, now, svc.settings.report_retention_days)
                last_purge = now
                if removed:
                    log.info("deleted %s crowd reports older than %s days", removed, svc.settings.report_retention_days)
        except asyncio.CancelledError:
            raise
        except Exception:  # a busy or failing database: try again next time, the loop must not die
            log.exception("the crowd reports' upkeep failed")
        await asyncio.sleep(every)


def wire(svc: Services) -> None:
    """Give the services the reporters' pseudonyms, /forgetme's eraser and the upkeep loop. Idempotent."""
    if "pseudonyms" in svc.extras:
        return
    pseudonyms = Pseudonyms.for_database(svc.settings.database_path)
    svc.extras["pseudonyms"] = pseudonyms

    async def forget(user_id: int) -> int:
        return await svc.store.run(reports.forget_reporter, pseudonyms.reporter(user_id))

    svc.extras.setdefault("forget_user", []).append(forget)
    svc.background.append(lambda: upkeep_loop(svc))
