"""The one representation of time: a database written by an older Blockwatch (ISO text times) is
rewritten to Unix seconds on the first start, and the bot then runs on it as before."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlite_utils

from bot.clock import unix
from bot.detector import BlockState
from storage import schema
from storage.db import connect
from storage.states import load_state
from tests.conftest import ADMIN
from tests.harness import running_bot

TIME_COLUMNS = {
    "chats": ("created_at",), "watches": ("created_at",), "states": ("updated_at",), "events": ("time", "created_at"),
    "outbox_messages": ("created_at",), "deliveries": ("created_at", "sent_at"), "drafts": ("created_at",),
    "findings": ("created_at",), "audit": ("time",),
}


def old_database(path, now: datetime) -> dict[str, str]:
    """A database as the release before the time migration left it, with a row in every table that held text times."""
    db = sqlite_utils.Database(path)
    for migrations in schema.MIGRATIONS[: schema.MIGRATIONS.index(schema.times)]:  # the sets that release had
        migrations.apply(db)
    iso = (now - timedelta(days=1)).isoformat(timespec="seconds")  # 2026-…T…+00:00, as the old code wrote
    zulu = (now - timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%SZ")  # the events table's form
    db.execute("insert into chats (id, type, language, paused, created_at) values (100, 'private', 'en', 0, ?)", [iso])
    db.execute("insert into watches (chat_id, country, platform, created_at) values (100, 'AZ', 'tiktok', ?)", [iso])
    db.execute("insert into states (country, platform, data, updated_at) values ('AM', 'tiktok', ?, ?)",
               [json.dumps({"country": "AM", "platform": "tiktok"}), iso])
    for n in range(3):  # three events; the newest is deleted, so the next id must still be 4
        db.execute("insert into events (time, country, platform, kind, data, created_at) values (?, 'AZ', 'tiktok', 'blocked', '{}', ?)",
                   [zulu, zulu])
    db.execute("delete from events where id = 3")
    db.execute("insert into outbox_messages (kind, lang, text, created_at) values ('finding', 'en', 'hello', ?)", [iso])
    db.execute("insert into deliveries (message_id, chat_id, status, created_at, sent_at) values (1, 100, 'sent', ?, ?)", [iso, iso])
    db.execute("insert into drafts (admin_id, chat_id, country, text, status, created_at) values (?, ?, 'AZ', 'x', 'pending', ?)",
               [ADMIN, ADMIN, iso])
    db.execute("insert into findings (admin_id, country, platform, text, source, recipients, created_at) "
               "values (?, 'AZ', 'tiktok', 'Seen on Azercell', 'broadcast:1', 1, ?)", [ADMIN, iso])
    db.execute("insert into audit (time, admin_id, action, detail) values (?, ?, 'broadcast', '{}')", [iso, ADMIN])
    db.close()
    return {"iso": iso, "zulu": zulu}


def test_an_old_database_gets_unix_seconds_in_every_time_column(tmp_path):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    written = old_database(tmp_path / "old.db", now)
    db = connect(tmp_path / "old.db")
    for table, columns in TIME_COLUMNS.items():
        declared = {row[1]: row[2] for row in db.execute(f"PRAGMA table_info({table})")}
        for column in columns:
            assert declared[column] == "INTEGER", (table, column)
            kinds = {row[0] for row in db.execute(f"select typeof({column}) from {table}")}
            assert kinds == {"integer"}, (table, column, kinds)
    assert db.execute("select created_at from chats").fetchone()[0] == unix(datetime.fromisoformat(written["iso"]))
    assert db.execute("select time from events where id = 1").fetchone()[0] == unix(now - timedelta(hours=5))
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    assert db.execute("insert into events (time, country, platform, kind, data, created_at) values (0, 'AZ', 'x', 'k', '{}', 0)").lastrowid == 4
    db.close()
    again = connect(tmp_path / "old.db")  # a second start changes nothing more
    assert again.execute("select created_at from chats").fetchone()[0] == unix(datetime.fromisoformat(written["iso"]))
    again.close()


async def test_the_bot_restarted_on_an_old_database_keeps_working(telegram, tmp_path):
    database = tmp_path / "old.db"
    old_database(database, datetime.now(timezone.utc).replace(microsecond=0))
    async with running_bot(telegram, database, admin_ids=frozenset({ADMIN})) as bot:
        watches = await bot.say("/watches", chat_id=100)
        assert "TikTok" in watches.text and "Azerbaijan" in watches.text
        status = await bot.say("/status AZ tiktok", chat_id=100)
        assert "Seen on Azercell" in status.text  # the finding from a day ago, found by its converted time
        stats = await bot.say("/stats", chat_id=ADMIN)
        assert "Events in the last week: 2" in stats.text, stats.text
        added = await bot.say("/watch AZ whatsapp", chat_id=100)
        assert "WhatsApp" in added.text
        rows = bot.store.run_sync(lambda db: [row[0] for row in db.execute("select typeof(created_at) from watches")])
        assert rows == ["integer", "integer"]


def test_a_state_stored_with_bare_measurement_ids_gets_the_explorer_links_the_source_hands_now(tmp_path):
    """Before the OONI source handed links, states kept OONI's bare measurement_uids as evidence."""
    uid = "20220914061234.123456_AZ_webconnectivity_1a2b3c4d5e6f7a8b"
    stored = json.loads((Path(__file__).parent / "fixtures" / "detector" / "state_v2_mid_block.json").read_text())
    text = json.dumps(stored).replace('"2022091402_29049_0"', json.dumps(uid))
    assert uid in text
    db = sqlite_utils.Database(tmp_path / "old.db")
    for migrations in schema.MIGRATIONS[: schema.MIGRATIONS.index(schema.evidence)]:
        migrations.apply(db)
    db.execute("insert into states (country, platform, data, updated_at) values ('AZ', 'tiktok', ?, 0)", [text])
    db.close()
    db = connect(tmp_path / "old.db")
    state = load_state(db, "AZ", "tiktok")
    assert f"https://explorer.ooni.org/m/{uid}" in state.evidence
    assert uid not in state.evidence  # no bare id left for an alert to show
    assert state.blocked_asns == BlockState.from_dict(stored).blocked_asns  # nothing else changed
    db.close()
