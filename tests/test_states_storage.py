"""The detector's storage against a real SQLite file: states per (country, platform) and the events log."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bot.detector import BlockState, Event, Thresholds, detect
from bot.observations import Observation
from storage.db import connect, transaction
from storage.events import count_events, recent_events, record_events
from storage.states import all_states, load_state, save_state

UTC = timezone.utc
HOUR = timedelta(hours=1)
T0 = datetime(2022, 9, 13, tzinfo=UTC)
ONE_RUN = Thresholds(corroboration_gap=timedelta(0))  # one bucket makes a block here: storage is what is tested


@pytest.fixture
def db(tmp_path):
    database = connect(tmp_path / "blockwatch.db")
    yield database
    database.close()


def block(country="AZ", platform="tiktok", asn=29049, now=T0 + HOUR):
    o = Observation(country, platform, asn, now - HOUR, now, 12, 10, method="tls", evidence=tuple(f"https://explorer.ooni.org/m/u{i}" for i in (1, 2, 3, 4)))
    return detect(None, [o], now, ONE_RUN)


def test_a_state_survives_saving_and_loading(db):
    state, events = block()
    assert [e.kind for e in events] == ["blocked"]
    assert load_state(db, "AZ", "tiktok") is None
    save_state(db, state)
    loaded = load_state(db, "AZ", "tiktok")
    assert loaded == state
    assert loaded.blocked_asns == (29049,) and loaded.method == "tls" and loaded.blocked_since == T0
    assert load_state(db, "AZ", "whatsapp") is None


def test_saving_again_replaces_the_row(db):
    state, _ = block()
    save_state(db, state)
    state, events = detect(state, [], T0 + 2 * HOUR)
    state.networks[29049].anomalies = 99  # something visibly different
    save_state(db, state)
    assert db.execute("select count(*) from states").fetchone()[0] == 1
    assert load_state(db, "AZ", "tiktok").networks[29049].anomalies == 99


def test_all_states_lists_every_pair_or_one_countrys(db):
    for country, platform in [("AZ", "tiktok"), ("AZ", "whatsapp"), ("AM", "tiktok")]:
        save_state(db, block(country, platform)[0])
    assert [(s.country, s.platform) for s in all_states(db)] == [("AM", "tiktok"), ("AZ", "tiktok"), ("AZ", "whatsapp")]
    assert [(s.country, s.platform) for s in all_states(db, "AZ")] == [("AZ", "tiktok"), ("AZ", "whatsapp")]
    assert all_states(db, "IR") == []


def test_events_are_recorded_and_listed_newest_first(db):
    _, first = block(now=T0 + HOUR)
    _, second = block("AM", "tiktok", 12297, now=T0 + 5 * HOUR)
    ids = record_events(db, first + second)
    assert len(ids) == 2 and ids[0] < ids[1]
    rows = recent_events(db)
    assert [r["id"] for r in rows] == [ids[1], ids[0]]
    assert rows[1]["kind"] == "blocked" and rows[1]["country"] == "AZ" and rows[1]["asns"] == [29049]
    assert rows[1]["evidence"] == [f"https://explorer.ooni.org/m/u{i}" for i in (1, 2, 3)]
    assert rows[1]["time"] == "2022-09-13T01:00:00Z"
    assert Event.from_json(rows[1]) == first[0]
    assert [r["country"] for r in recent_events(db, country="AM")] == ["AM"]
    assert recent_events(db, platform="whatsapp") == []
    assert [r["id"] for r in recent_events(db, since=T0 + 2 * HOUR)] == [ids[1]]
    assert len(recent_events(db, limit=1)) == 1
    assert count_events(db, T0) == 2
    assert count_events(db, T0 + 2 * HOUR) == 1
    assert count_events(db, T0 + 6 * HOUR) == 0
    assert record_events(db, []) == []


def test_state_and_events_commit_together_or_not_at_all(db):
    state, events = block()
    with pytest.raises(RuntimeError):
        with transaction(db):
            save_state(db, state)
            record_events(db, events)
            raise RuntimeError("crash between detecting and sending")
    assert load_state(db, "AZ", "tiktok") is None and count_events(db, T0) == 0
    with transaction(db):
        save_state(db, state)
        record_events(db, events)
    assert load_state(db, "AZ", "tiktok") == state and count_events(db, T0) == 1


def test_a_restart_from_the_database_neither_repeats_nor_misses(tmp_path):
    path = tmp_path / "blockwatch.db"
    o = Observation("AZ", "tiktok", 29049, T0, T0 + HOUR, 12, 10, method="tls")
    db = connect(path)
    state, events = detect(load_state(db, "AZ", "tiktok"), [o], T0 + HOUR, ONE_RUN)
    with transaction(db):
        save_state(db, state)
        record_events(db, events)
    db.close()

    db = connect(path)  # the process restarted; the same poll runs again
    state, events = detect(load_state(db, "AZ", "tiktok"), [o], T0 + HOUR, ONE_RUN, country="AZ", platform="tiktok")
    assert events == []
    for k in range(1, 80):  # OK data until the block is over, the state saved and reloaded each poll
        ok = Observation("AZ", "tiktok", 29049, T0 + k * HOUR, T0 + (k + 1) * HOUR, 6, 0)
        state, events = detect(load_state(db, "AZ", "tiktok") or state, [ok], T0 + (k + 1) * HOUR, ONE_RUN)
        with transaction(db):
            save_state(db, state)
            record_events(db, events)
    assert [r["kind"] for r in recent_events(db)] == ["unblocked", "blocked"]
    assert recent_events(db)[0]["duration_seconds"] == 3600
    db.close()


def test_the_schema_migrates_a_bare_database_and_imports_no_storage_module(tmp_path):
    import subprocess
    import sys

    import sqlite_utils

    from storage import schema

    db = sqlite_utils.Database(tmp_path / "only-schema.db")
    schema.migrate(db)
    assert {"states", "events", "chats", "deliveries", "reports", "drafts", "audit"} <= set(db.table_names())
    assert db["states"].pks == ["country", "platform"]
    save_state(db, BlockState("AZ", "tiktok"))
    assert load_state(db, "AZ", "tiktok") == BlockState("AZ", "tiktok")
    # the circle is gone: importing the database layer pulls in no module that imports it back
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, storage.db; print(sorted(m for m in sys.modules if m.startswith('storage.')))"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert loaded.strip() == "['storage.db', 'storage.schema']"
