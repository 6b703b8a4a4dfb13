"""/start and /help: what the bot does and how to use it, with examples."""

from __future__ import annotations

from telegram import Update
from telegram.ext import ContextTypes

from bot import catalog, watch_form
from bot.handlers import watch
from bot.handlers.common import chat_row, is_admin, reply


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    # a deep link (https://t.me/<bot>?start=watch_AZ_tiktok) arrives as /start watch_AZ_tiktok
    if context.args and (words := watch_form.read_deep_link(context.args[0])) is not None:
        await watch.watch_words(update, context, words)
        return
    chat = await chat_row(update, context)
    await reply(update, context, "help", lang=chat["language"], platforms=list(catalog.PLATFORMS.values()),
                admin=is_admin(update, context))
