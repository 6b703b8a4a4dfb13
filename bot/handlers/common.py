"""What the handlers share: reaching the services, the chat's language, replying with a template,
and the group-admin check."""

from __future__ import annotations

import logging
from bot.clock import unix

from telegram import Chat, Update
from telegram.constants import ChatMemberStatus, ParseMode
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot import buttons
from bot.parsing import BadInput
from bot.render import normalise_language, render, render_plain
from bot.services import Services
from storage import chat_settings, subscriptions

log = logging.getLogger(__name__)

# Telegram's placeholder senders: an anonymous group admin, and a message sent "as a channel"
GROUP_ANONYMOUS_BOT = 1087968824
CHANNEL_BOT = 136817688


def services(context: ContextTypes.DEFAULT_TYPE) -> Services:
    return context.application.bot_data["services"]


def chat_identity(update: Update) -> tuple[int, str, str]:
    """(chat id, chat type, starting language): what a chat's row is created with on first contact —
    its language from the sender's Telegram language."""
    chat = update.effective_chat
    user = update.effective_user
    return chat.id, chat.type, normalise_language(user.language_code if user else None)


async def chat_row(update: Update, context: ContextTypes.DEFAULT_TYPE) -> dict:
    """The chat's stored row, created on first contact."""
    return await services(context).store.run(subscriptions.ensure_chat, *chat_identity(update))


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
    return await send_html(context, update.effective_chat.id, text)


async def send_html(context: ContextTypes.DEFAULT_TYPE, chat_id: int, text: str, reply_markup=None):
    """Send ready Telegram-HTML text to a chat, without link previews."""
    return await context.bot.send_message(
        chat_id, text, parse_mode=ParseMode.HTML, disable_web_page_preview=True, reply_markup=reply_markup,
    )


async def edit_form(query, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
    """A button form moves on: its message becomes `text` (and `markup`) in place."""
    try:
        await query.edit_message_text(text, parse_mode=ParseMode.HTML, reply_markup=markup, disable_web_page_preview=True)
    except BadRequest as error:
        if "not modified" not in str(error).lower():  # the same button pressed twice: nothing to change
            raise


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
    """True (and a refusal sent) unless the sender is in ADMIN_IDS *now* and writes in the private chat with
    the bot: in a group, an admin's previews, signal lists and statistics would be posted to everyone, so
    there the answer is one line pointing to the private chat (whoever asks: it tells nobody who is admin)."""
    chat = update.effective_chat
    if chat is not None and chat.type != Chat.PRIVATE:
        await reply(update, context, "errors", kind="admin_private_only", command=command,
                    link=f"https://t.me/{context.bot.username}")
        return True
    if is_admin(update, context):
        return False
    log.warning("refused /%s from a non-admin", command)  # no id: the sender may be a reporter
    await reply(update, context, "errors", kind="admins_only", command=command)
    return True


# -- destructive commands ask first: Confirm/Cancel buttons, signed for the chat and the user, expiring

CONFIRM_TTL = 600  # seconds


async def ask_to_confirm(update: Update, context: ContextTypes.DEFAULT_TYPE, prefix: str, lang: str, **values) -> None:
    """Send templates/confirm.html (its `kind` says what would happen) with Confirm and Cancel buttons."""
    chat_id, user_id = update.effective_chat.id, update.effective_user.id
    expires = unix(services(context).clock()) + CONFIRM_TTL
    sign = lambda payload: buttons.sign(services(context).pseudonyms, prefix, chat_id, user_id, payload, expires)  # noqa: E731
    keyboard = InlineKeyboardMarkup([[
        InlineKeyboardButton(render_plain("confirm", lang, kind=f"{values['kind']}_button"), callback_data=sign("ok")),
        InlineKeyboardButton(render_plain("confirm", lang, kind="cancel_button"), callback_data=sign("x")),
    ]])
    text = render("confirm", lang, zone=await zone_of(update, context), minutes=CONFIRM_TTL // 60, **values)
    await send_html(context, chat_id, text, reply_markup=keyboard)


def read_confirmation(update: Update, context: ContextTypes.DEFAULT_TYPE, prefix: str) -> str:
    """"ok" | "cancel" | "expired" | "invalid" (forged, another person's, or not a button of ours)."""
    query = update.callback_query
    if query.message is None or update.effective_user is None:
        return "invalid"
    meaning, payload = buttons.read(services(context).pseudonyms, prefix, query.message.chat.id,
                                    update.effective_user.id, query.data, unix(services(context).clock()))
    if meaning != "ok":
        return meaning
    return {"ok": "ok", "x": "cancel"}.get(payload, "invalid")


async def answer_confirmation(update: Update, context: ContextTypes.DEFAULT_TYPE, meaning: str, lang: str) -> bool:
    """Settle a press that does nothing (cancel, expired, invalid): the message says so. True when handled."""
    query = update.callback_query
    if meaning == "invalid":
        await query.answer(render_plain("confirm", lang, kind="invalid"), show_alert=True)
        return True
    if meaning in ("cancel", "expired"):
        await query.edit_message_text(render("confirm", lang, kind=meaning, minutes=CONFIRM_TTL // 60), parse_mode=ParseMode.HTML)
        await query.answer(render_plain("confirm", lang, kind=meaning, minutes=CONFIRM_TTL // 60))
        return True
    return False
