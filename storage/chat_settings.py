"""A chat's own settings: its time zone, quiet hours and daily digest (the `chat_settings` table).

One row per chat that changed something; a chat without one reads UTC, no quiet hours, no digest.
Values are stored as typed after checking (bot/chat_clock.py): "Asia/Baku", "23:00-07:00", "09:00".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlite_utils

@dataclass(frozen=True)
class ChatSettings:
    zone: str | None = None
    quiet: str | None = None
    digest_at: str | None = None
    digest_day: str | None = None


def get(db: sqlite_utils.Database, chat_id: int) -> ChatSettings:
    row = db.execute("select zone, quiet, digest_at, digest_day from chat_settings where chat_id = ?", [chat_id]).fetchone()
    return ChatSettings(*row) if row else ChatSettings()


def _set(db: sqlite_utils.Database, chat_id: int, column: str, value: str | None) -> None:
    db.execute(
        f"insert into chat_settings (chat_id, {column}) values (?, ?) "
        f"on conflict (chat_id) do update set {column} = excluded.{column}",
        [chat_id, value],
    )


def set_zone(db: sqlite_utils.Database, chat_id: int, zone: str | None) -> None:
    _set(db, chat_id, "zone", zone)


def set_quiet(db: sqlite_utils.Database, chat_id: int, quiet: str | None) -> None:
    _set(db, chat_id, "quiet", quiet)


def set_digest(db: sqlite_utils.Database, chat_id: int, at: str | None) -> None:
    _set(db, chat_id, "digest_at", at)


def mark_digest(db: sqlite_utils.Database, chat_id: int, day: str) -> None:
    """The digest of this local day is queued: never queue it again (inside the queueing transaction)."""
    db.execute("update chat_settings set digest_day = ? where chat_id = ?", [day, chat_id])


def zones_of(db: sqlite_utils.Database, chat_ids: Iterable[int]) -> dict[int, ChatSettings]:
    """Settings of the given chats that have any (the sender's quiet hours, per-zone rendering)."""
    found: dict[int, ChatSettings] = {}
    chat_ids = list(chat_ids)
    for start in range(0, len(chat_ids), 500):  # SQLite caps the number of ? in one statement
        chunk = chat_ids[start : start + 500]
        for row in db.execute(
            f"select chat_id, zone, quiet, digest_at, digest_day from chat_settings where chat_id in ({', '.join('?' * len(chunk))})",
            chunk,
        ).fetchall():
            found[row[0]] = ChatSettings(*row[1:])
    return found


def with_digest(db: sqlite_utils.Database) -> list[tuple[int, ChatSettings]]:
    """Chats (not paused) that asked for a daily digest."""
    return [
        (row[0], ChatSettings(*row[1:]))
        for row in db.execute(
            "select s.chat_id, s.zone, s.quiet, s.digest_at, s.digest_day from chat_settings s "
            "join chats on chats.id = s.chat_id where s.digest_at is not null and chats.paused = 0 order by s.chat_id"
        ).fetchall()
    ]


def forget(db: sqlite_utils.Database, chat_id: int) -> None:
    db.execute("delete from chat_settings where chat_id = ?", [chat_id])


def move_chat(db: sqlite_utils.Database, old_id: int, new_id: int) -> None:
    """A group became a supergroup: its clock, quiet hours, digest and mutes follow it (caller's transaction)."""
    db.execute("update or ignore chat_settings set chat_id = ? where chat_id = ?", [new_id, old_id])
    db.execute("update or ignore mutes set chat_id = ? where chat_id = ?", [new_id, old_id])
    db.execute("delete from chat_settings where chat_id = ?", [old_id])  # the new id had its own already
    db.execute("delete from mutes where chat_id = ?", [old_id])


# --- mutes: alerts of a chat's watches held back until a time, then summed up in one message --------------


@dataclass(frozen=True)
class Mute:
    chat_id: int
    country: str  # '' = every country
    platform: str  # '' = every platform
    since: int  # Unix seconds, as every stored time
    until: int


# a chat is muted for a watch (the `watches` row of the query, joined with `chats`) while a mute covers it
NOT_MUTED = (
    "not exists (select 1 from mutes m where m.chat_id = chats.id and m.until > ? "
    "and m.country in ('', watches.country) and m.platform in ('', watches.platform))"
)


def add_mute(db: sqlite_utils.Database, chat_id: int, country: str, platform: str, since: int, until: int) -> None:
    """Mute (or extend); a mute already running keeps its start, so its summary covers the whole quiet time."""
    db.execute(
        "insert into mutes (chat_id, country, platform, since, until) values (?, ?, ?, ?, ?) "
        "on conflict (chat_id, country, platform) do update set until = excluded.until",
        [chat_id, country, platform, since, until],
    )


def mutes_of(db: sqlite_utils.Database, chat_id: int) -> list[Mute]:
    return [Mute(*row) for row in db.execute(
        "select chat_id, country, platform, since, until from mutes where chat_id = ? order by until", [chat_id]
    ).fetchall()]


def ended_mutes(db: sqlite_utils.Database, now: int) -> list[Mute]:
    return [Mute(*row) for row in db.execute(
        "select chat_id, country, platform, since, until from mutes where until <= ? order by until, chat_id", [now]
    ).fetchall()]


def remove_mute(db: sqlite_utils.Database, mute: Mute) -> bool:
    """Delete it; False when another process already did (its summary is queued there)."""
    return db.execute(
        "delete from mutes where chat_id = ? and country = ? and platform = ?", [mute.chat_id, mute.country, mute.platform]
    ).rowcount > 0


def forget_mutes(db: sqlite_utils.Database, chat_id: int) -> None:
    db.execute("delete from mutes where chat_id = ?", [chat_id])
