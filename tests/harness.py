"""Running the real bot against the fake Bot API in a test: `async with running_bot(fake, path) as bot`."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from telegram import Update
from telegram.ext import Application

from bot.clock import system_clock
from bot.app import build_application, build_services
from bot.config import Settings
from bot.services import Services
from storage import outbox
from storage.db import Store
from tests.fakes.telegram import Call, FakeTelegram


@dataclass
class BotUnderTest:
    fake: FakeTelegram
    app: Application
    services: Services

    @property
    def store(self) -> Store:
        return self.services.store

    async def say(self, text: str, chat_id: int = 100, user_id: int | None = None, **kwargs) -> Call:
        """Send `text` as a user and return the bot's next message to that chat."""
        before = len(self.fake.sent(chat_id))
        self.fake.send_text(chat_id, user_id if user_id is not None else chat_id, text, **kwargs)
        return (await self.fake.wait_sent(chat_id, count=before + 1))[-1]

    async def press(self, message: Call, button: int | str = 0, user_id: int | None = None, **kwargs) -> tuple[Call | None, Call]:
        """Press a button (its index, or its label's start) under one of the bot's messages as a user;
        returns (the message as the bot edited it, or None, and the bot's answer to the press)."""
        chat_id = message.chat_id
        keys = [key for row in message.result["reply_markup"]["inline_keyboard"] for key in row]
        key = keys[button] if isinstance(button, int) else next(k for k in keys if k["text"].startswith(button))
        answers = len(self.fake.calls("answerCallbackQuery"))
        edits = len([c for c in self.fake.calls("editMessageText") if str(c.chat_id) == str(chat_id)])
        self.fake.press_button(chat_id, user_id if user_id is not None else chat_id, message.result["message_id"],
                               key["callback_data"], **kwargs)
        answer = (await self.fake.wait_for("answerCallbackQuery", count=answers + 1))[-1]
        edited = [c for c in self.fake.calls("editMessageText") if str(c.chat_id) == str(chat_id)]
        return (edited[-1] if len(edited) > edits else None), answer

    async def confirm(self, text: str, chat_id: int = 100, user_id: int | None = None, **kwargs) -> Call:
        """Send a command that asks first, press its Confirm button; the message it became."""
        asked = await self.say(text, chat_id, user_id, **kwargs)
        assert "reply_markup" in asked.params, f"{text} did not ask first: {asked.text}"
        edited, _ = await self.press(asked, 0, user_id, **{k: v for k, v in kwargs.items() if k == "language_code"})
        return edited


def human_pace(step: float = 5.0):
    """A clock for Services.clock that moves `step` seconds each time it is read: people typing commands
    seconds apart, as the crowd rules expect of people (a burst of new accounts within a second is held)."""
    start = system_clock()
    reads = itertools.count(1)
    return lambda: start + timedelta(seconds=step * next(reads))


async def settled(bot: BotUnderTest, timeout: float = 15.0) -> dict[str, int]:
    """Wait (a bounded poll) until nothing waits in the outbox — every queued delivery sent, dropped or
    failed — and return its counts by status. What a test then finds in the outbox and the fake is final:
    a duplicate, had one been queued, would be there too."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        counts = await bot.store.run(outbox.counts)
        if counts["backlog"] == 0:
            return counts
        assert loop.time() < deadline, f"the outbox did not settle in {timeout} s: {counts}"
        await asyncio.sleep(0.05)


CLOSED_PORT = "http://127.0.0.1:9"  # the discard port: nothing listens, a connection is refused at once


def settings_for(fake: FakeTelegram, database: Path, **overrides) -> Settings:
    return replace(
        # OONI on a closed local port unless a test serves a fake: a test never reaches the internet
        Settings(telegram_bot_token=fake.token, telegram_api_url=fake.url, database_path=database, ooni_api_url=CLOSED_PORT),
        **overrides,
    )


TEST_PRIVATE_BURST = 100


@contextlib.asynccontextmanager
async def running_bot(
    fake: FakeTelegram, database: Path, *, sending: bool = False, polling: bool = False, build=None, **overrides
) -> AsyncIterator[BotUnderTest]:
    """The Application polling the fake, built as `blockwatch run` builds it, until the block ends.

    `sending`: the sender drains the outbox; `polling`: the poller runs (off unless a test needs them);
    `build`: keyword arguments for build_application (e.g. answer_timeout). A private chat may get a
    burst of TEST_PRIVATE_BURST replies unless `build` says otherwise: a conversation test is not about
    Telegram's one message a second per chat (tests/test_flood.py is, with the real figure)."""
    settings = settings_for(fake, database, **overrides)
    store = await Store.open(settings.database_path)
    services = build_services(settings, store, sending=sending, polling=polling)
    app = build_application(services, **{"private_burst": TEST_PRIVATE_BURST, **(build or {})})
    await app.initialize()
    await app.post_init(app)
    await app.updater.start_polling(poll_interval=0, timeout=1, allowed_updates=Update.ALL_TYPES)
    await app.start()
    try:
        yield BotUnderTest(fake, app, services)
    finally:
        await app.updater.stop()
        await app.stop()
        await app.post_stop(app)
        await app.shutdown()
        await store.close()
