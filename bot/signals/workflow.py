"""The crowd-signal workflow's steps on the DB thread (`store.run(...)`), each in one transaction, so a
crash leaves a step whole or not at all: a report accepted (and the signal it raises), the sweep for
signals no report raised, an admin's confirm or dismiss. The rules are bot/crowd.py's; the rows are
storage/reports.py's."""

from __future__ import annotations

import html
from dataclasses import dataclass

from bot import crowd, notifier
from bot.clock import utc
from bot.crowd import Assessment, Report, Rules
from bot.render import render
from bot.report_form import ReportDraft
from bot.signals.views import signal_view, texts_for
from storage import audit, findings, reports, subscriptions
from storage.db import transaction


@dataclass(frozen=True)
class Outcome:
    verdict: str  # crowd.ACCEPT | crowd.DUPLICATE | crowd.TOO_MANY
    signal_id: int | None = None  # a signal this report opened


def _usual(db, country: str, platform: str, now: int, rules: Rules) -> float:
    return crowd.usual_level(reports.daily_reports(db, country, platform, *crowd.usual_days(now)), window=rules.window)


def assess_pair(db, country: str, platform: str, now: int, rules: Rules) -> Assessment | None:
    """The crowd's current word on one pair: reports in the window, after its last decided signal."""
    after_id = reports.spent(db, country, platform).get((country, platform), 0)
    counted = reports.pair_tally(db, country, platform, now - rules.window, after_id)
    if counted is None:
        return None
    return crowd.judge(counted, rules=rules, usual=_usual(db, country, platform, now, rules))


def evaluate(db, now: int, rules: Rules) -> list[Assessment]:
    """Every pair whose reports in the window make a signal now (reports behind a decided signal excluded)."""
    used = reports.spent(db)
    tallies = []
    for country, platform in crowd.worth_a_look(reports.window_volumes(db, now - rules.window), rules):
        counted = reports.pair_tally(db, country, platform, now - rules.window, used.get((country, platform), 0))
        if counted is not None and crowd.could_signal(counted, rules):
            tallies.append(counted)
    usual = {(t.country, t.platform): _usual(db, t.country, t.platform, now, rules) for t in tallies}
    return crowd.find_signals(tallies, rules=rules, usual=usual)


def raise_signal(db, assessment: Assessment | None, now: int, rules: Rules, admin_ids) -> int | None:
    """Grow the pair's pending signal, or open one when the assessment crosses and queue it to every
    admin; returns the id of a signal it opened."""
    if assessment is None:
        return None
    pending = reports.pending_signal(db, assessment.country, assessment.platform)
    if pending is not None:
        reports.update_signal(db, pending["id"], assessment)
        return None
    if not assessment.worth_review:
        return None
    signal_id = reports.open_signal(db, assessment, now)
    admins = sorted(admin_ids)
    if admins:
        view = signal_view(db, reports.get_signal(db, signal_id), rules)
        notifier.queue_text(db, admins, texts_for(db, admins, "signal_alert", **view), kind="signal", ref=f"signal:{signal_id}")
    return signal_id


def accept_report(db, reporter: bytes, draft: ReportDraft, now: int, rules: Rules, admin_ids) -> Outcome:
    """Throttle, store, re-assess the pair and, when it first crosses, open a signal for the admins —
    one transaction, so a crash leaves the report and its signal both or neither."""
    with transaction(db):
        recent = reports.reporter_reports(db, reporter, now - crowd.lookback(rules))
        verdict = crowd.throttle(recent, country=draft.country, platform=draft.platform, now=now, rules=rules)
        if verdict != crowd.ACCEPT:
            return Outcome(verdict)
        fresh = not reports.has_reported_before(db, reporter, now)
        held = False
        if fresh:  # a new account: a person while the pair's allowance lasts, else part of a burst
            admitted, tokens = crowd.admit_fresh(*reports.pace(db, draft.country, draft.platform), now, rules)
            reports.set_pace(db, draft.country, draft.platform, tokens, now)
            held = not admitted
        reports.add_report(db, Report(reporter, draft.country, draft.platform, draft.symptom, now, draft.asn, draft.note,
                                      fresh=fresh, held=held))
        assessment = assess_pair(db, draft.country, draft.platform, now, rules)
        return Outcome(verdict, raise_signal(db, assessment, now, rules, admin_ids))


def sweep(db, now: int, rules: Rules, admin_ids) -> list[int]:
    """Every pair that makes a signal now but has none open (SIGNAL_MIN_REPORTERS lowered, a restart):
    open it. Returns the ids opened."""
    opened = []
    for assessment in evaluate(db, now, rules):
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
        watchers = [row["id"] for row in subscriptions.watchers(db, signal["country"], signal["platform"])]
        view = signal_view(db, signal, rules)
        texts = texts_for(db, watchers, "signal_finding", note=note, **view)
        reports.decide_signal(db, signal_id, reports.CONFIRMED, now, note, recipients=len(watchers))
        moment = utc(now)
        # findings hold Telegram HTML as admins write it: the note is plain text, so it goes in escaped
        summary = html.escape(note) if note else render("signal_record", lang, **view)
        findings.record_finding(db, admin_id, signal["country"], signal["platform"], summary,
                                f"signal:{signal_id}", len(watchers), moment)
        audit.record(db, admin_id, "signal_confirmed", moment, signal=signal_id, recipients=len(watchers))
        if watchers:
            notifier.queue_text(db, watchers, texts, kind="finding", ref=f"signal:{signal_id}")
        return "confirmed", len(watchers)


def dismiss_signal(db, signal_id: int, now: int, admin_id: int) -> tuple[str, int]:
    with transaction(db):
        signal = reports.get_signal(db, signal_id)
        if signal is None:
            return "unknown", 0
        if not reports.decide_signal(db, signal_id, reports.DISMISSED, now):
            return f"already_{signal['status']}", 0
        audit.record(db, admin_id, "signal_dismissed", utc(now), signal=signal_id)
        return "dismissed", 0
