"""What the handlers share: reaching the services, the chat's language, replying with a template,
and the group-admin check."""

from __future__ import annotations

import logging

from telegram import Chat, Update
from telegram.constants import ChatMemberStatus, ParseMode
from telegram.ext import ContextTypes

from bot.parsing import BadInput
from bot.render import normalise_language, render
from bot.services import Services
from storage import chat_settings, subscriptions

log = logging.getLogger(__name__)

# Telegram's placeholder senders: an anonymous group admin, and a message sent "as a channel"
GROUP_ANONYMOUS_BOT = 1087968824
CHANNEL_BOT = 136817688


def services(context: ContextTypes.DEFAULT_TYPE) -> Services:
    return context.application.bot_data["services"]


async def chat_row(update: Update, context: ContextTypes.DEFAULT_TYPE) -> dict:
    """The chat's stored row, created on first contact (language from the sender's Telegram language)."""
    chat = update.effective_chat
    user = update.effective_user
    language = normalise_language(user.language_code if user else None)
    return await services(context).store.run(subscriptions.ensure_chat, chat.id, chat.type, language)


async def language_of(update: Update, context: ContextTypes.DEFAULT_TYPE) -> str:
    chat = update.effective_chat
    row = await services(context).store.run(subscriptions.get_chat, chat.id) if chat else None
    if row and row["language"]:
        return row["language"]
    user = update.effective_user
    return normalise_language(user.language_code if user else None)


async def zone_of(update: Update, context: ContextTypes.DEFAULT_TYPE) -> str | None:
    """The chat's time zone (/timezone) as stored; None is UTC."""
    chat = update.effective_chat
    return (await services(context).store.run(chat_settings.get, chat.id)).zone if chat else None


async def reply(update: Update, context: ContextTypes.DEFAULT_TYPE, template: str, lang: str | None = None, **values):
    """Render templates/<template>.html in the chat's language and time zone and send it to the chat the update came from."""
    if lang is None:
        lang = await language_of(update, context)
    text = render(template, lang, zone=await zone_of(update, context), **values)
    return await context.bot.send_message(
        update.effective_chat.id,
        text,
        parse_mode=ParseMode.HTML,
        disable_web_page_preview=True,
    )


async def reply_error(update: Update, context: ContextTypes.DEFAULT_TYPE, error: BadInput, command: str) -> None:
    await reply(update, context, "errors", kind=error.kind, command=command, **error.details)


async def may_change_chat(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """In a group only its admins change what the group watches; private chats always may."""
    chat = update.effective_chat
    if chat.type == Chat.PRIVATE:
        return True
    user = update.effective_user
    message = update.effective_message
    if message is not None and message.sender_chat is not None:
        # sent as the group itself (an anonymous admin) or as a channel
        return message.sender_chat.id == chat.id
    if user is None or user.id in (GROUP_ANONYMOUS_BOT, CHANNEL_BOT):
        return False
    member = await context.bot.get_chat_member(chat.id, user.id)
    return member.status in (ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR)


async def refuse_unless_admin(update: Update, context: ContextTypes.DEFAULT_TYPE, command: str) -> bool:
    """True (and a polite refusal sent) when the sender may not change this group's settings."""
    if await may_change_chat(update, context):
        return False
    await reply(update, context, "errors", kind="group_admins_only", command=command)
    return True


def is_admin(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    user = update.effective_user
    return user is not None and user.id in services(context).settings.admin_ids


async def refuse_unless_bot_admin(update: Update, context: ContextTypes.DEFAULT_TYPE, command: str) -> bool:
    """True (and a plain refusal sent, and logged) when the sender is not in ADMIN_IDS."""
    if is_admin(update, context):
        return False
    log.warning("refused /%s from a non-admin", command)  # no id: the sender may be a reporter
    await reply(update, context, "errors", kind="admins_only", command=command)
    return True
