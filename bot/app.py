"""Build the python-telegram-bot Application and wire the handlers to it: no logic here."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable
from typing import Any

from telegram import BotCommand, Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    BaseUpdateProcessor,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    MessageHandler,
    filters,
)
from telegram.request import BaseRequest

from bot import report_form, signals
from bot.handlers import admin, chat, fallback, membership, report, start, watch
from bot.render import DEFAULT_LANGUAGE, LANGUAGES, render_plain
from bot.services import Services
from bot.telegram_http import AiohttpRequest

log = logging.getLogger(__name__)

def menu(lang: str) -> list[BotCommand]:
    """The command menu in `lang` (templates/menu.html); admin commands are left out on purpose."""
    lines = render_plain("menu", lang).splitlines()
    return [BotCommand(*(part.strip() for part in line.split(":", 1))) for line in lines if ":" in line]


class PerChatOrder(BaseUpdateProcessor):
    """Updates of different chats run concurrently; those of one chat run in the order they came."""

    def __init__(self, max_concurrent_updates: int = 256):
        super().__init__(max_concurrent_updates)
        self._locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        chat = update.effective_chat if isinstance(update, Update) else None
        if chat is None:
            await coroutine
            return
        lock = self._locks[chat.id]
        async with lock:
            await coroutine
        if not lock.locked() and not getattr(lock, "_waiters", None):
            self._locks.pop(chat.id, None)

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass


def add_handlers(application: Application) -> None:
    new_messages = filters.UpdateType.MESSAGE  # edits are answered, not re-run
    commands = {
        ("start", "help"): start.help_command,
        ("watch",): watch.watch,
        ("unwatch",): watch.unwatch,
        ("watches",): watch.watches,
        ("status",): watch.status,
        ("language",): chat.language,
        ("forgetme",): chat.forget_me,
        ("report",): report.report,
        ("signals",): report.list_signals,
        ("confirm",): report.confirm,
        ("dismiss",): report.dismiss,
        ("broadcast",): admin.broadcast,
        ("stats",): admin.stats,
    }
    for names, callback in commands.items():
        application.add_handler(CommandHandler(list(names), callback, filters=new_messages))
    application.add_handler(CallbackQueryHandler(admin.broadcast_button, pattern=f"^{admin.CALLBACK_PREFIX}:"))
    application.add_handler(CallbackQueryHandler(report.report_button, pattern=f"^{report_form.CALLBACK_PREFIX}:"))
    application.add_handler(ChatMemberHandler(membership.my_chat_member, ChatMemberHandler.MY_CHAT_MEMBER))
    # the catch-alls last: in one group only the first handler that matches runs
    application.add_handler(CallbackQueryHandler(fallback.unknown_button))
    application.add_handler(MessageHandler(filters.UpdateType.EDITED_MESSAGE, fallback.edited))
    application.add_handler(MessageHandler(filters.UpdateType.CHANNEL_POSTS, fallback.channel_post))
    application.add_handler(MessageHandler(new_messages & filters.COMMAND, fallback.unknown_command))
    application.add_handler(
        MessageHandler(new_messages & filters.ChatType.PRIVATE & ~filters.COMMAND & ~filters.StatusUpdate.ALL, fallback.not_a_command)
    )
    application.add_error_handler(fallback.on_error)


async def _post_init(application: Application) -> None:
    for lang in LANGUAGES:  # English is the menu for every language we have no translation of
        await application.bot.set_my_commands(menu(lang), language_code=None if lang == DEFAULT_LANGUAGE else lang)
    services: Services = application.bot_data["services"]
    application.bot_data["tasks"] = [asyncio.create_task(loop()) for loop in services.background]


async def _post_stop(application: Application) -> None:
    tasks = application.bot_data.pop("tasks", [])
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def build_application(
    services: Services,
    *,
    token: str | None = None,
    request: BaseRequest | None = None,
    updates_request: BaseRequest | None = None,
) -> Application:
    """The Application for `services`; `request` replaces HTTP (the console uses that)."""
    settings = services.settings
    builder = (
        ApplicationBuilder()
        .token(token or settings.require_token())
        .base_url(f"{settings.telegram_api_url}/bot")
        .base_file_url(f"{settings.telegram_api_url}/file/bot")
        .concurrent_updates(PerChatOrder())
        .post_init(_post_init)
        .post_stop(_post_stop)
    )
    if request is None:
        request = AiohttpRequest()
        # a long poll holds its connection for up to `timeout` seconds: it gets its own session
        updates_request = AiohttpRequest(pool_size=1, read_timeout=None)
    builder = builder.request(request).get_updates_request(updates_request or request)
    application = builder.build()
    application.bot_data["services"] = services
    signals.wire(services)  # reporters' pseudonyms, /forgetme's eraser of reports, the purge loop
    services.extras["application"] = application  # the sender sends through this Application's bot
    add_handlers(application)
    return application
