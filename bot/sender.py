"""The outbox drain loop: sends queued deliveries to Telegram within its limits, each exactly once.

One Sender per process. It takes the head of each chat's queue (storage/outbox.py keeps the order)
and sends it through the Application's bot:

- overall at most SEND_RATE messages/s (`SendWindow`: starts spaced 1/rate apart, and never more
  than `rate` sends counted in any second, each counted until a second after Telegram answered —
  so jitter on the way cannot push a burst over Telegram's sliding window);
- per chat one message at a time, in queue order, at least a second apart;
- 429: every send waits `retry_after`, the delivery goes again, first in its chat;
- 403 (blocked, kicked) or "chat not found": the chat's watches are paused, its waiting deliveries dropped;
- ChatMigrated: the chat's watches and deliveries move to the new id, and it is sent there;
- timeouts, network errors, Telegram 5xx: sent again with exponential backoff;
- other 400s: the delivery fails for good (logged), the chat's next one goes on.

A delivery is marked `sending` just before the call and `sent` only after Telegram accepted it.
At start, rows left `sending` by a killed process are sent again (see storage/outbox.py): a hard
kill can repeat at most the messages that were in flight — one per chat, `max_in_flight` in all.
A clean stop (SIGTERM) lets in-flight sends finish and records them, so it repeats nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from telegram import LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut

from bot import chat_clock
from storage import chat_settings, outbox
from storage.db import is_outage

log = logging.getLogger(__name__)

PER_CHAT_INTERVAL = 1.0  # Telegram: about one message per second to the same chat
PER_GROUP_INTERVAL = 3.0  # Telegram: at most 20 messages a minute to the same group
MAX_BACKOFF = 300.0  # seconds; a delivery keeps trying through a long Telegram outage
GIVE_UP_AFTER = 10  # attempts, for errors we do not understand (never for timeouts or network errors)
IDLE_CHECK = 5.0  # seconds between looks at the outbox when nobody wakes us (another process may queue)
STOP_GRACE = 5.0  # seconds a clean stop waits for sends in flight to be answered
KEEP_FINISHED = timedelta(days=30)  # sent/dropped/failed deliveries are kept this long for /stats and audits
GONE_CHAT = ("chat not found", "user is deactivated", "peer_id_invalid", "bot was kicked", "not enough rights to send")


class SendWindow:
    """The overall send limit: starts spaced 1/rate apart and at most `rate` sends in any one second.

    A send counts from its start until `period` after its answer arrived, so however the requests
    travel, Telegram never sees more than `size` of them within one period.
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

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, self._clock() + seconds)

    async def acquire(self) -> None:
        while True:
            now = self._clock()
            while self._answered and self._answered[0] <= now - self.period:
                self._answered.popleft()
            wait = max(self.paused_until - now, self._next_start - now)
            if wait <= 0:
                if self._open + len(self._answered) < self.size:
                    self._open += 1
                    # on the ideal timeline: a late wake-up does not push every later send back
                    self._next_start = max(self._next_start, now - self.spacing) + self.spacing
                    return
                if self._answered:
                    wait = self._answered[0] + self.period - now
                else:  # all slots are in flight: the first answer frees one
                    self._freed.clear()
                    await self._freed.wait()
                    continue
            await self._sleep(max(wait, 0.0005))

    def ready(self) -> bool:
        """Whether a send may start now without waiting."""
        now = self._clock()
        while self._answered and self._answered[0] <= now - self.period:
            self._answered.popleft()
        return self.paused_until <= now and self._next_start <= now and self._open + len(self._answered) < self.size

    def release(self) -> None:
        self._open -= 1
        if self.period:
            self._answered.append(self._clock())
        self._freed.set()


@dataclass
class SenderStats:
    sent: int  # accepted by Telegram since start
    failed: int  # refused for good since start
    dropped: int  # not sent because the chat blocked the bot or is gone, since start
    retried: int  # sends that will be tried again (429, timeouts, network) since start
    backlog: int  # deliveries waiting now (pending + sending)


