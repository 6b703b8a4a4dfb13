"""The HTTP server `blockwatch run` keeps on LISTEN: GET /healthz in both modes and, in webhook mode,
the POSTs Telegram makes to WEBHOOK_URL's path.

A webhook request counts only with the secret token given to setWebhook in its
X-Telegram-Bot-Api-Secret-Token header: anything else is refused with 403 before it is read, so
whoever finds the URL can neither inject updates nor learn anything.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone

from aiohttp import web

from bot.config import Address, ConfigError
from bot.health import health
from bot.services import Services
from storage import outbox

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class Webhook:
    """Where Telegram's updates come in: the path, the token they must carry, and what takes them."""

    def __init__(self, path: str, secret_token: str, feed: Callable[[dict], Awaitable[None]]):
        self.path = path or "/"
        self.secret_token = secret_token
        self.feed = feed  # hands one decoded update to the Application
        self._warned = False

    async def handle(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.secret_token.encode()):
            if not self._warned:  # one line, not a line per probe of the URL
                log.warning("refused a webhook request without the right secret token (from %s); further ones are logged at DEBUG", request.remote)
                self._warned = True
            else:
                log.debug("refused a webhook request without the right secret token (from %s)", request.remote)
            return web.json_response({"ok": False, "description": "forbidden"}, status=403)
        try:
            update = await request.json()
            if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
                raise ValueError("not an update")
        except (ValueError, json.JSONDecodeError):
            log.warning("a webhook request with the right token carried no update; ignored")
            return web.json_response({"ok": False, "description": "not an update"}, status=400)
        await self.feed(update)
        return web.json_response({"ok": True})


class WebServer:
    """aiohttp on LISTEN; `start()` says in one line (ConfigError) when the address cannot be had."""

    def __init__(self, services: Services, listen: Address, webhook: Webhook | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.services = services
        self.listen = listen
        self.webhook = webhook
        self.clock = clock
        self.started = clock()
        self._runner: web.AppRunner | None = None

    async def healthz(self, request: web.Request) -> web.Response:
        counts = await self.services.store.run(outbox.counts)
        poller = self.services.poller
        status, body = health(
            now=self.clock(),
            started=self.started,
            last_poll=poller.last_success if poller is not None else None,
            poll_interval=self.services.settings.poll_interval,
            outbox_waiting=counts["backlog"],
        )
        return web.json_response(body, status=status)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        if self.webhook is not None:
            app.router.add_post(self.webhook.path, self.webhook.handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.listen.host, self.listen.port).start()
        except OSError as error:
            await self._runner.cleanup()
            self._runner = None
            raise ConfigError(f"LISTEN {self.listen} cannot be used: {error.strerror or error}") from None
        self.started = self.clock()
        host, port = self._runner.addresses[0][:2]  # the port chosen when LISTEN's was 0
        log.info("serving /healthz%s on http://%s", f" and the webhook at {self.webhook.path}" if self.webhook else "", Address(host, port))

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
