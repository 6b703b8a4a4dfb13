"""The outbox: messages waiting to be sent, and one delivery per (message, chat) with its fate.

`outbox_messages` holds each rendered text once (one row per event or finding and language);
`deliveries` holds who gets it and where that stands:

    pending ──(the sender picks it)──► sending ──(Telegram accepted it)──► sent
       ▲                                  │
       └──── 429, timeout, network error ─┘    403 / chat gone ──► dropped    other 400 ──► failed

A chat's deliveries go out in id order, one at a time: a delivery is due only when no earlier
delivery of its chat is still pending or sending, and not before its `not_before` (Unix seconds),
which carries the 1 message/s per chat spacing, Telegram's retry_after and the backoff.

A send whose fate is unknown — its answer never came, or it was still `sending` when the process
died — may have reached the chat. It is sent again once (`unknown` counts these), so a chat can see
it twice; if its fate is unknown a second time it is not sent again but marked failed: at most one
duplicate of a message, and no more such rows than the sender had in flight.

`telegram_pause` remembers until when Telegram asked the bot to stop sending (429 retry_after,
which can be minutes), so that a restart keeps waiting.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlite_utils

from bot.clock import now_unix, unix
from storage.db import transaction

PENDING, SENDING, SENT, DROPPED, FAILED = "pending", "sending", "sent", "dropped", "failed"


@dataclass(frozen=True)
class Delivery:
    """One message on its way to one chat."""

    id: int
    chat_id: int
    text: str
    kind: str
    attempts: int  # sends tried before this one
    unknown: int = 0  # earlier sends of it whose fate is unknown (it may have arrived)
    ref: str | None = None  # the message's ref: "event:<id>" for an alert (its chart is drawn from the event)
    lang: str = "en"  # the message's language


# --- queueing (inside the caller's transaction) ---------------------------------------------------


def add_message(db: sqlite_utils.Database, kind: str, lang: str, text: str, ref: str | None = None) -> int:
    cursor = db.execute(
        "insert into outbox_messages (kind, ref, lang, text, created_at) values (?, ?, ?, ?, ?)",
        [kind, ref, lang, text, now_unix()],
    )
    return cursor.lastrowid


def watcher_groups(db: sqlite_utils.Database, country: str, platform: str) -> list[tuple[str | None, str | None]]:
    """The (stored language, time zone) pairs of the chats that would get an alert for the pair: one render each."""
    return [
        (row[0], row[1])
        for row in db.execute(
            "select distinct chats.language, s.zone from watches join chats on chats.id = watches.chat_id "
            "left join chat_settings s on s.chat_id = chats.id "
            "where chats.paused = 0 and watches.country = ? and watches.platform = ?",
            [country, platform],
        ).fetchall()
    ]


def _one_of(column: str, values: list) -> tuple[str, list]:
    """SQL for `column` being one of `values` (None included, as IS NULL) and its parameters."""
    named = [value for value in values if value is not None]
    conditions = [f"{column} in ({', '.join('?' * len(named))})"] if named else []
    if None in values:
        conditions.append(f"{column} is null")
    return "(" + (" or ".join(conditions) or "0") + ")", named


def deliver_to_watchers(
    db: sqlite_utils.Database,
    message_id: int,
    country: str,
    platform: str,
    languages: Iterable[str | None],
    zones: Iterable[str | None] | None = None,
    unmuted_at: int | None = None,
) -> int:
    """One delivery of the message to every active chat watching the pair whose stored language is one of
    `languages`, whose time zone (when given) is one of `zones`, and (when `unmuted_at` is
    given, Unix seconds) that has not muted the pair then (the same chats as subscriptions.watchers, chosen in SQL:
    100,000 watchers stay on disk)."""
    from storage.chat_settings import NOT_MUTED

    by_language, language_params = _one_of("chats.language", list(languages))
    where = f"chats.paused = 0 and watches.country = ? and watches.platform = ? and {by_language}"
    params = [message_id, now_unix(), country, platform, *language_params]
    if zones is not None:
        by_zone, zone_params = _one_of("s.zone", list(zones))
        where += f" and {by_zone}"
        params += zone_params
    if unmuted_at is not None:
        where += f" and {NOT_MUTED}"
        params.append(unmuted_at)
    cursor = db.execute(
        "insert into deliveries (message_id, chat_id, created_at) "
        "select ?, chats.id, ? from watches join chats on chats.id = watches.chat_id "
        f"left join chat_settings s on s.chat_id = chats.id where {where} order by chats.id",
        params,
    )
    return cursor.rowcount


def deliver_to_chats(db: sqlite_utils.Database, message_id: int, chat_ids: Iterable[int]) -> int:
    """One delivery of the message to each chat (a chat that already has it is skipped)."""
    created = now_unix()
    count = 0
    for chat_id in chat_ids:
        cursor = db.execute(
            "insert into deliveries (message_id, chat_id, created_at) values (?, ?, ?) on conflict do nothing",
            [message_id, chat_id, created],
        )
        count += cursor.rowcount
    return count


def chats_with_ref(db: sqlite_utils.Database, ref: str) -> set[int]:
    """Chats that already have (or had) a delivery of a message with this ref: queueing it again skips them."""
    return {
        row[0]
        for row in db.execute(
            "select distinct deliveries.chat_id from deliveries join outbox_messages m on m.id = deliveries.message_id "
            "where m.ref = ?",
            [ref],
        ).fetchall()
    }


# --- the sender's side ------------------------------------------------------------------------------------


def recover(db: sqlite_utils.Database) -> tuple[list[int], list[int]]:
    """At start: deliveries left `sending` by a process that stopped mid-call may have arrived. Those
    never in doubt before go back to pending, to be sent once more; the others are failed. Both id lists."""
    with transaction(db):
        rows = db.execute("select id, unknown from deliveries where status = 'sending' order by id").fetchall()
        again = [id_ for id_, unknown in rows if unknown == 0]
        given_up = [id_ for id_, unknown in rows if unknown > 0]
        db.execute("update deliveries set status = 'pending', unknown = unknown + 1 where status = 'sending' and unknown = 0")
        db.execute(
            "update deliveries set status = 'failed', unknown = unknown + 1, "
            "error = 'fate unknown twice (stopped mid-send): not sent again, it may have arrived' where status = 'sending'"
        )
    return again, given_up


_DUE = (
    "select d.id, d.chat_id, d.attempts, m.text, m.kind, d.unknown, m.ref, m.lang from deliveries d "
    "join outbox_messages m on m.id = d.message_id "
    "where d.status = 'pending' and d.not_before <= ? "
    "and not exists (select 1 from deliveries e where e.chat_id = d.chat_id "
    "and e.status in ('pending', 'sending') and e.id < d.id) "
    "order by d.id limit ?"
)


def due(db: sqlite_utils.Database, now: float, limit: int) -> list[Delivery]:
    """Deliveries that may go now, oldest first: the head of each chat's queue, if its time has come."""
    return [
        Delivery(*row[:2], text=row[3], kind=row[4], attempts=row[2], unknown=row[5], ref=row[6], lang=row[7])
        for row in db.execute(_DUE, [now, limit]).fetchall()
    ]


