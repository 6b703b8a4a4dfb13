"""Published findings: what admins confirmed (a broadcast, or a crowd signal) and how many chats were told.
/status shows a country's recent ones."""

from __future__ import annotations

from datetime import datetime

from bot.clock import unix, utc


def record_finding(db, admin_id: int, country: str, platform: str | None, text: str, source: str,
                   recipients: int, now: datetime) -> int:
    return db["findings"].insert(
        {"admin_id": admin_id, "country": country, "platform": platform, "text": text, "source": source,
         "recipients": recipients, "created_at": unix(now)}
    ).last_pk


def recent_findings(db, country: str, platform: str | None, since: datetime, limit: int = 3) -> list[dict]:
    """Findings for the country that concern `platform` (or the whole country; any platform when None), newest first."""
    return [{**row, "created_at": utc(row["created_at"])} for row in db.query(
        "select * from findings where country = ? and (? is null or platform is null or platform = ?) "
        "and created_at >= ? order by created_at desc, id desc limit ?",
        [country, platform, platform, unix(since), limit],
    )]
