"""Chats and what they watch: the `chats` and `watches` tables.

A chat is stored only because the bot must send to it: its id, type, language and whether it is
paused (the bot was blocked or removed). A watch is one (chat, country, platform) row.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
import sqlite_utils

from bot.clock import now_unix
from storage.db import transaction

def get_chat(db: sqlite_utils.Database, chat_id: int) -> dict | None:
    rows = list(db.query("select * from chats where id = ?", [chat_id]))
    return rows[0] if rows else None


def ensure_chat(db: sqlite_utils.Database, chat_id: int, chat_type: str, language: str | None = None) -> dict:
    """The chat's row, created on first contact with Telegram's language as its starting language."""
    db.execute(
        "insert into chats (id, type, language, paused, created_at) values (?, ?, ?, 0, ?) "
        "on conflict(id) do nothing",
        [chat_id, chat_type, language, now_unix()],
    )
    return get_chat(db, chat_id)


def watch(
    db: sqlite_utils.Database, chat_id: int, chat_type: str, language: str | None, country: str, platforms: Iterable[str]
) -> tuple[dict, list[str]]:
    """/watch in one transaction: the chat (created on first contact), its new watches, its last country.
    Returns the chat's row and the platforms that were not watched before."""
    with transaction(db):
        chat = ensure_chat(db, chat_id, chat_type, language)
        added = add_watches(db, chat_id, country, platforms)
        set_last_country(db, chat_id, country)
    return chat, added


def set_language(db: sqlite_utils.Database, chat_id: int, language: str) -> None:
    db.execute("update chats set language = ? where id = ?", [language, chat_id])


def set_last_country(db: sqlite_utils.Database, chat_id: int, country: str) -> None:
    db.execute("update chats set last_country = ? where id = ?", [country, chat_id])


def set_paused(db: sqlite_utils.Database, chat_id: int, paused: bool) -> bool:
    """Pause or resume a chat's watches; True when the chat is known."""
    cursor = db.execute("update chats set paused = ? where id = ?", [int(paused), chat_id])
    return cursor.rowcount > 0


def add_watches(db: sqlite_utils.Database, chat_id: int, country: str, platforms: Iterable[str]) -> list[str]:
    """Subscribe the chat; returns the platforms that were not watched before."""
    added = []
    with transaction(db):
        for platform in platforms:
            cursor = db.execute(
                "insert into watches (chat_id, country, platform, created_at) values (?, ?, ?, ?) "
                "on conflict do nothing",
                [chat_id, country, platform, now_unix()],
            )
            if cursor.rowcount:
                added.append(platform)
    return added


def remove_watches(
    db: sqlite_utils.Database, chat_id: int, country: str | None = None, platforms: Iterable[str] | None = None
) -> list[tuple[str, str]]:
    """Unsubscribe; no country = every watch, no platforms = every platform of that country."""
    sql = "select country, platform from watches where chat_id = ?"
    params: list = [chat_id]
    if country is not None:
        sql += " and country = ?"
        params.append(country)
    if platforms is not None:
        platforms = list(platforms)
        sql += f" and platform in ({', '.join('?' * len(platforms))})"
        params.extend(platforms)
    removed = [(row["country"], row["platform"]) for row in db.query(sql + " order by country, platform", params)]
    with transaction(db):
        for country_code, platform in removed:
            db.execute(
                "delete from watches where chat_id = ? and country = ? and platform = ?",
                [chat_id, country_code, platform],
            )
    return removed


def chat_watches(db: sqlite_utils.Database, chat_id: int) -> list[tuple[str, str]]:
    return [
        (row["country"], row["platform"])
        for row in db.query("select country, platform from watches where chat_id = ? order by country, rowid", [chat_id])
    ]


def watchers(db: sqlite_utils.Database, country: str, platform: str | None = None) -> list[dict]:
    """Chats (not paused) watching the country — and, when given, that platform."""
    sql = (
        "select distinct chats.* from watches join chats on chats.id = watches.chat_id "
        "where chats.paused = 0 and watches.country = ?"
    )
    params: list = [country]
    if platform is not None:
        sql += " and watches.platform = ?"
        params.append(platform)
    return list(db.query(sql + " order by chats.id", params))


def most_watched_countries(db: sqlite_utils.Database, limit: int) -> list[str]:
    """Country codes by how many chats watch them, most first (the /watch form offers these first)."""
    return [row[0] for row in db.execute(
        "select country from watches group by country order by count(distinct chat_id) desc, country limit ?", [limit]
    ).fetchall()]


def watched_pairs(db: sqlite_utils.Database) -> dict[str, set[str]]:
    """What the poller must look at: country → platforms watched by at least one active chat."""
    pairs: dict[str, set[str]] = defaultdict(set)
    for row in db.query(
        "select distinct watches.country, watches.platform from watches "
        "join chats on chats.id = watches.chat_id where chats.paused = 0"
    ):
        pairs[row["country"]].add(row["platform"])
    return dict(pairs)


def move_chat(db: sqlite_utils.Database, old_id: int, new_id: int) -> None:
    """A group became a supergroup: its watches follow it to the new id."""
    with transaction(db):
        old = get_chat(db, old_id)
        if old is None:
            return
        db.execute(
            "insert into chats (id, type, language, paused, last_country, created_at) values (?, 'supergroup', ?, 0, ?, ?) "
            "on conflict(id) do nothing",
            [new_id, old["language"], old["last_country"], old["created_at"]],
        )
        db.execute(
            "insert or ignore into watches (chat_id, country, platform, created_at) "
            "select ?, country, platform, created_at from watches where chat_id = ?",
            [new_id, old_id],
        )
        db.execute("delete from watches where chat_id = ?", [old_id])
        db.execute("delete from chats where id = ?", [old_id])


def forget_chat(db: sqlite_utils.Database, chat_id: int) -> int:
    """Delete the chat and its watches; returns how many watches went with it."""
    with transaction(db):
        count = db.execute("delete from watches where chat_id = ?", [chat_id]).rowcount
        db.execute("delete from chats where id = ?", [chat_id])
    return count


def count_chats(db: sqlite_utils.Database) -> int:
    return db.execute("select count(*) from chats").fetchone()[0]


def chat_counts(db: sqlite_utils.Database) -> tuple[int, int]:
    """How many chats the bot knows, and how many of them are paused (for /stats)."""
    known, paused = db.execute("select count(*), coalesce(sum(paused), 0) from chats").fetchone()
    return known, paused


def watch_counts(db: sqlite_utils.Database) -> list[dict]:
    """Each watched (country, platform) with how many chats watch it, most watched first (for /stats)."""
    return list(db.query(
        "select country, platform, count(*) as chats from watches group by country, platform "
        "order by chats desc, country, platform"
    ))


def chat_languages(db: sqlite_utils.Database, chat_ids: list[int]) -> dict[int, tuple[str | None, bool]]:
    """chat id → (stored language, paused) for those of the chats the bot knows."""
    found: dict[int, tuple[str | None, bool]] = {}
    for start in range(0, len(chat_ids), 500):  # SQLite caps the number of ? in one statement
        chunk = chat_ids[start : start + 500]
        rows = db.execute(
            f"select id, language, paused from chats where id in ({', '.join('?' * len(chunk))})", chunk
        ).fetchall()
        found.update({row[0]: (row[1], bool(row[2])) for row in rows})
    return found