def next_due(db: sqlite_utils.Database) -> float | None:
    """When the earliest waiting head of a chat's queue falls due (Unix seconds), None if nothing waits."""
    row = db.execute(
        "select min(d.not_before) from deliveries d where d.status = 'pending' "
        "and not exists (select 1 from deliveries e where e.chat_id = d.chat_id "
        "and e.status in ('pending', 'sending') and e.id < d.id)"
    ).fetchone()
    return row[0]


def mark_sending(db: sqlite_utils.Database, delivery_ids: list[int]) -> set[int]:
    """Just before the calls to Telegram; returns the ids still pending (a dropped chat's are not sent)."""
    marked: set[int] = set()
    with transaction(db):
        for start in range(0, len(delivery_ids), 500):  # SQLite caps the number of ? in one statement
            chunk = delivery_ids[start : start + 500]
            rows = db.execute(
                "update deliveries set status = 'sending', attempts = attempts + 1 "
                f"where id in ({', '.join('?' * len(chunk))}) and status = 'pending' returning id",
                chunk,
            ).fetchall()
            marked.update(row[0] for row in rows)
    return marked


def mark_sent(
    db: sqlite_utils.Database, sent: list[tuple[int, int | None, float]], spacing: float, group_spacing: float | None = None
) -> None:
    """Telegram accepted these (delivery id, Telegram's message id, when); each chat's next delivery then
    waits `spacing` seconds (Telegram's 1 message/s per chat), a group's `group_spacing` (20 a minute)."""
    group_spacing = spacing if group_spacing is None else group_spacing
    stamp = now_unix()
    with transaction(db):
        db.conn.executemany(
            "update deliveries set status = 'sent', sent_at = ?, telegram_message_id = ?, error = null where id = ?",
            [(stamp, message_id, delivery_id) for delivery_id, message_id, _ in sent],
        )
        db.conn.executemany(
            # group and channel ids are negative, users' positive
            "update deliveries set not_before = max(not_before, ? + case when chat_id < 0 then ? else ? end) where id = ("
            " select min(e.id) from deliveries e where e.status = 'pending'"
            " and e.chat_id = (select chat_id from deliveries where id = ?))",
            [(at, group_spacing, spacing, delivery_id) for delivery_id, _, at in sent],
        )


