"""The crowd-signal workflow: storing a report and the signal it may raise, the sweep for signals no
report raised, admins confirming or dismissing a signal, what admins are shown, and the upkeep loop
that sweeps and purges (app.build_services starts it).

The functions taking `db` run on the one DB thread (`store.run(...)`), each in one transaction; the
async ones take the Services and call them. The rules themselves are pure, in bot/crowd.py.

Reporters stay safe here: a report is stored under a keyed pseudonym only (bot/pseudonym.py);
nothing logged names a reporter or their chat; admins see counts and networks, never who.
"""

from __future__ import annotations

import asyncio
import html
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from bot import catalog, crowd, notifier
from bot.crowd import Assessment, Report, Rules
from bot.render import render
from bot.report_form import ReportDraft
from bot.services import Services
from bot.status import load_statuses
from storage import findings, reports, subscriptions
from storage.db import transaction

log = logging.getLogger(__name__)

PURGE_EVERY = 3600  # seconds between retention purges
SWEEP_EVERY = 600  # seconds between looks for signals no report raised


@dataclass(frozen=True)
class Outcome:
    verdict: str  # crowd.ACCEPT | crowd.DUPLICATE | crowd.TOO_MANY
    signal_id: int | None = None  # a signal this report opened


def rules_of(svc: Services) -> Rules:
    return Rules.from_settings(svc.settings)


# -- what admins are shown ---------------------------------------------------------------------


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


def signal_view(db, signal: dict, rules: Rules) -> dict:
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


def pending_views(db, rules: Rules) -> tuple[list[dict], int]:
    """The pending signals' views for /signals, and how many are pending in all."""
    views = [signal_view(db, signal, rules) for signal in reports.signals(db, reports.PENDING)]
    return views, reports.count_signals(db, status=reports.PENDING)


# -- on the DB thread: reports in, signals raised and decided ------------------------------------


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
        view = signal_view(db, reports.get_signal(db, signal_id), rules)
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
        view = signal_view(db, signal, rules)
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


# -- what the handlers and the upkeep loop call -------------------------------------------------


async def submit(svc: Services, user_id: int, draft: ReportDraft, now: int) -> Outcome:
    """Store a complete draft under the user's pseudonym; a signal it opens goes out to the admins."""
    reporter = svc.pseudonyms.reporter(user_id)
    outcome = await svc.store.run(accept_report, reporter, draft, now, rules_of(svc), svc.settings.admin_ids)
    if outcome.signal_id is not None:
        await _opened(svc, [outcome.signal_id])
    return outcome


async def pending(svc: Services) -> tuple[list[dict], int]:
    return await svc.store.run(pending_views, rules_of(svc))


async def review(svc: Services, command: str, signal_id: int, note: str | None, now: int, admin_id: int,
                 lang: str | None) -> tuple[str, int]:
    """An admin's `confirm` (with an optional note, in `lang`) or `dismiss` of a signal → (outcome, chats told)."""
    if command == "confirm":
        outcome, count = await svc.store.run(confirm_signal, signal_id, note, now, rules_of(svc), admin_id, lang)
    else:
        outcome, count = await svc.store.run(dismiss_signal, signal_id, now, admin_id)
    if outcome in ("confirmed", "dismissed"):
        log.info("crowd signal #%s %s by an admin (%s chats to tell)", signal_id, outcome, count)
    if outcome == "confirmed" and count:
        await svc.wake_sender()
    return outcome, count


async def _opened(svc: Services, signal_ids: list[int]) -> None:
    for signal_id in signal_ids:
        log.info("crowd signal #%s opened", signal_id)
        if not svc.settings.admin_ids:
            log.warning("crowd signal #%s has no one to review it: ADMIN_IDS is empty", signal_id)
    if signal_ids:
        await svc.wake_sender()


async def forget(svc: Services, user_id: int) -> int:
    """/forgetme: delete this person's crowd reports (found by their pseudonym); returns how many."""
    return await svc.store.run(reports.forget_reporter, svc.pseudonyms.reporter(user_id))


# -- the upkeep loop -----------------------------------------------------------------------------


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
