"""`blockwatch run` from start to stop: wait for the Bot API, take updates by long polling or by
webhook (WEBHOOK_URL), serve /healthz on LISTEN, and on SIGINT/SIGTERM stop it all in order.

Both modes run the same Services and Application (app.py): only where updates come from differs.
Stopping: first no new updates (webhook server, long poll), then the handlers in flight finish,
then the background loops (the sender lets its sends in flight be answered), then the database.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
from urllib.parse import urlparse

from telegram import Bot, Update
from telegram.error import Conflict, InvalidToken, NetworkError, TelegramError
from telegram.ext import Application

from bot.app import build_application, build_services
from bot.config import ConfigError, Settings
from bot.telegram_http import AiohttpRequest
from bot.web import Webhook, WebServer
from storage.db import Store

log = logging.getLogger("blockwatch")


async def run(settings: Settings, store: Store) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        if await wait_for_bot_api(settings, stop):
            await _serve(settings, store, stop)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await store.close()


async def _serve(settings: Settings, store: Store, stop: asyncio.Event) -> None:
    services = build_services(settings, store)
    application = build_application(services)
    webhook = None
    if settings.webhook_url:
        # a token of this process's own: a request without it did not come from Telegram's setWebhook
        webhook = Webhook(urlparse(settings.webhook_url).path, secrets.token_urlsafe(32), _feeder(application))
    server = WebServer(services, settings.listen, webhook)
    await server.start()  # a LISTEN that cannot be had is said before anything else starts
    mode = f"webhook {settings.webhook_url}" if webhook else "long polling"
    log.info("Blockwatch starting (%s): Bot API %s, OONI %s, database %s", mode, settings.telegram_api_url, settings.ooni_api_url, settings.database_path)
    try:
        await application.initialize()
        try:
            await application.post_init(application)  # the command menu; the poller, sender and upkeep loops
            if webhook is not None:
                await _set_webhook(application, settings.webhook_url, webhook.secret_token)
            else:
                await application.updater.start_polling(allowed_updates=Update.ALL_TYPES, error_callback=_polling_error(application))
            await application.start()
            await stop.wait()
        finally:
            await server.stop()  # no more webhook updates
            if application.updater.running:
                await application.updater.stop()
            if application.running:
                await application.stop()  # handlers in flight finish
            await application.post_stop(application)  # background loops: the sender finishes its sends in flight
            await application.shutdown()
    finally:
        await server.stop()
    log.info("Blockwatch stopped")


def _polling_error(application: Application):
    """What a failed getUpdates does: a 409 Conflict (another process polls with this token) is said
    once, in words an operator acts on; anything else goes to the error handler, as PTB's run_polling does."""
    said = False

    def on_error(error: TelegramError) -> None:
        nonlocal said
        if isinstance(error, Conflict):
            if not said:
                log.error("another process is taking this bot's updates (409 Conflict from getUpdates): "
                          "only one Blockwatch may run per token — stop the other one; logged once")
                said = True
            return
        application.create_task(application.process_error(error=error, update=None))

    return on_error


def _feeder(application: Application):
    async def feed(data: dict) -> None:
        await application.update_queue.put(Update.de_json(data, application.bot))

    return feed


async def _set_webhook(application: Application, url: str, secret_token: str) -> None:
    try:
        await application.bot.set_webhook(url, secret_token=secret_token, allowed_updates=Update.ALL_TYPES)
    except TelegramError as error:
        raise ConfigError(f"WEBHOOK_URL {url} was refused by the Bot API: {error.message}") from None
    log.info("webhook set: Telegram sends updates to %s", url)


async def wait_for_bot_api(settings: Settings, stop: asyncio.Event, first_delay: float = 1.0, longest_delay: float = 60.0) -> bool:
    """Before starting: the Bot API answers getMe with our token. Unreachable → retried with backoff,
    logged once; a refused token → one clear line. False when `stop` was set while waiting."""
    bot = Bot(settings.require_token(), base_url=f"{settings.telegram_api_url}/bot", request=AiohttpRequest())
    delay, warned = first_delay, False
    try:
        while not stop.is_set():
            try:
                await bot.initialize()
                if warned:
                    log.info("the Bot API at %s answers now", settings.telegram_api_url)
                return True
            except InvalidToken:
                raise ConfigError(f"TELEGRAM_BOT_TOKEN was refused by the Bot API at {settings.telegram_api_url}: check it with @BotFather") from None
            except NetworkError as error:  # TimedOut is one too
                if not warned:
                    log.warning("cannot reach the Bot API at %s (%s); retrying with backoff until it answers", settings.telegram_api_url, error.message)
                    warned = True
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except TimeoutError:
                pass
            delay = min(delay * 2, longest_delay)
        return False
    finally:
        await bot.shutdown()