class Sender:
    """Drains the outbox. `await sender.wake()` after queueing; `run()` is the loop app.build_services starts."""

    def __init__(
        self,
        store,
        *,
        rate: float = 30.0,
        bot: Any = None,
        bot_from: Callable[[], Any] | None = None,
        per_chat_interval: float = PER_CHAT_INTERVAL,
        per_group_interval: float = PER_GROUP_INTERVAL,
        max_in_flight: int = 8,
        batch: int | None = None,
        send_timeout: float | None = None,
        idle_check: float = IDLE_CHECK,
        max_backoff: float = MAX_BACKOFF,
        clock: Callable[[], float] = time.time,
    ):
        self.store = store
        self.rate = rate
        self.bot = bot
        self._bot_from = bot_from
        self.per_chat_interval = per_chat_interval
        self.per_group_interval = per_group_interval
        self.max_in_flight = max_in_flight
        self.batch = batch or int(min(500, max(32, 2 * rate)))
        self.send_timeout = send_timeout
        self.idle_check = idle_check
        self.max_backoff = max_backoff
        self._clock = clock  # wall clock: not_before is stored and must survive a restart
        self.window = SendWindow(rate)
        self._slots = asyncio.Semaphore(max_in_flight)
        self._in_flight: set[asyncio.Task] = set()
        self._wake = asyncio.Event()
        self.sent = self.failed = self.dropped = self.retried = 0
        self.backlog = 0
        self.recovered: list[int] = []  # deliveries found `sending` at start (possibly sent before the kill)
        self._sent_queue: list[tuple[int, int, float, asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None

    # -- what others call --------------------------------------------------------------------

    async def wake(self) -> None:
        """New deliveries are queued: look now instead of at the next idle check."""
        self._wake.set()

    async def stats(self) -> SenderStats:
        counts = await self.store.run(outbox.counts)
        self.backlog = counts["backlog"]
        return SenderStats(self.sent, self.failed, self.dropped, self.retried, self.backlog)

    async def run(self) -> None:
        """The loop: recover what a killed process left, then send whatever falls due, until cancelled."""
        self._ensure_bot()
        self.recovered = await self.store.run(outbox.recover)
        if self.recovered:
            log.warning(
                "%d deliveries were being sent when the bot last stopped; sending them again "
                "(a chat may see one of them twice)", len(self.recovered)
            )
        await self.store.run(outbox.prune, datetime.now(timezone.utc) - KEEP_FINISHED)
        try:
            while True:
                try:
                    await self.drain_once()
                    await self._sleep_until_due()
                except asyncio.CancelledError:
                    raise
                except Exception as error:  # e.g. the database busy: alerts must not stop for good
                    if is_outage(error):  # the store logs a database outage's start and end, once each
                        log.debug("the sender waits for the database: %s", error)
                    else:
                        log.exception("the sender loop failed; trying again in %.0fs", self.idle_check)
                    await asyncio.sleep(self.idle_check)
        except asyncio.CancelledError:
            await self._finish_in_flight()
            raise

    async def drain_once(self) -> int:
        """Send every delivery that is due now (and those freed by its sends); returns how many were sent or settled."""
        self._ensure_bot()
        handled = 0
        while True:
            batch = await self.store.run(outbox.due, self._clock(), self.batch)
            if not batch:
                if not self._in_flight:
                    return handled
                # an answer may free the next delivery of its chat (or set a retry): look again after it
                await asyncio.wait(set(self._in_flight), return_when=asyncio.FIRST_COMPLETED)
                continue
            group: list[outbox.Delivery] = []
            for position, delivery in enumerate(batch, 1):
                await self._slots.acquire()
                try:
                    await self.window.acquire()
                except BaseException:
                    self._slots.release()
                    raise
                group.append(delivery)
                # one write marks `sending` what may start now (under a rate limit: one at a time)
                if position == len(batch) or self._slots.locked() or not self.window.ready():
                    handled += await self._start(group)
                    group = []
            if len(batch) < self.batch:
                # a short batch was all that was due: wait for its answers before asking again
                if self._in_flight:
                    await asyncio.wait(set(self._in_flight))

    async def _start(self, group: list[outbox.Delivery]) -> int:
        marked = await self.store.run(outbox.mark_sending, [delivery.id for delivery in group])
        silent = await self.store.run(_in_quiet_hours, [delivery.chat_id for delivery in group], datetime.fromtimestamp(self._clock(), timezone.utc))
        for delivery in group:
            if delivery.id not in marked:  # its chat was dropped meanwhile
                self._release()
                continue
            task = asyncio.create_task(self._deliver(delivery, silent=delivery.chat_id in silent))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        return len(marked)

    # -- one delivery -----------------------------------------------------------------------------

    async def _deliver(self, delivery: outbox.Delivery, silent: bool = False) -> None:
        try:
            message = await self.bot.send_message(
                delivery.chat_id,
                delivery.text,
                parse_mode=ParseMode.HTML,
                disable_notification=silent,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
                **self._timeouts(),
            )
        except RetryAfter as error:
            seconds = _seconds(error)
            self.window.pause(seconds)
            self.retried += 1
            log.warning("Telegram asked to wait %.0fs (429); delivery %d goes again then", seconds, delivery.id)
            await self.store.run(outbox.retry_later, delivery.id, self._clock() + seconds, f"429 retry after {seconds:g}s")
        except ChatMigrated as error:
            new_id = error.new_chat_id
            log.info("chat %s became supergroup %s: its watches and deliveries move there", delivery.chat_id, new_id)
            await self.store.run(outbox.move_chat, delivery.chat_id, new_id)
        except Forbidden as error:
            await self._drop_chat(delivery, error)
        except BadRequest as error:
            if any(sign in error.message.lower() for sign in GONE_CHAT):
                await self._drop_chat(delivery, error)
            else:
                self.failed += 1
                log.error("Telegram refused delivery %d (%s) to chat %s: %s", delivery.id, delivery.kind, delivery.chat_id, error.message)
                await self.store.run(outbox.fail, delivery.id, f"400 {error.message}")
        except (TimedOut, NetworkError) as error:  # includes Telegram's 5xx: nothing says it arrived
            await self._retry(delivery, error, give_up=False)
        except TelegramError as error:
            await self._retry(delivery, error, give_up=True)
        except asyncio.CancelledError:
            raise  # left `sending`: the next start sends it again
        except Exception as error:  # a bug must not stop the loop or lose the delivery
            log.exception("sending delivery %d failed unexpectedly", delivery.id)
            await self._retry(delivery, error, give_up=True)
        else:
            self.sent += 1
            with contextlib.suppress(Exception):  # logged by the flush; the row stays `sending`
                await self._record_sent(delivery.id, message.message_id)
        finally:
            self._release()  # only now: a slot is free once what it sent is recorded

    async def _record_sent(self, delivery_id: int, message_id: int) -> None:
        """Mark a delivery sent; answers arriving together are written in one transaction."""
        done = asyncio.get_running_loop().create_future()
        self._sent_queue.append((delivery_id, message_id, self._clock(), done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_sent())
        await asyncio.shield(done)

    async def _flush_sent(self) -> None:
        await asyncio.sleep(0)  # let answers that arrived together join one write
        while self._sent_queue:
            items, self._sent_queue = self._sent_queue, []
            try:
                await self.store.run(outbox.mark_sent, [item[:3] for item in items], self.per_chat_interval, self.per_group_interval)
            except Exception as error:  # left `sending`: sent again after a restart, never lost
                log.exception("could not record %d sent deliveries", len(items))
                for *_, done in items:
                    if not done.done():
                        done.set_exception(error)
                continue
            for *_, done in items:
                if not done.done():
                    done.set_result(None)

    async def _drop_chat(self, delivery: outbox.Delivery, error: TelegramError) -> None:
        dropped = await self.store.run(outbox.drop_chat, delivery.chat_id, f"{type(error).__name__}: {error.message}")
        self.dropped += dropped
        log.info("chat %s is gone (%s): watches paused, %d deliveries dropped", delivery.chat_id, error.message, dropped)

    async def _retry(self, delivery: outbox.Delivery, error: Exception, *, give_up: bool) -> None:
        attempts = delivery.attempts + 1
        reason = f"{type(error).__name__}: {error}"
        if give_up and attempts >= GIVE_UP_AFTER:
            self.failed += 1
            log.error("giving up on delivery %d after %d attempts: %s", delivery.id, attempts, reason)
            await self.store.run(outbox.fail, delivery.id, reason)
            return
        delay = min(self.max_backoff, 2 ** (attempts - 1))
        self.retried += 1
        log.warning("delivery %d to chat %s: %s; trying again in %ds", delivery.id, delivery.chat_id, reason, delay)
        await self.store.run(outbox.retry_later, delivery.id, self._clock() + delay, reason)

    # -- plumbing ---------------------------------------------------------------------------------

    def _release(self) -> None:
        self.window.release()
        self._slots.release()

    def _timeouts(self) -> dict[str, float]:
        if self.send_timeout is None:
            return {}
        return {name: self.send_timeout for name in ("read_timeout", "write_timeout", "connect_timeout", "pool_timeout")}

    def _ensure_bot(self) -> None:
        if self.bot is None:
            if self._bot_from is None:
                raise RuntimeError("the Sender has no bot to send with")
            self.bot = self._bot_from()

    async def _sleep_until_due(self) -> None:
        next_due = await self.store.run(outbox.next_due)
        delay = self.idle_check
        if next_due is not None:
            delay = min(delay, max(0.0, next_due - self._clock()))
        if delay <= 0:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)
        self._wake.clear()

    async def _finish_in_flight(self) -> None:
        """A clean stop: let the sends already handed to Telegram be answered and recorded."""
        tasks = set(self._in_flight)
        if not tasks:
            return
        done, pending = await asyncio.wait(tasks, timeout=STOP_GRACE)
        for task in pending:
            task.cancel()
        if pending:
            log.warning("%d sends were still unanswered at stop; they go again at the next start", len(pending))


def _in_quiet_hours(db, chat_ids: list[int], now: datetime) -> set[int]:
    """The chats whose quiet hours (/quiet, on their own clock) include `now`: their messages come silently."""
    return {chat_id for chat_id, settings in chat_settings.zones_of(db, chat_ids).items()
            if chat_clock.is_quiet(now, settings.zone, settings.quiet)}


def _seconds(error: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB 22 warns when retry_after is read as an int
        warnings.simplefilter("ignore")
        value = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
