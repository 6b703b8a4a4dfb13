"""What the handlers call: a report submitted, the pending signals, an admin's review, /forgetme's
erasing of a person's reports — each one call to the DB thread (bot/signals/workflow.py) and a nudge
to the sender when something was queued."""

from __future__ import annotations

import logging

from bot.crowd import Rules
from bot.report_form import ReportDraft
from bot.services import Services
from bot.signals import views, workflow
from bot.signals.workflow import Outcome
from storage import privacy

log = logging.getLogger(__name__)

__all__ = ["Outcome", "forget", "opened", "pending", "review", "rules_of", "submit"]


def rules_of(svc: Services) -> Rules:
    return Rules.from_settings(svc.settings)


async def submit(svc: Services, user_id: int, draft: ReportDraft, now: int) -> Outcome:
    """Store a complete draft under the user's pseudonym; a signal it opens goes out to the admins."""
    reporter = svc.pseudonyms.reporter(user_id)
    outcome = await svc.store.run(workflow.accept_report, reporter, draft, now, rules_of(svc), svc.settings.admin_ids)
    if outcome.signal_id is not None:
        await opened(svc, [outcome.signal_id])
    return outcome


async def pending(svc: Services) -> tuple[list[dict], int]:
    return await svc.store.run(views.pending_views, rules_of(svc))


async def review(svc: Services, command: str, signal_id: int, note: str | None, now: int, admin_id: int,
                 lang: str | None) -> tuple[str, int]:
    """An admin's `confirm` (with an optional note, in `lang`) or `dismiss` of a signal → (outcome, chats told)."""
    if command == "confirm":
        outcome, count = await svc.store.run(workflow.confirm_signal, signal_id, note, now, rules_of(svc), admin_id, lang)
    else:
        outcome, count = await svc.store.run(workflow.dismiss_signal, signal_id, now, admin_id)
    if outcome in ("confirmed", "dismissed"):
        log.info("crowd signal #%s %s by an admin (%s chats to tell)", signal_id, outcome, count)
    if outcome == "confirmed" and count:
        await svc.wake_sender()
    return outcome, count


async def opened(svc: Services, signal_ids: list[int]) -> None:
    """Signals just opened: logged, and the sender woken for the admins' messages."""
    for signal_id in signal_ids:
        log.info("crowd signal #%s opened", signal_id)
        if not svc.settings.admin_ids:
            log.warning("crowd signal #%s has no one to review it: ADMIN_IDS is empty", signal_id)
    if signal_ids:
        await svc.wake_sender()


async def forget(svc: Services, user_id: int) -> privacy.ForgottenReporter:
    """/forgetme: delete this person's crowd reports (found by their pseudonym) and their notes wherever
    a message to admins quoted them; what went."""
    return await svc.store.run(privacy.forget_reporter, svc.pseudonyms.reporter(user_id))
