"""The outbox on a real SQLite file: what queue_event / queue_text write, in one transaction, and the
queue discipline the sender relies on (head of each chat's queue, spacing, recovery, drops, moves)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bot import notifier
from bot.detector import Event
from storage import chat_settings, outbox, subscriptions
from storage.db import connect
from storage.events import recent_events

T0 = datetime(2022, 9, 14, 6, tzinfo=timezone.utc)


@pytest.fixture
def db(tmp_path):
    database = connect(tmp_path / "bw.db")
    yield database
    database.close()


def blocked(platform="tiktok", country="AZ") -> Event:
    return Event("blocked", country, platform, T0, (29049,), added=(29049,), method="tls", since=T0, anomalies=9, measurements=10)


def watcher(db, chat_id, language="en", country="AZ", platforms=("tiktok",), paused=False):
    subscriptions.ensure_chat(db, chat_id, "private", language)
    subscriptions.add_watches(db, chat_id, country, platforms)
    if paused:
        subscriptions.set_paused(db, chat_id, True)


def test_an_event_is_stored_with_one_delivery_per_active_watcher_and_one_render_per_language(db):
    for chat_id, language in [(1, "en"), (2, "ru"), (3, "az"), (4, "ru"), (5, None), (6, "en")]:
        watcher(db, chat_id, language)
    watcher(db, 7, "en", paused=True)  # blocked the bot
    watcher(db, 8, "en", platforms=("whatsapp",))  # another platform
    watcher(db, 9, "en", country="AM")  # another country

    assert notifier.queue_event(db, blocked()) == 6

    [stored] = recent_events(db)
    rows = outbox.deliveries_of(db)
    assert sorted(row["chat_id"] for row in rows) == [1, 2, 3, 4, 5, 6]
    assert {row["chat_id"]: row["lang"] for row in rows} == {1: "en", 2: "ru", 3: "az", 4: "ru", 5: "en", 6: "en"}
    assert {row["ref"] for row in rows} == {f"event:{stored['id']}"}
    messages = list(db.query("select lang, kind, text from outbox_messages order by lang"))
    assert [(m["lang"], m["kind"]) for m in messages] == [("az", "alert_blocked"), ("en", "alert_blocked"), ("ru", "alert_blocked")]
    assert "signs of blocking" in messages[1]["text"] and "признаки блокировки" in messages[2]["text"]
    assert all(row["status"] == "pending" for row in rows)


def test_nothing_is_written_when_the_alert_cannot_be_made(db):
    watcher(db, 1)
    broken = Event("exploded", "AZ", "tiktok", T0, (29049,))  # no template for this kind
    with pytest.raises(Exception):
        notifier.queue_event(db, broken)
    assert recent_events(db) == [] and outbox.deliveries_of(db) == []
    assert db.execute("select count(*) from outbox_messages").fetchone()[0] == 0


def test_queue_event_joins_the_callers_transaction(db):
    watcher(db, 1)
    from storage.db import transaction

    with pytest.raises(RuntimeError):
        with transaction(db):
            notifier.queue_event(db, blocked())
            raise RuntimeError("the poller failed to save its state")
    assert recent_events(db) == [] and outbox.deliveries_of(db) == []


def test_queue_text_picks_each_chats_language_skips_paused_and_never_queues_a_ref_twice(db):
    watcher(db, 1, "ru")
    watcher(db, 2, "az")
    watcher(db, 3, "en", paused=True)
    texts = {"en": "Finding", "ru": "Находка"}
    assert notifier.queue_text(db, [1, 2, 3, 4], texts, kind="finding", ref="finding:7") == 3
    got = {row["chat_id"]: (row["lang"], row["kind"]) for row in outbox.deliveries_of(db)}
    assert got == {1: ("ru", "finding"), 2: ("en", "finding"), 4: ("en", "finding")}  # az has no text: English
    assert notifier.queue_text(db, [1, 2, 4, 5], texts, kind="finding", ref="finding:7") == 1  # only chat 5 is new
    assert notifier.queue_text(db, [1], "one text for all", kind="signal") == 1
    with pytest.raises(ValueError):
        notifier.queue_text(db, [1], "x" * 5000, kind="finding")


def test_each_chat_sends_its_head_first_and_waits_a_second_after_a_send(db):
    watcher(db, 1, platforms=("tiktok", "whatsapp"))
    watcher(db, 2)
    notifier.queue_event(db, blocked("tiktok"))
    notifier.queue_event(db, blocked("whatsapp"))
    due = outbox.due(db, now=1000.0, limit=10)
    assert [d.chat_id for d in due] == [1, 2]  # chat 1's whatsapp alert waits behind its tiktok one
    assert outbox.mark_sending(db, [d.id for d in due]) == {d.id for d in due}
    assert outbox.due(db, now=1000.0, limit=10) == []  # both chats have one in flight
    outbox.mark_sent(db, [(due[0].id, 11, 1000.0)], spacing=1.0)
    assert outbox.due(db, now=1000.5, limit=10) == []  # chat 1's next: not before 1001
    assert outbox.next_due(db) == 1001.0
    [nxt] = outbox.due(db, now=1001.0, limit=10)
    assert nxt.chat_id == 1 and "WhatsApp" in nxt.text


def test_a_retry_keeps_its_place_and_a_restart_resends_what_was_in_flight(db):
    watcher(db, 1, platforms=("tiktok", "whatsapp"))
    notifier.queue_event(db, blocked("tiktok"))
    notifier.queue_event(db, blocked("whatsapp"))
    [first] = outbox.due(db, now=0, limit=10)
    outbox.mark_sending(db, [first.id])
    outbox.retry_later(db, first.id, not_before=50.0, error="429")
    assert outbox.due(db, now=10, limit=10) == []  # the second never overtakes the first
    [again] = outbox.due(db, now=50, limit=10)
    assert again.id == first.id and again.attempts == 1
    outbox.mark_sending(db, [again.id])
    assert outbox.recover(db) == ([first.id], [])  # the process died mid-call
    [resent] = outbox.due(db, now=50, limit=10)
    assert resent.id == first.id and resent.unknown == 1  # it may have arrived: sent once more, no more
    outbox.mark_sending(db, [resent.id])
    assert outbox.recover(db) == ([], [first.id])  # in doubt a second time: not sent a third time
    [row] = [d for d in outbox.deliveries_of(db, 1) if d["id"] == first.id]
    assert row["status"] == "failed" and "fate unknown twice" in row["error"]


def test_a_429_pause_is_kept_and_only_lengthened(db):
    assert outbox.telegram_pause(db) is None
    outbox.set_telegram_pause(db, 1600.0)
    outbox.set_telegram_pause(db, 1200.0)  # a shorter pause told later does not cut the longer one
    assert outbox.telegram_pause(db) == 1600.0


def test_a_gone_chat_is_paused_and_its_waiting_deliveries_dropped(db):
    watcher(db, 1, platforms=("tiktok", "whatsapp"))
    notifier.queue_event(db, blocked("tiktok"))
    notifier.queue_event(db, blocked("whatsapp"))
    assert outbox.drop_chat(db, 1, "Forbidden: bot was blocked by the user") == 2
    assert subscriptions.watchers(db, "AZ", "tiktok") == []
    assert outbox.counts(db) == {"pending": 0, "sending": 0, "sent": 0, "dropped": 2, "failed": 0, "backlog": 0}


def test_a_migrated_group_takes_its_watches_and_deliveries_to_the_new_id(db):
    subscriptions.ensure_chat(db, -5, "group", "ru")
    subscriptions.add_watches(db, -5, "AZ", ["tiktok"])
    chat_settings.set_zone(db, -5, "Asia/Baku")
    notifier.queue_event(db, blocked())
    [head] = outbox.due(db, now=0, limit=10)
    outbox.mark_sending(db, [head.id])
    chat_settings.add_mute(db, -5, "AZ", "", since=0, until=-1)  # already over: it holds nothing back here
    assert outbox.move_chat(db, -5, -1005) == 1
    [moved] = outbox.due(db, now=0, limit=10)
    assert moved.chat_id == -1005 and "признаки" in moved.text
    assert subscriptions.chat_watches(db, -1005) == [("AZ", "tiktok")]
    # its clock and its mute went with it; nothing is left under the old id
    assert chat_settings.get(db, -1005).zone == "Asia/Baku" and chat_settings.get(db, -5).zone is None
    assert [(m.chat_id, m.country) for m in chat_settings.mutes_of(db, -1005)] == [(-1005, "AZ")]
    assert chat_settings.mutes_of(db, -5) == []


def test_forget_and_prune(db):
    watcher(db, 1)
    watcher(db, 2)
    notifier.queue_event(db, blocked())
    [one, two] = outbox.due(db, now=0, limit=10)
    outbox.mark_sending(db, [one.id])
    outbox.mark_sent(db, [(one.id, 5, 0.0)], spacing=1)
    assert outbox.forget_chat(db, 2) == 1
    assert outbox.prune(db, datetime.now(timezone.utc) + timedelta(seconds=5)) == 1
    assert outbox.deliveries_of(db) == []
    assert db.execute("select count(*) from outbox_messages").fetchone()[0] == 0


def test_a_hundred_thousand_watchers_are_queued_in_sql_with_three_renders(db):
    db.conn.execute("begin")
    db.conn.executemany(
        "insert into chats (id, type, language, paused, created_at) values (?, 'private', ?, 0, 1663113600)",
        [(i, ("en", "ru", "az", None)[i % 4]) for i in range(1, 100_001)],
    )
    db.conn.executemany(
        "insert into watches (chat_id, country, platform, created_at) values (?, 'AZ', 'tiktok', 1663113600)",
        [(i,) for i in range(1, 100_001)],
    )
    db.conn.execute("commit")
    assert notifier.queue_event(db, blocked()) == 100_000
    assert db.execute("select count(*) from outbox_messages").fetchone()[0] == 3
    assert outbox.counts(db)["pending"] == 100_000
