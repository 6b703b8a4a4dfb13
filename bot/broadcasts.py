"""An admin's broadcast after Confirm: on the DB thread, in one transaction, the draft is closed, the
finding recorded and audited, and its text queued to the pair's watchers at that moment — a crash
leaves all of it or none, and of two presses of Confirm exactly one sends."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot import catalog, notifier
from bot.render import render
from storage import audit, drafts, findings, subscriptions
from storage.db import transaction

DRAFT_TTL = timedelta(minutes=15)  # a preview left longer than this is stale: watchers may have changed


def finding_texts(db, chat_ids: list[int], country, platform, text: str) -> dict[str, str]:
    """The finding rendered once in each language its recipients read (English when there are none)."""
    languages = set(notifier.languages_of(db, chat_ids).values()) or {"en"}
    return {lang: render("finding", lang, country=country, platform=platform, text=text) for lang in languages}


def decide(db, draft_id: int, user_id: int, confirm: bool, now: datetime, admin_ids=None) -> tuple[str, int]:
    """What a press on a preview's button does: (outcome, recipients). `admin_ids` are ADMIN_IDS as they
    are now: an admin removed since the preview (a restart without them) can no longer send it."""
    with transaction(db):
        draft = drafts.get_draft(db, draft_id)
        if draft is None:
            return "unknown", 0
        if draft["admin_id"] != user_id:
            return "not_yours", 0
        if admin_ids is not None and user_id not in admin_ids:
            audit.record(db, user_id, "broadcast_refused_not_admin", now, draft=draft_id)
            return "not_admin", 0
        if draft["status"] != "pending":
            return f"already_{draft['status']}", 0
        if not drafts.close_draft(db, draft_id, "sent" if confirm else "cancelled", now - DRAFT_TTL):
            drafts.close_draft(db, draft_id, "expired")
            audit.record(db, user_id, "broadcast_expired", now, draft=draft_id)
            return "expired", 0
        if not confirm:
            audit.record(db, user_id, "broadcast_cancelled", now, draft=draft_id)
            return "cancelled", 0
        # the watchers at the moment of Confirm, not of the preview: someone may have left since
        recipients = [row["id"] for row in subscriptions.watchers(db, draft["country"], draft["platform"])]
        country = catalog.find_country(draft["country"])
        platform = catalog.PLATFORMS.get(draft["platform"]) if draft["platform"] else None
        finding_id = findings.record_finding(db, user_id, draft["country"], draft["platform"], draft["text"],
                                             f"broadcast:{draft_id}", len(recipients), now)
        notifier.queue_text(db, recipients, finding_texts(db, recipients, country, platform, draft["text"]),
                            kind="finding", ref=f"finding:{finding_id}")
        audit.record(db, user_id, "broadcast", now, finding=finding_id, country=draft["country"],
                     platform=draft["platform"], recipients=len(recipients))
        return "sent", len(recipients)
