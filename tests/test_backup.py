"""`blockwatch backup PATH` through the real CLI: the copy restores (watches read back, reporters'
pseudonyms still match), the secret comes along at 0600, a writer busy meanwhile is neither waited
for nor half-copied, and bad targets are one line that changes nothing."""

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import time

from bot.crowd import Report
from bot.pseudonym import Pseudonyms
from storage import privacy, reports
from storage.db import Store, connect
from storage.subscriptions import add_watches, chat_watches, ensure_chat


def blockwatch(*args, database, cwd):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd), "DATABASE_PATH": str(database)}
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def make_database(path):
    """A database as a running bot leaves it: a chat watching two pairs, one crowd report, the secret beside it."""
    pseudonyms = Pseudonyms.for_database(path)
    db = connect(path)
    ensure_chat(db, 42, "private")
    add_watches(db, 42, "AZ", ["tiktok", "whatsapp"])
    reports.add_report(db, Report(pseudonyms.reporter(7), "AZ", "whatsapp", "slow", int(time.time()), 29049, None))
    return db, pseudonyms


def test_a_backup_restores_with_its_secret(tmp_path):
    database = tmp_path / "live" / "blockwatch.db"
    database.parent.mkdir()
    db, pseudonyms = make_database(database)
    try:
        done = blockwatch("backup", str(tmp_path / "copy.db"), database=database, cwd=tmp_path)
    finally:
        db.close()
    assert done.returncode == 0, done.stderr
    assert "copy.db" in done.stdout and "copy.db.secret" in done.stdout
    assert stat.S_IMODE((tmp_path / "copy.db.secret").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "copy.db").stat().st_mode) == 0o600
    assert not list(tmp_path.glob("copy.db.partial")) and not list(tmp_path.glob("copy.db-wal"))

    # restore: both files put back where a new DATABASE_PATH points
    restored = tmp_path / "restored" / "blockwatch.db"
    restored.parent.mkdir()
    shutil.copy(tmp_path / "copy.db", restored)
    shutil.copy(tmp_path / "copy.db.secret", tmp_path / "restored" / "blockwatch.db.secret")
    store = Store.open_sync(restored)
    try:
        assert store.run_sync(chat_watches, 42) == [("AZ", "tiktok"), ("AZ", "whatsapp")]
        again = Pseudonyms.for_database(restored)
        assert again.reporter(7) == pseudonyms.reporter(7)  # /forgetme still finds the reporter's reports
        assert store.run_sync(privacy.forget_reporter, again.reporter(7)).reports == 1
    finally:
        store.run_sync(lambda db: db.close())


def test_a_backup_while_a_writer_is_busy_holds_only_what_was_committed(tmp_path):
    database = tmp_path / "blockwatch.db"
    db, _ = make_database(database)
    writer = sqlite3.connect(database, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # the bot in the middle of a transaction
    writer.execute("insert into watches (chat_id, country, platform, created_at) values (42, 'IR', 'tiktok', '2026-01-01T00:00:00Z')")
    try:
        done = blockwatch("backup", str(tmp_path), database=database, cwd=tmp_path)  # a folder: a dated file in it
    finally:
        writer.execute("COMMIT")
        writer.close()
        db.close()
    assert done.returncode == 0, done.stderr
    [copy] = [p for p in tmp_path.glob("blockwatch-*.db")]
    assert (tmp_path / (copy.name + ".secret")).read_bytes() == (tmp_path / "blockwatch.db.secret").read_bytes()
    copied = sqlite3.connect(copy)
    try:
        assert copied.execute("select country, platform from watches order by platform").fetchall() == [("AZ", "tiktok"), ("AZ", "whatsapp")]
    finally:
        copied.close()


def test_bad_targets_are_one_line_and_change_nothing(tmp_path):
    database = tmp_path / "blockwatch.db"
    make_database(database)[0].close()
    (tmp_path / "taken.db").write_text("keep me")
    before = sorted(p.name for p in tmp_path.iterdir())
    for target, says in ((tmp_path / "taken.db", "exists already"), (tmp_path / "no" / "such" / "x.db", "does not exist")):
        done = blockwatch("backup", str(target), database=database, cwd=tmp_path)
        assert done.returncode == 2
        assert done.stderr.startswith("blockwatch: backup") and says in done.stderr and done.stderr.count("\n") == 1, done.stderr
    missing = blockwatch("backup", str(tmp_path / "x.db"), database=tmp_path / "never.db", cwd=tmp_path)
    assert missing.returncode == 2 and missing.stderr.startswith("blockwatch: DATABASE_PATH") and missing.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "taken.db").read_text() == "keep me"
