"""Broadcast drafts: what an admin typed after /broadcast, waiting for Confirm or Cancel.

Admins are not reporters: their Telegram ids are stored here on purpose, so every action can be
traced to who took it.
"""

from __future__ import annotations

from datetime import datetime

from bot.clock import unix


def create_draft(db, admin_id: int, chat_id: int, country: str, platform: str | None, text: str, now: datetime) -> int:
    return db["drafts"].insert(
        {"admin_id": admin_id, "chat_id": chat_id, "country": country, "platform": platform, "text": text,
         "status": "pending", "created_at": unix(now)}
    ).last_pk


def get_draft(db, draft_id: int) -> dict | None:
    rows = list(db.query("select * from drafts where id = ?", [draft_id]))
    return rows[0] if rows else None


def close_draft(db, draft_id: int, status: str, not_before: datetime | None = None) -> bool:
    """Move a pending draft to `status` — only once, and (when given) only if it is not older than
    `not_before`: of two presses of Confirm exactly one gets True."""
    cursor = db.execute(
        "update drafts set status = ? where id = ? and status = 'pending' and created_at >= ?",
        [status, draft_id, unix(not_before) if not_before is not None else 0],
    )
    return cursor.rowcount == 1
