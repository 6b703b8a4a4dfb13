"""Every event the detector raised: the `events` table (history for /stats, /status and the alerts).

Each row keeps the event exactly as `Event.to_json()` gives it (the backtest's JSON line), plus
the columns it is looked up by. Times are stored as UTC ISO strings ending in Z, so they sort.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timezone

import sqlite_utils

from bot.detector import Event

migrations = sqlite_utils.Migrations("events")


@migrations()
def create_events(db: sqlite_utils.Database) -> None:
    # AUTOINCREMENT: an id is never reused, so whatever refers to an event (deliveries) stays right
    db.execute(
        "create table events ("
        " id integer primary key autoincrement,"
        " time text not null, country text not null, platform text not null, kind text not null,"
        " data text not null, created_at text not null)"
    )
    db["events"].create_index(["time"])
    db["events"].create_index(["country", "platform", "time"])


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def record_events(db: sqlite_utils.Database, events: Iterable[Event]) -> list[int]:
    """Store events; returns their ids in order (call inside the transaction that saves the state)."""
    created = _iso(datetime.now(timezone.utc))
    ids = []
    for event in events:
        data = event.to_json()
        cursor = db.execute(
            "insert into events (time, country, platform, kind, data, created_at) values (?, ?, ?, ?, ?, ?)",
            [_iso(event.time), event.country, event.platform, event.kind, json.dumps(data), created],
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
        params.append(_iso(since))
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
    return db.execute("select count(*) from events where time >= ?", [_iso(since)]).fetchone()[0]
