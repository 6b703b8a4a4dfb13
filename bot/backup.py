"""`blockwatch backup PATH`: a consistent copy of the database, taken while the bot runs, and the
reporters' pseudonym secret beside it — the two belong together (bot/pseudonym.py says why the
secret is not in the database; a database restored without it cannot match reporters again).

SQLite's online backup API copies the last committed state page by page while the bot goes on
writing (WAL: it never waits for the bot, nor the bot for it). The copy is checked
(`PRAGMA integrity_check`) and only then given its name, so PATH is never a half-written file.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from bot.config import ConfigError
from bot.pseudonym import secret_path


def backup(database: Path, target: Path, now: datetime | None = None) -> tuple[Path, Path | None]:
    """Copy `database` to `target` (a new file, or a folder that gets a dated file) and its secret to
    `<target>.secret` (0600). Returns both paths (None: the database has no secret yet)."""
    if not database.is_file():
        raise ConfigError(f"DATABASE_PATH {str(database)!r} does not exist: there is nothing to back up")
    if target.is_dir():
        stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
        target = target / f"{database.stem}-{stamp}{database.suffix or '.db'}"
    secret_from, secret_to = secret_path(database), secret_path(target)
    for path in (target, secret_to):
        if path.exists() or path.is_symlink():
            raise ConfigError(f"backup: {str(path)!r} exists already; give a new file or a folder")
    if not target.parent.is_dir():
        raise ConfigError(f"backup: the folder {str(target.parent)!r} does not exist")

    partial = target.with_name(target.name + ".partial")
    secret = secret_from.read_bytes() if secret_from is not None and secret_from.is_file() else None
    try:
        _copy_database(database, partial)
        if secret is not None:
            _write_private(secret_to, secret)
        os.replace(partial, target)
    except (OSError, sqlite3.Error) as error:
        partial.unlink(missing_ok=True)
        if secret is not None and not target.exists():
            secret_to.unlink(missing_ok=True)
        raise ConfigError(f"backup to {str(target)!r} failed: {getattr(error, 'strerror', None) or error}") from None
    return target, (secret_to if secret is not None else None)


def _copy_database(database: Path, into: Path) -> None:
    into.unlink(missing_ok=True)  # a .partial left by an interrupted backup
    os.close(os.open(into, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # chats' ids and watches: private from the start
    # read-only: a backup must never migrate or otherwise change the database it copies
    source = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    copy = sqlite3.connect(into)
    try:
        source.backup(copy)
        copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        verdict = copy.execute("PRAGMA integrity_check").fetchone()[0]
        if verdict != "ok":
            raise sqlite3.DatabaseError(f"the copy is damaged: {verdict}")
    finally:
        copy.close()
        source.close()


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
