"""Admins' work: broadcast drafts awaiting Confirm, published findings, and the audit log.

Admins are not reporters: their Telegram ids are stored here on purpose, so every action
can be traced to who took it.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import sqlite_utils

migrations = sqlite_utils.Migrations("findings")


@migrations()
def create_findings_drafts_audit(db: sqlite_utils.Database) -> None:
    db["drafts"].create(
        {"id": int, "admin_id": int, "chat_id": int, "country": str, "platform": str, "text": str,
         "status": str, "created_at": str},
        pk="id",
        not_null={"admin_id", "country", "text", "status", "created_at"},
    )
    db["findings"].create(
        {"id": int, "admin_id": int, "country": str, "platform": str, "text": str, "source": str,
         "recipients": int, "created_at": str},
        pk="id",
        not_null={"admin_id", "country", "text", "recipients", "created_at"},
    )
    db["findings"].create_index(["country", "platform", "created_at"])
    db["audit"].create(
        {"id": int, "time": str, "admin_id": int, "action": str, "detail": str},
        pk="id",
        not_null={"time", "admin_id", "action"},
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


def create_draft(db, admin_id: int, chat_id: int, country: str, platform: str | None, text: str, now: datetime) -> int:
    return db["drafts"].insert(
        {"admin_id": admin_id, "chat_id": chat_id, "country": country, "platform": platform, "text": text,
         "status": "pending", "created_at": _iso(now)}
    ).last_pk


def get_draft(db, draft_id: int) -> dict | None:
    rows = list(db.query("select * from drafts where id = ?", [draft_id]))
    return rows[0] if rows else None


def close_draft(db, draft_id: int, status: str, not_before: datetime) -> bool:
    """Move a pending draft to `status` — only once, and only if it is newer than `not_before`:
    of two presses of Confirm exactly one gets True."""
    cursor = db.execute(
        "update drafts set status = ? where id = ? and status = 'pending' and created_at >= ?",
        [status, draft_id, _iso(not_before)],
    )
    return cursor.rowcount == 1


def record_finding(db, admin_id: int, country: str, platform: str | None, text: str, source: str,
                   recipients: int, now: datetime) -> int:
    return db["findings"].insert(
        {"admin_id": admin_id, "country": country, "platform": platform, "text": text, "source": source,
         "recipients": recipients, "created_at": _iso(now)}
    ).last_pk


def recent_findings(db, country: str, platform: str | None, since: datetime, limit: int = 3) -> list[dict]:
    """Findings for the country that concern `platform` (or the whole country; any platform when None), newest first."""
    return list(db.query(
        "select * from findings where country = ? and (? is null or platform is null or platform = ?) "
        "and created_at >= ? order by created_at desc, id desc limit ?",
        [country, platform, platform, _iso(since), limit],
    ))


def audit(db, admin_id: int, action: str, now: datetime, **detail) -> None:
    db["audit"].insert({"time": _iso(now), "admin_id": admin_id, "action": action, "detail": json.dumps(detail, ensure_ascii=False)})


def audit_log(db, limit: int = 50) -> list[dict]:
    return list(db.query("select * from audit order by id desc limit ?", [limit]))
