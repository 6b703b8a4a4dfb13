"""What /forgetme erases from the database, each in one transaction."""

from __future__ import annotations

from storage import chat_settings, outbox, subscriptions
from storage.db import transaction


def forget_chat(db, chat_id: int) -> int:
    """The chat's row, its settings, its watches and every message queued or sent to it, at once;
    returns how many watches went with it."""
    with transaction(db):
        outbox.forget_chat(db, chat_id)
        chat_settings.forget(db, chat_id)
        chat_settings.forget_mutes(db, chat_id)
        return subscriptions.forget_chat(db, chat_id)
