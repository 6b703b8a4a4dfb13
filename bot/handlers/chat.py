"""Commands about the chat itself: /language and /forgetme (which asks first)."""

from __future__ import annotations

from telegram import Update
from telegram.constants import ParseMode
from telegram.ext import ContextTypes

from bot import signals

from bot.handlers.common import (
    answer_confirmation, ask_to_confirm, chat_row, language_of, may_change_chat, read_confirmation, refuse_unless_admin, reply, reply_error,
    services,
)
from bot.parsing import BadInput, parse_language
from bot.render import LANGUAGES, render
from storage import privacy, subscriptions


async def language(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    try:
        code = parse_language(context.args or [])
    except BadInput as error:
        await reply_error(update, context, error, "language")
        return
    if await refuse_unless_admin(update, context, "language"):
        return
    chat = await chat_row(update, context)
    await services(context).store.run(subscriptions.set_language, chat["id"], code)
    await reply(update, context, "language", lang=code, name=LANGUAGES[code])


FORGET_PREFIX = "fg"


async def forget_me(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Say what would be erased and ask first: Confirm does it (`forget_button`)."""
    chat = update.effective_chat
    lang = await language_of(update, context)  # not chat_row: that would store the id we are erasing
    forget_chat = await may_change_chat(update, context)
    watches = len(await services(context).store.run(subscriptions.chat_watches, chat.id)) if forget_chat else 0
    await ask_to_confirm(update, context, FORGET_PREFIX, lang, kind="forget", chat_forgotten=forget_chat,
                         watches=watches, group=chat.type != "private")


async def forget_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Confirm erases this chat's data (in a group only an admin may) and whatever the bot keeps about the presser."""
    lang = await language_of(update, context)
    if await answer_confirmation(update, context, read_confirmation(update, context, FORGET_PREFIX), lang):
        return
    store = services(context).store
    chat = update.effective_chat
    forget_chat = await may_change_chat(update, context)
    removed_watches = await store.run(privacy.forget_chat, chat.id) if forget_chat else 0
    forgotten = await signals.forget(services(context), update.effective_user.id)
    text = render("forgotten", lang, chat_forgotten=forget_chat, watches=removed_watches, reports=forgotten.reports,
                  notes=forgotten.notes, messages=forgotten.messages, group=chat.type != "private")
    await update.callback_query.edit_message_text(text, parse_mode=ParseMode.HTML)
    await update.callback_query.answer()
