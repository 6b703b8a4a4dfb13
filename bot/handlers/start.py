"""/start and /help: what the bot does and how to use it, with examples."""

from __future__ import annotations

from telegram import Update
from telegram.ext import ContextTypes

from bot import catalog
from bot.handlers.common import chat_row, is_admin, reply


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    chat = await chat_row(update, context)
    await reply(update, context, "help", lang=chat["language"], platforms=list(catalog.PLATFORMS.values()),
                admin=is_admin(update, context))
