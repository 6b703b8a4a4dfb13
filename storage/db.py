"""The one SQLite database: opening it, its schema migrations, and the one thread that touches it.

Every storage module (subscriptions, states, events, ...) is a set of plain synchronous functions
taking a `sqlite_utils.Database`; async code calls them through `Store.run`, which executes them
on a single dedicated thread, because an sqlite3 connection is bound to the thread that made it.
The tables and their migrations are in storage/schema.py, which imports no storage module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

from storage import schema

T = TypeVar("T")

log = logging.getLogger(__name__)


def _private_file(path: Path) -> None:
    """The database holds journalists' chat ids: its folder, when we create it, is 0700 and the file 0600.
    SQLite gives the -wal and -shm files the database file's mode, so they follow."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:  # O_EXCL: create it 0600 ourselves rather than let SQLite create it with the umask's 0644
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if file.stat().st_mode & 0o077:
                os.chmod(file, 0o600)  # an older release (or a copy) left it readable by others
        except FileNotFoundError:
            pass


def connect(path: str | Path) -> sqlite_utils.Database:
    """Open (creating folder and file, private) and migrate the database; WAL so readers never wait on the writer."""
    path = Path(path)
    if str(path) != ":memory:":
        _private_file(path)
    conn = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=True)
    db = sqlite_utils.Database(conn)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA busy_timeout=30000")
    db.execute("PRAGMA secure_delete=ON")  # deleted reports and chats are overwritten, not left in free pages
    schema.migrate(db)
    return db


@contextlib.contextmanager
def transaction(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """BEGIN IMMEDIATE … COMMIT: takes the write lock up front, so it never fails half-way under another writer."""
    conn = db.conn
    if conn.in_transaction:  # nested: the outer transaction decides
        yield db
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def scrub(db: sqlite_utils.Database) -> None:
    """After a delete (with secure_delete on): the old page images live on in the -wal until a checkpoint
    copies and truncates it."""
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def data_version(db: sqlite_utils.Database) -> int:
    """A number that changes when another connection commits to the database (SQLite's PRAGMA data_version)."""
    return db.execute("PRAGMA data_version").fetchone()[0]


def is_outage(error: sqlite3.Error) -> bool:
    """The database could not be used (locked, read-only, full, I/O, corrupt), as opposed to a bad statement or
    a broken constraint, which is a bug in the caller."""
    return isinstance(error, sqlite3.OperationalError) and "syntax error" not in str(error) and "no such" not in str(error) \
        or type(error) is sqlite3.DatabaseError


class Store:
    """The database behind one worker thread; `await store.run(fn, *args)` calls fn(db, *args) there."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="blockwatch-db")
        self._db: sqlite_utils.Database | None = None
        self._down_since: float | None = None  # when the current outage began (monotonic), None when up
        self._failed_calls = 0

    @classmethod
    async def open(cls, path: str | Path) -> "Store":
        store = cls(path)
        await store._call(store._open)
        return store

    @classmethod
    def open_sync(cls, path: str | Path) -> "Store":
        """Open from code that has no running event loop yet (`blockwatch run` before polling starts)."""
        store = cls(path)
        store._executor.submit(store._open).result()
        return store

    def _open(self) -> None:
        self._db = connect(self.path)

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run fn(db, *args, **kwargs) on the database thread."""
        return await self._call(lambda: self._watched(fn, *args, **kwargs))

    def run_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """The same, from code that is not in the event loop (benchmarks, the CLI before start)."""
        return self._executor.submit(lambda: self._watched(fn, *args, **kwargs)).result()

    def _watched(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """fn on the database thread, with each outage's start and end logged once, however often it recurs."""
        try:
            result = fn(self._db, *args, **kwargs)
        except sqlite3.Error as error:
            if is_outage(error):
                self._failed_calls += 1
                if self._down_since is None:
                    self._down_since = time.monotonic()
                    log.error("the database %s is unavailable (%s: %s); calls fail until it recovers",
                              self.path, type(error).__name__, error)
            raise
        if self._down_since is not None:
            log.warning("the database %s is available again after %.1f s (%d calls failed meanwhile)",
                        self.path, time.monotonic() - self._down_since, self._failed_calls)
            self._down_since, self._failed_calls = None, 0
        return result

    async def close(self) -> None:
        if self._db is not None:
            await self._call(self._db.close)
            self._db = None
        self._executor.shutdown(wait=True)
