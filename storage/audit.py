"""The audit log: every admin action, with the admin's Telegram id on purpose (admins are not
reporters: what they did must be traceable to who did it)."""

from __future__ import annotations

import json
from datetime import datetime

from bot.clock import unix


def record(db, admin_id: int, action: str, now: datetime, **detail) -> None:
    db["audit"].insert(
        {"time": unix(now), "admin_id": admin_id, "action": action, "detail": json.dumps(detail, ensure_ascii=False)}
    )


def entries(db, limit: int = 50) -> list[dict]:
    """The newest entries first."""
    return list(db.query("select * from audit order by id desc limit ?", [limit]))
