"""Keyed pseudonyms for reporters, and signatures for the report form's buttons.

A reporter is stored only as HMAC-SHA256(secret, "reporter:<telegram user id>") cut to 16 bytes:
the same person always gets the same pseudonym (so distinct reporters can be counted and
/forgetme can find their reports), but the database alone does not tell who it is.

Where the secret lives, and why: in a file beside the database (`<database>.secret`, mode 0600),
generated on first start — not in a table. Telegram user ids are a small, enumerable space
(about 10^10): whoever holds the secret can hash every id and unmask every reporter. A database
file gets copied (backups, a debugging session, a colleague's laptop); keeping the secret out of
it means such a copy holds pseudonyms no one can reverse. Lose the secret and old pseudonyms stop
matching their people — /forgetme then misses their old reports, which retention deletes anyway.

The same secret, under another label, signs the report form's callback data, so a forged or
replayed button (another user, another chat, an old form) is recognised without storing any state.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from bot.config import ConfigError

log = logging.getLogger(__name__)

SECRET_BYTES = 32
PSEUDONYM_BYTES = 16  # 128 bits: no two reporters collide in practice
SIGNATURE_BYTES = 9  # 72 bits in 12 base64 characters: keeps callback data well under 64 bytes


def secret_path(database_path: str | Path) -> Path | None:
    """Where the secret of this database lives; None for an in-memory database (the secret lives as long as it)."""
    if str(database_path) == ":memory:":
        return None
    path = Path(database_path)
    return path.with_name(path.name + ".secret")


class MissingSecret(ConfigError):
    """The secret is gone while reports made with it are stored: a new one would count every old reporter
    again as someone new, and /forgetme could not find their reports. Never created silently."""

    def __init__(self, path: Path, reports: int):
        super().__init__(
            f"{path} is missing, and the database holds {reports} crowd reports made with it. Restore it from "
            f"your backup (`blockwatch backup` wrote it beside the copy, as PATH.secret), or start the crowd data "
            f"afresh with `blockwatch reset-crowd` (deletes those reports; counts and signals stay)"
        )
        self.path, self.reports = path, reports


def load_or_create_secret(path: Path | None, reports_stored: int = 0) -> bytes:
    """The secret in `path`, created (0600, never overwritten) on first start — but never while
    `reports_stored` reports made with a lost secret are in the database (MissingSecret)."""
    if path is None:
        return secrets.token_bytes(SECRET_BYTES)
    if reports_stored and not path.exists():
        raise MissingSecret(path, reports_stored)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two processes starting at once cannot both write a secret
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(SECRET_BYTES))
            handle.flush()
            os.fsync(handle.fileno())
        log.info("created the reporters' pseudonym secret in %s", path)
    secret = path.read_bytes()
    if len(secret) < SECRET_BYTES:
        raise RuntimeError(f"{path} is shorter than {SECRET_BYTES} bytes: restore it or delete it and its reports")
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)  # someone loosened it: only the bot's user may read it
    return secret


class Pseudonyms:
    """Pseudonyms of reporters and signatures of buttons, from one secret."""

    def __init__(self, secret: bytes):
        self._reporter_key = hmac.new(secret, b"blockwatch reporter pseudonym", hashlib.sha256).digest()
        self._button_key = hmac.new(secret, b"blockwatch report form button", hashlib.sha256).digest()

    @classmethod
    def for_database(cls, database_path: str | Path, reports_stored: int = 0) -> "Pseudonyms":
        """The database's pseudonyms; `reports_stored` (its crowd reports) forbids making up a new secret."""
        return cls(load_or_create_secret(secret_path(database_path), reports_stored))

    def reporter(self, user_id: int) -> bytes:
        """The pseudonym stored instead of a Telegram user id."""
        return hmac.new(self._reporter_key, f"reporter:{int(user_id)}".encode(), hashlib.sha256).digest()[:PSEUDONYM_BYTES]

    def sign(self, text: str) -> str:
        """A short URL-safe signature of `text`."""
        digest = hmac.new(self._button_key, text.encode(), hashlib.sha256).digest()[:SIGNATURE_BYTES]
        return base64.urlsafe_b64encode(digest).decode()

    def verify(self, text: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(text), signature)
