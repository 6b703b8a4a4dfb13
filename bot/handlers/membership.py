"""my_chat_member: the bot was blocked, kicked or removed (pause the chat's watches) or came back (resume)."""

from __future__ import annotations

import logging

from telegram import ChatMember, Update
from telegram.ext import ContextTypes

from bot.handlers.common import services
from storage import subscriptions

log = logging.getLogger(__name__)

GONE = {ChatMember.BANNED, ChatMember.LEFT}


async def my_chat_member(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    change = update.my_chat_member
    was_gone = change.old_chat_member.status in GONE
    is_gone = change.new_chat_member.status in GONE
    if was_gone == is_gone:
        return
    known = await services(context).store.run(subscriptions.set_paused, change.chat.id, is_gone)
    if known:
        log.info("chat %s %s", change.chat.id, "paused: the bot was blocked or removed" if is_gone else "resumed")
