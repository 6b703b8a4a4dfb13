"""Everything no other handler took: unknown commands, plain text, stickers and photos, edits,
channel posts — each gets a short answer that points to /help, and the error handler logs a
crash once and tells the user something went wrong instead of going silent."""

from __future__ import annotations

import logging

from telegram import Chat, Update
from telegram.error import Forbidden
from telegram.ext import ContextTypes

from bot.handlers.common import language_of, reply
from bot.parsing import MAX_ARGUMENT_TEXT
from bot.render import render_plain

log = logging.getLogger(__name__)


async def unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    command, _, addressee = message.text.split()[0][1:].partition("@")
    if addressee and addressee.lower() != context.bot.username.lower():
        return  # meant for another bot in the same group
    await reply(update, context, "errors", kind="unknown_command", command=command[:64])


async def not_a_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Text, stickers, photos in a private chat (in groups the bot stays quiet unless addressed)."""
    message = update.effective_message
    if message.text and len(message.text) > MAX_ARGUMENT_TEXT:
        await reply(update, context, "errors", kind="too_long", command="", length=len(message.text), limit=MAX_ARGUMENT_TEXT)
    elif message.text:
        await reply(update, context, "errors", kind="not_a_command", command="")
    else:
        await reply(update, context, "errors", kind="not_text", command="")


async def unknown_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A press on a button no handler knows (an old message, or forged data): say so, change nothing."""
    await update.callback_query.answer(render_plain("notice", await language_of(update, context), kind="stale_button"))


async def edited(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """An edited command is not run again: running it twice would surprise more than it helps."""
    message = update.edited_message
    if message.chat.type == Chat.PRIVATE or (message.text or "").startswith("/"):
        await reply(update, context, "errors", kind="edited", command="")


async def channel_post(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if (update.channel_post.text or "").startswith("/"):
        await reply(update, context, "errors", kind="channel", command="")


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    if isinstance(context.error, Forbidden):  # the chat blocked the bot: bot/flood.py paused it and said so
        log.info("update %s not answered: %s", getattr(update, "update_id", "?"), context.error)
        return
    log.error("a handler failed on update %s", getattr(update, "update_id", "?"), exc_info=context.error)
    if isinstance(update, Update) and update.effective_chat and not isinstance(context.error, Forbidden):
        try:
            await reply(update, context, "errors", kind="internal", command="")
        except Exception:  # the apology itself failed (Telegram down?): the log line above is enough
            pass
