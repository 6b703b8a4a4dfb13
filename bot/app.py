"""Wire everything, and only here: the Services (`build_services`) and the python-telegram-bot
Application with its handlers (`build_application`). No logic here.

`run` (polling or webhook), `console`, `poll --once` and the tests all build the same two objects
with these two calls; what differs is only which loops they ask for."""

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

from bot import report_form, signals, watch_form
from bot.chart_maker import ChartMaker
from bot.chat_jobs import ChatJobs
from bot.config import Settings
from bot.handlers import admin, chat, clock, fallback, membership, report, start, watch
from bot.on_demand import StatusLookup
from bot.poller import Poller
from bot.pseudonym import Pseudonyms
from bot.render import DEFAULT_LANGUAGE, LANGUAGES, render_plain
from bot.sender import Sender
from bot.services import Services
from bot.flood import PRIVATE_BURST, FloodControl, StoredChatFate
from bot.telegram_http import ANSWER_TIMEOUT, AiohttpRequest
from storage import reports
from storage.db import Store

log = logging.getLogger(__name__)

def build_services(
    settings: Settings, store: Store, *, sending: bool = True, polling: bool = True, on_demand: bool | None = None
) -> Services:
    """The parts of a bot over `store`: the sender (`sending`), the poller (`polling`) and the crowd
    reports' upkeep, whose loops start with the Application (`_post_init`). `on_demand` (default: as
    `polling`) gives /status the poller's sources without its loop, as the console wants."""
    # a lost secret with reports still stored stops here (MissingSecret): never a silent new key
    pseudonyms = Pseudonyms.for_database(settings.database_path, store.run_sync(reports.stored_reports))
    services = Services(settings, store, pseudonyms)
    if polling or on_demand:
        services.poller = Poller(services)
        if polling:
            services.background.append(services.poller.run)
        services.status_lookup = StatusLookup(
            store, services.poller.source, services.poller.outages, settings.poll_interval, lambda: services.clock(),
        )
    services.charts = ChartMaker.for_ooni(store, settings.ooni_api_url)
    if sending:
        services.sender = Sender(store, rate=settings.send_rate, charts=services.charts)  # its bot is the Application's
        services.background.append(services.sender.run)
    services.chat_jobs = ChatJobs(services)
    if sending:  # summaries and digests are queued only where something sends them
        services.background.append(services.chat_jobs.run)
    services.background.append(lambda: signals.upkeep_loop(services))  # sweeps for signals, purges old reports
    return services


def menu(lang: str) -> list[BotCommand]:
    """The command menu in `lang` (templates/menu.html); admin commands are left out on purpose."""
    lines = render_plain("menu", lang).splitlines()
    return [BotCommand(*(part.strip() for part in line.split(":", 1))) for line in lines if ":" in line]


class PerChatOrder(BaseUpdateProcessor):
    """Updates of different chats run concurrently; those of one chat run in the order they came.
    A button press never waits for a free slot: its answer must come at once, even under a surge."""

    def __init__(self, max_concurrent_updates: int = 256):
        super().__init__(max_concurrent_updates)
        self._locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        if isinstance(update, Update) and update.callback_query is not None:
            await self.do_process_update(update, coroutine)  # not behind the slots a surge's replies hold
            return
        await super().process_update(update, coroutine)

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
        ("timezone",): clock.timezone_command,
        ("quiet",): clock.quiet,
        ("mute",): clock.mute,
        ("unmute",): clock.unmute,
        ("digest",): clock.digest,
        ("history",): watch.history,
        ("report",): report.report,
        ("signals",): admin.list_signals,
        ("confirm",): admin.confirm,
        ("dismiss",): admin.dismiss,
        ("broadcast",): admin.broadcast,
        ("stats",): admin.stats,
    }
    for names, callback in commands.items():
        application.add_handler(CommandHandler(list(names), callback, filters=new_messages))
    application.add_handler(CallbackQueryHandler(admin.broadcast_button, pattern=f"^{admin.CALLBACK_PREFIX}:"))
    application.add_handler(CallbackQueryHandler(report.report_button, pattern=f"^{report_form.CALLBACK_PREFIX}:"))
    application.add_handler(CallbackQueryHandler(watch.watch_button, pattern=f"^{watch_form.CALLBACK_PREFIX}:"))
    application.add_handler(CallbackQueryHandler(watch.unwatch_all_button, pattern=f"^{watch.UNWATCH_ALL_PREFIX}:"))
    application.add_handler(CallbackQueryHandler(chat.forget_button, pattern=f"^{chat.FORGET_PREFIX}:"))
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
    answer_timeout: float = ANSWER_TIMEOUT,
    private_burst: int = PRIVATE_BURST,
) -> Application:
    """The Application for `services`; `request` replaces HTTP (the console uses that), not the way out:
    every call still passes FloodControl. `answer_timeout`: how long a call waits for Telegram's answer;
    `private_burst`: messages a private chat may get at once before one a second (tests raise it)."""
    settings = services.settings
    builder = (
        ApplicationBuilder()
        .token(token or settings.require_token())
        .base_url(f"{settings.telegram_api_url}/bot")
        .base_file_url(f"{settings.telegram_api_url}/file/bot")
        .concurrent_updates(PerChatOrder())
        # the one way out: every Bot API call, replies and the Sender's alerts alike (bot/flood.py)
        .rate_limiter(FloodControl(settings.send_rate, fate=StoredChatFate(services.store), private_burst=private_burst))
        .post_init(_post_init)
        .post_stop(_post_stop)
    )
    if request is None:
        request = AiohttpRequest(read_timeout=answer_timeout)
        # a long poll holds its connection for up to `timeout` seconds: it gets its own session
        updates_request = AiohttpRequest(pool_size=1, read_timeout=None)
    builder = builder.request(request).get_updates_request(updates_request or request)
    application = builder.build()
    application.bot_data["services"] = services
    if services.sender is not None:
        services.sender.bot = application.bot  # alerts leave through the same bot (and HTTP session) as replies
    add_handlers(application)
    return application
