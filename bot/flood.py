"""The one way out to Telegram: every Bot API call passes here, and here alone Telegram's limits and answers are known.

`FloodControl` is python-telegram-bot's rate-limiter hook (`ApplicationBuilder().rate_limiter(...)`):
its `process_request` wraps every call the Application's bot makes — replies, button edits, photos,
and the outbox's alerts, findings and signal DMs, which the Sender sends through the same bot.

- One `SendGate` for the whole bot: at most SEND_RATE message starts a second (see `SendGate`);
  a reply to someone who just wrote goes before any queued alert (`urgent`).
- Per chat (`ChatWindow`): about one message a second to a private chat (a short burst may go over,
  as Telegram allows), at most 20 a minute to a group.
- answerCallbackQuery, getChatMember and other calls that put no message in a chat go at once.
- 429: every send waits `retry_after` (remembered in the database, so a restart keeps waiting);
  a reply is then sent again, an alert goes back to the Sender, which re-queues it in the outbox.
- 403 / chat gone: the chat's watches are paused and its queued deliveries dropped, as for alerts.
- ChatMigrated: the chat's watches and deliveries move, and the reply goes to the new id.
- A call that surely never reached Telegram (`NotSent`) is tried again with backoff. One whose fate
  is unknown (a timeout after the request went out) is sent again at most once: at most one duplicate,
  counted and logged — the answer timeout is long (telegram_http.ANSWER_TIMEOUT) so that this is rare.

An alert's call carries `rate_limit_args=ALERT`: the Sender has already taken its place in the gate
(it marks the delivery `sending` only then), and it keeps its own record of what to do on errors.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import BaseRateLimiter

from bot.telegram_http import NotSent

log = logging.getLogger(__name__)

PER_CHAT_INTERVAL = 1.0  # Telegram: about one message per second to the same chat
PER_GROUP_INTERVAL = 3.0  # Telegram: at most 20 messages a minute to the same group (the outbox spaces alerts so)
PRIVATE_BURST = 3  # messages a private chat may get at once, then one a second on average
GROUP_PER_MINUTE = 20
NOT_SENT_RETRIES = 5  # a reply that never reached Telegram is tried this often, with backoff, before it fails
SAY_429_EVERY = 60.0  # seconds: a run of 429 answers is one log line, not one per send
LATE_AFTER = 60.0  # seconds a reply may wait before the log says replies are late (once per episode)
GONE_CHAT = ("chat not found", "user is deactivated", "peer_id_invalid", "bot was kicked", "not enough rights to send")

# Calls that put (or change) a message in a chat: what Telegram's message limits count.
SENDS = frozenset({
    "sendMessage", "sendPhoto", "sendDocument", "sendMediaGroup", "sendAnimation", "sendVideo",
    "sendAudio", "sendVoice", "sendSticker", "sendLocation", "sendPoll", "copyMessage",
    "forwardMessage", "editMessageText", "editMessageReplyMarkup", "editMessageCaption",
    "editMessageMedia",
})


class _Alert:
    """rate_limit_args of the Sender's calls (see the module's docstring)."""

    def __repr__(self) -> str:
        return "ALERT"


ALERT = _Alert()


# --- what an answer means (pure) ------------------------------------------------------------------


@dataclass(frozen=True)
class Fate:
    """What a failed call means for the message: `kind` is one of the names below."""

    kind: str  # "wait" (429), "moved" (ChatMigrated), "gone" (403 / chat gone), "refused" (other 400),
    #            "not_sent" (never reached Telegram: safe to resend), "unknown" (may have arrived), "error"
    seconds: float = 0.0  # for "wait"
    new_chat_id: int | None = None  # for "moved"


def fate_of(error: BaseException) -> Fate:
    if isinstance(error, RetryAfter):
        return Fate("wait", seconds=retry_seconds(error))
    if isinstance(error, ChatMigrated):
        return Fate("moved", new_chat_id=error.new_chat_id)
    if isinstance(error, Forbidden):
        return Fate("gone")
    if isinstance(error, BadRequest):
        gone = any(sign in error.message.lower() for sign in GONE_CHAT)
        return Fate("gone" if gone else "refused")
    if isinstance(error, NotSent):
        return Fate("not_sent")
    if isinstance(error, (TimedOut, NetworkError)):
        return Fate("unknown")
    return Fate("error")


def retry_seconds(error: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB 22 warns when retry_after is read as an int
        warnings.simplefilter("ignore")
        value = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


# --- the overall limit ------------------------------------------------------------------------------


class SendGate:
    """The overall send limit: starts spaced 1/rate apart and at most `rate` sends in any one second.

    A send counts from its start until `period` after its answer arrived, so however the requests
    travel, Telegram never sees more than `size` of them within one period. Waiters are served in
    order, urgent ones (replies) first; one dispatcher task sleeps for them all.
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic, sleep=asyncio.sleep):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.size = max(1, math.floor(rate)) if math.isfinite(rate) else math.inf
        self.period = self.size / rate if math.isfinite(rate) else 0.0
        self.spacing = 1.0 / rate
        self.paused_until = 0.0  # a 429 holds every send until then
        self._clock = clock
        self._sleep = sleep
        self._open = 0  # sends started and not yet answered
        self._answered: deque[float] = deque()
        self._next_start = 0.0
        self._freed = asyncio.Event()
        self._urgent: deque[asyncio.Future] = deque()
        self._normal: deque[asyncio.Future] = deque()
        self._dispatcher: asyncio.Task | None = None

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, self._clock() + seconds)

    @property
    def waiting(self) -> int:
        """Sends waiting for their turn (urgent and not)."""
        return len(self._urgent) + len(self._normal)

    def _due_in(self) -> float | None:
        """0 if a send may start now, else seconds until one may; None while every slot is in flight."""
        now = self._clock()
        while self._answered and self._answered[0] <= now - self.period:
            self._answered.popleft()
        wait = max(self.paused_until - now, self._next_start - now)
        if wait > 0:
            return wait
        if self._open + len(self._answered) < self.size:
            return 0.0
        if self._answered:
            return max(self._answered[0] + self.period - now, 0.0005)
        return None

    def _take(self) -> None:
        self._open += 1
        # on the ideal timeline: a late wake-up does not push every later send back
        self._next_start = max(self._next_start, self._clock() - self.spacing) + self.spacing

    def ready(self) -> bool:
        """Whether a send may start now without waiting (nobody waiting before it)."""
        return not self._urgent and not self._normal and self._due_in() == 0

    async def acquire(self, urgent: bool = False) -> None:
        if not self._urgent and (urgent or not self._normal) and self._due_in() == 0:
            self._take()
            return
        future = asyncio.get_running_loop().create_future()
        (self._urgent if urgent else self._normal).append(future)
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.create_task(self._dispatch())
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # granted as it was cancelled: the turn is given back
            raise

    def release(self) -> None:
        self._open -= 1
        if self.period:
            self._answered.append(self._clock())
        self._freed.set()

    async def _dispatch(self) -> None:
        while True:
            for queue in (self._urgent, self._normal):
                while queue and queue[0].done():  # cancelled while waiting
                    queue.popleft()
            queue = self._urgent or self._normal
            if not queue:
                return
            wait = self._due_in()
            if wait is None:
                self._freed.clear()
                await self._freed.wait()
            elif wait > 0:
                await self._sleep(max(wait, 0.0005))
            else:
                self._take()
                queue.popleft().set_result(None)

    def close(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.cancel()


class ChatWindow:
    """Per chat: at most `private` messages in any `private_period` seconds (a group's `group` in `group_period`).

    Telegram: "avoid sending more than one message per second [to a chat]; short bursts may go over",
    and a group takes at most 20 a minute. A conversation's replies rarely wait; a stream of them does.
    """

    def __init__(self, private: int = PRIVATE_BURST, private_period: float = PRIVATE_BURST * PER_CHAT_INTERVAL,
                 group: int = GROUP_PER_MINUTE, group_period: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.limits = {True: (private, private_period), False: (group, group_period)}
        self._clock = clock
        self._starts: dict[Any, deque[float]] = {}

    def wait(self, chat_id: Any) -> float:
        starts = self._starts.get(chat_id)
        if not starts:
            return 0.0
        most, period = self.limits[_is_private(chat_id)]
        now = self._clock()
        while starts and starts[0] <= now - period:
            starts.popleft()
        return max(0.0, starts[0] + period - now) if len(starts) >= most else 0.0

    def started(self, chat_id: Any) -> None:
        now = self._clock()
        if len(self._starts) > 4096:  # only chats with a start inside their period are worth remembering
            self._starts = {chat: starts for chat, starts in self._starts.items()
                            if starts and starts[-1] > now - self.limits[_is_private(chat)][1]}
        self._starts.setdefault(chat_id, deque()).append(now)
        most = self.limits[_is_private(chat_id)][0]
        while len(self._starts[chat_id]) > most:
            self._starts[chat_id].popleft()


def _is_private(chat_id: Any) -> bool:
    return isinstance(chat_id, int) and chat_id > 0  # groups and channels have negative ids, "@name" is a channel


# --- what the database remembers -------------------------------------------------------------------------


class ChatFate(Protocol):
    """What Telegram's answers change in the bot's records (StoredChatFate is the real one)."""

    async def gone(self, chat_id: int, reason: str) -> int: ...
    async def migrated(self, old_id: int, new_id: int) -> None: ...
    async def load_pause(self) -> float | None: ...
    async def save_pause(self, until: float) -> None: ...


class StoredChatFate:
    """ChatFate on the bot's database: the same storage functions the Sender uses for alerts."""

    def __init__(self, store):
        self.store = store

    async def gone(self, chat_id: int, reason: str) -> int:
        from storage import outbox

        return await self.store.run(outbox.drop_chat, chat_id, reason)

    async def migrated(self, old_id: int, new_id: int) -> None:
        from storage import outbox

        await self.store.run(outbox.move_chat, old_id, new_id)

    async def load_pause(self) -> float | None:
        from storage import outbox

        return await self.store.run(outbox.telegram_pause)

    async def save_pause(self, until: float) -> None:
        from storage import outbox

        await self.store.run(outbox.set_telegram_pause, until)


# --- the hook ------------------------------------------------------------------------------------------


class FloodControl(BaseRateLimiter):
    """PTB's rate-limiter hook: see the module's docstring."""

    def __init__(
        self,
        rate: float = 30.0,
        *,
        fate: ChatFate | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep=asyncio.sleep,
        late_after: float = LATE_AFTER,
        private_burst: int = PRIVATE_BURST,
    ):
        self.gate = SendGate(rate, clock=clock, sleep=sleep)
        self.chats = ChatWindow(private_burst, private_burst * PER_CHAT_INTERVAL, clock=clock)
        self.fate = fate
        self.late_after = late_after
        self._clock, self._wall, self._sleep = clock, wall, sleep
        self.replies = 0  # replies (not alerts) Telegram accepted
        self.retried = 0  # sends answered 429 and sent again
        self.unknown = 0  # sends whose fate was unknown and that were sent once more (possible duplicates)
        self.late = 0  # replies that waited more than late_after
        self._late_logged = False
        self._said_429, self._unsaid_429 = -math.inf, 0

    async def initialize(self) -> None:
        """A 429 pause that an earlier run was told about still holds (retry_after can be minutes)."""
        if self.fate is None:
            return
        until = await self.fate.load_pause()
        left = (until or 0) - self._wall()
        if left > 0:
            self.gate.pause(left)
            log.warning("Telegram asked the bot to pause; %.0fs of that pause are left: nothing is sent until then", left)

    async def shutdown(self) -> None:
        self.gate.close()

    async def process_request(self, callback, args, kwargs, endpoint, data, rate_limit_args):
        if endpoint not in SENDS:
            return await self._at_once(callback, args, kwargs)
        if rate_limit_args is ALERT:
            return await self._alert(callback, args, kwargs, data)
        return await self._reply(callback, args, kwargs, data)

    async def _at_once(self, callback, args, kwargs):
        """Calls that put no message in a chat (answerCallbackQuery...): no queue; only a 429 makes them wait."""
        while True:
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as error:
                await self._sleep(retry_seconds(error))

    async def _alert(self, callback, args, kwargs, data):
        """The Sender holds its turn in the gate and handles every error itself; a 429 also pauses everyone."""
        chat_id = data.get("chat_id")
        if wait := self.chats.wait(chat_id):
            await self._sleep(wait)
        self.chats.started(chat_id)
        try:
            return await callback(*args, **kwargs)
        except RetryAfter as error:
            await self._told_to_wait(retry_seconds(error))
            raise

    async def _reply(self, callback, args, kwargs, data):
        """A reply waits its turn before every queued alert, and is sent until Telegram has it."""
        began = self._clock()
        not_sent = unknown = 0
        while True:
            chat_id = data.get("chat_id")
            if wait := self.chats.wait(chat_id):
                await self._sleep(wait)
            await self.gate.acquire(urgent=True)
            self.chats.started(chat_id)
            try:
                result = await callback(*args, **kwargs)
            except TelegramError as error:
                fate = fate_of(error)
                if fate.kind == "wait":
                    self.retried += 1
                    await self._told_to_wait(fate.seconds)
                    continue
                if fate.kind == "moved" and fate.new_chat_id is not None:
                    log.info("chat %s became supergroup %s: the reply goes there", chat_id, fate.new_chat_id)
                    if self.fate is not None:
                        await self.fate.migrated(chat_id, fate.new_chat_id)
                    data["chat_id"] = fate.new_chat_id
                    continue
                if fate.kind == "gone" and self.fate is not None and isinstance(chat_id, int):
                    dropped = await self.fate.gone(chat_id, f"{type(error).__name__}: {error.message}")
                    log.info("chat %s is gone (%s): watches paused, %d deliveries dropped", chat_id, error.message, dropped)
                elif fate.kind == "not_sent" and not_sent < NOT_SENT_RETRIES:
                    not_sent += 1
                    await self._sleep(min(30.0, 2.0 ** (not_sent - 1)))
                    continue
                elif fate.kind == "unknown" and unknown == 0:
                    unknown += 1
                    self.unknown += 1
                    log.warning("a reply's answer never came (%s): sent once more, the chat may see it twice", error)
                    continue
                raise
            finally:
                self.gate.release()
            self.replies += 1
            self._note_delay(self._clock() - began)
            return result

    async def _told_to_wait(self, seconds: float) -> None:
        """429: every send waits; said at most once a minute, remembered for a restart."""
        now = self._clock()
        if now - self._said_429 >= SAY_429_EVERY:
            more = f" ({self._unsaid_429} more 429 answers since the last such line)" if self._unsaid_429 else ""
            log.warning("Telegram asked to wait %.0fs (429): every send waits, then goes again%s", seconds, more)
            self._said_429, self._unsaid_429 = now, 0
        else:
            self._unsaid_429 += 1
        self.gate.pause(seconds)
        if self.fate is not None:
            try:
                await self.fate.save_pause(self._wall() + seconds)
            except Exception:  # the pause still holds in memory; only a restart would forget it
                log.exception("could not record Telegram's pause")

    def _note_delay(self, waited: float) -> None:
        if waited > self.late_after:
            self.late += 1
            if not self._late_logged:
                self._late_logged = True
                log.warning("replies are going out late (this one waited %.0fs for Telegram's limits); none is dropped", waited)
        elif self._late_logged and waited < self.late_after / 2:
            self._late_logged = False
            log.info("replies are on time again; %d went out late", self.late)
