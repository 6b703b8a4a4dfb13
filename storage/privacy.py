"""What /forgetme erases from the database, each part in one transaction, and overwritten rather than
just unlinked (secure_delete on, the WAL checkpointed and truncated after), so no copy lingers in free
pages or in the -wal file."""

from __future__ import annotations

from dataclasses import dataclass

import sqlite_utils
from markupsafe import escape

from storage import chat_settings, outbox, reports, subscriptions
from storage.db import scrub, transaction

# what stands where a forgotten person's words were, in messages to admins (any language reads it)
REMOVED = "🗑"


@dataclass(frozen=True)
class ForgottenReporter:
    reports: int  # their crowd reports deleted
    notes: int  # the distinct notes they wrote in them
    messages: int  # messages to admins (queued or sent) their notes were removed from


def forget_chat(db: sqlite_utils.Database, chat_id: int) -> int:
    """The chat's row, its settings and mutes, its watches, every delivery to it, queued or sent, and the
    messages written for it alone; returns how many watches went with it."""
    db.execute("PRAGMA secure_delete=ON")
    with transaction(db):
        only_for_it = [row[0] for row in db.execute(
            "select distinct message_id from deliveries d where chat_id = ? and not exists "
            "(select 1 from deliveries e where e.message_id = d.message_id and e.chat_id != ?)", [chat_id, chat_id])]
        outbox.forget_chat(db, chat_id)
        for start in range(0, len(only_for_it), 500):  # SQLite caps the number of ? in one statement
            chunk = only_for_it[start : start + 500]
            db.execute(f"delete from outbox_messages where id in ({', '.join('?' * len(chunk))})", chunk)
        chat_settings.forget(db, chat_id)
        chat_settings.forget_mutes(db, chat_id)
        watches = subscriptions.forget_chat(db, chat_id)
    scrub(db)
    return watches


def forget_reporter(db: sqlite_utils.Database, reporter: bytes) -> ForgottenReporter:
    """A reporter's crowd reports, and their notes wherever a message to admins quoted them (queued or
    already sent: the stored copy goes either way). Counts and signals hold no reporter's words, so they stay."""
    db.execute("PRAGMA secure_delete=ON")
    with transaction(db):
        notes = reports.reporter_notes(db, reporter)
        touched: set[int] = set()
        for note in notes:
            quoted = f"<i>{escape(note)}</i>"  # exactly as templates/signal_alert.html renders a note
            touched.update(row[0] for row in db.execute(
                "update outbox_messages set text = replace(text, ?, ?) where instr(text, ?) > 0 returning id",
                [quoted, f"<i>{REMOVED}</i>", quoted]))
        removed = db.execute("delete from reports where reporter = ?", [reporter]).rowcount
    if removed or touched:
        scrub(db)
    return ForgottenReporter(removed, len(notes), len(touched))
