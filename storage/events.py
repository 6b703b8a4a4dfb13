"""Every event the detector raised: the `events` table (history for /stats, /status and the alerts).

Each row keeps the event exactly as `Event.to_json()` gives it (the backtest's JSON line), plus
the columns it is looked up by. Times are stored as Unix seconds (storage/schema.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

import sqlite_utils

from bot.clock import now_unix, unix
from bot.detector import Event

def record_events(db: sqlite_utils.Database, events: Iterable[Event]) -> list[int]:
    """Store events; returns their ids in order (call inside the transaction that saves the state)."""
    created = now_unix()
    ids = []
    for event in events:
        data = event.to_json()
        cursor = db.execute(
            "insert into events (time, country, platform, kind, data, created_at) values (?, ?, ?, ?, ?, ?)",
            [unix(event.time), event.country, event.platform, event.kind, json.dumps(data), created],
        )
        ids.append(cursor.lastrowid)
    return ids


def recent_events(
    db: sqlite_utils.Database,
    since: datetime | None = None,
    country: str | None = None,
    platform: str | None = None,
    limit: int = 100,
) -> list[dict]:
    """Newest first: each the event's JSON (`Event.from_json` rebuilds it) with its `id` and `created_at`."""
    where, params = [], []
    if since is not None:
        where.append("time >= ?")
        params.append(unix(since))
    if country is not None:
        where.append("country = ?")
        params.append(country)
    if platform is not None:
        where.append("platform = ?")
        params.append(platform)
    sql = "select id, data, created_at from events"
    if where:
        sql += " where " + " and ".join(where)
    sql += " order by time desc, id desc limit ?"
    params.append(limit)
    return [{"id": row["id"], "created_at": row["created_at"], **json.loads(row["data"])} for row in db.query(sql, params)]


def count_events(db: sqlite_utils.Database, since: datetime) -> int:
    """Events whose time is at or after `since` (for /stats)."""
    return db.execute("select count(*) from events where time >= ?", [unix(since)]).fetchone()[0]


def event_pair(db: sqlite_utils.Database, event_id: int) -> tuple[str, str, int] | None:
    """(country, platform, time in Unix seconds) of an event (a blocked alert's chart is drawn for them)."""
    row = db.execute("select country, platform, time from events where id = ?", [event_id]).fetchone()
    return (row[0], row[1], row[2]) if row else None