def retry_later(db: sqlite_utils.Database, delivery_id: int, not_before: float, error: str) -> None:
    """Back to the queue (429, timeout, network error): tried again from `not_before`, still first in its chat."""
    db.execute(
        "update deliveries set status = 'pending', not_before = ?, error = ? where id = ? and status = 'sending'",
        [not_before, error[:500], delivery_id],
    )


def retry_unknown(db: sqlite_utils.Database, delivery_id: int, not_before: float, error: str) -> None:
    """Its answer never came: sent once more from `not_before` (it may arrive twice), remembered as in doubt."""
    db.execute(
        "update deliveries set status = 'pending', not_before = ?, error = ?, unknown = unknown + 1 "
        "where id = ? and status = 'sending'",
        [not_before, error[:500], delivery_id],
    )


def fail(db: sqlite_utils.Database, delivery_id: int, error: str) -> None:
    """Telegram refused this message for good (a 400 that resending cannot fix)."""
    db.execute("update deliveries set status = 'failed', error = ? where id = ?", [error[:500], delivery_id])


def drop_chat(db: sqlite_utils.Database, chat_id: int, error: str) -> int:
    """The chat is gone for us (the bot was blocked or removed): pause its watches, drop what waits for it."""
    from storage import subscriptions

    with transaction(db):
        subscriptions.set_paused(db, chat_id, True)
        cursor = db.execute(
            "update deliveries set status = 'dropped', error = ? where chat_id = ? and status in ('pending', 'sending')",
            [error[:500], chat_id],
        )
    return cursor.rowcount


def move_chat(db: sqlite_utils.Database, old_id: int, new_id: int) -> int:
    """A group became a supergroup: its watches, settings and waiting deliveries follow it to the new id, due now."""
    from storage import chat_settings, subscriptions

    with transaction(db):
        subscriptions.move_chat(db, old_id, new_id)
        chat_settings.move_chat(db, old_id, new_id)
        cursor = db.execute(
            "update or ignore deliveries set chat_id = ?, status = 'pending', not_before = 0 "
            "where chat_id = ? and status in ('pending', 'sending')",
            [new_id, old_id],
        )
        # the new id already had these messages: nothing more to send to the old one
        db.execute(
            "update deliveries set status = 'dropped', error = 'chat migrated' where chat_id = ? and status in ('pending', 'sending')",
            [old_id],
        )
    return cursor.rowcount


def telegram_pause(db: sqlite_utils.Database) -> float | None:
    """Until when (Unix seconds) Telegram last asked the bot to stop sending; None if never."""
    row = db.execute("select until from telegram_pause where id = 1").fetchone()
    return row[0] if row else None


def set_telegram_pause(db: sqlite_utils.Database, until: float) -> None:
    db.execute(
        "insert into telegram_pause (id, until) values (1, ?) on conflict (id) do update set until = max(until, excluded.until)",
        [until],
    )


def forget_chat(db: sqlite_utils.Database, chat_id: int) -> int:
    """/forgetme: every delivery to the chat, sent or not, is deleted."""
    return db.execute("delete from deliveries where chat_id = ?", [chat_id]).rowcount


def prune(db: sqlite_utils.Database, before: datetime) -> int:
    """Forget finished deliveries created before `before`, and messages nobody references any more."""
    stamp = unix(before)
    with transaction(db):
        count = db.execute(
            "delete from deliveries where status in ('sent', 'dropped', 'failed') and created_at < ?", [stamp]
        ).rowcount
        db.execute(
            "delete from outbox_messages where created_at < ? and not exists "
            "(select 1 from deliveries where deliveries.message_id = outbox_messages.id)",
            [stamp],
        )
    return count


def counts(db: sqlite_utils.Database) -> dict[str, int]:
    """Deliveries by status, plus `backlog` (pending + sending): what /stats shows."""
    found = dict(db.execute("select status, count(*) from deliveries group by status").fetchall())
    result = {status: found.get(status, 0) for status in (PENDING, SENDING, SENT, DROPPED, FAILED)}
    result["backlog"] = result[PENDING] + result[SENDING]
    return result


def deliveries_of(db: sqlite_utils.Database, chat_id: int | None = None) -> list[dict]:
    """Every delivery (of one chat) with its message's kind, ref and language, oldest first (tests, /stats)."""
    sql = (
        "select d.*, m.kind, m.ref, m.lang from deliveries d join outbox_messages m on m.id = d.message_id"
        + (" where d.chat_id = ?" if chat_id is not None else "")
        + " order by d.id"
    )
    return list(db.query(sql, [chat_id] if chat_id is not None else []))
