"""The outbox drain loop: sends queued deliveries to Telegram within its limits, each exactly once.

One Sender per process. It takes the head of each chat's queue (storage/outbox.py keeps the order)
and sends it through the Application's bot, so through bot/flood.py, the one place that knows
Telegram's limits — which the Sender shares with the replies to commands:

- overall at most SEND_RATE messages/s (flood.SendGate), replies to commands going first;
- per chat one message at a time, in queue order, at least a second apart (a group's 3 s);
- 429: every send waits `retry_after` (remembered across a restart), the delivery goes again, first in its chat;
- 403 (blocked, kicked) or "chat not found": the chat's watches are paused, its waiting deliveries dropped;
- ChatMigrated: the chat's watches and deliveries move to the new id, and it is sent there;
- no connection, Telegram 5xx (flood.Fate "not_sent"): sent again with exponential backoff;
- a timeout after the request went out (fate unknown): sent again once; a second unknown fails it;
- other 400s: the delivery fails for good (logged), the chat's next one goes on.

A delivery is marked `sending` once its turn in the gate has come, just before the call, and `sent`
only after Telegram accepted it. At start, rows left `sending` by a killed process count as a send of
unknown fate (see storage/outbox.py): at most one duplicate each, `max_in_flight` in all.
A clean stop (SIGTERM) lets in-flight sends finish and records them, so it repeats nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from telegram import LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import TelegramError

from bot import chart_maker, chat_clock
from bot.flood import ALERT, PER_CHAT_INTERVAL, PER_GROUP_INTERVAL, FloodControl, SendGate, fate_of
from storage import chat_settings, outbox
from storage.db import is_outage

log = logging.getLogger(__name__)

MAX_BACKOFF = 300.0  # seconds; a delivery keeps trying through a long Telegram outage
GIVE_UP_AFTER = 10  # attempts, for errors we do not understand (never for timeouts or network errors)
IDLE_CHECK = 5.0  # seconds between looks at the outbox when nobody wakes us (another process may queue)
STOP_GRACE = 5.0  # seconds a clean stop waits for sends in flight to be answered
KEEP_FINISHED = timedelta(days=30)  # sent/dropped/failed deliveries are kept this long for /stats and audits


SendWindow = SendGate  # its old name


@dataclass
class SenderStats:
    sent: int  # accepted by Telegram since start
    failed: int  # refused for good since start
    dropped: int  # not sent because the chat blocked the bot or is gone, since start
    retried: int  # sends that will be tried again (429, timeouts, network) since start
    unknown: int  # sends whose fate was unknown (sent once more: a chat may have seen it twice) since start
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
        charts: chart_maker.ChartMaker | None = None,
    ):
        self.store = store
        self.charts = charts  # renders and uploads the photos of "chart" deliveries
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
        self.window = SendGate(rate)  # the bot's own gate replaces it when the bot has FloodControl
        self._alert_args: dict[str, Any] = {}
        self._charts_in_flight: set[asyncio.Task] = set()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._in_flight: set[asyncio.Task] = set()
        self._wake = asyncio.Event()
        self.sent = self.failed = self.dropped = self.retried = self.unknown = 0
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
        return SenderStats(self.sent, self.failed, self.dropped, self.retried, self.unknown, self.backlog)

    async def run(self) -> None:
        """The loop: recover what a killed process left, then send whatever falls due, until cancelled."""
        self._ensure_bot()
        self.recovered, given_up = await self.store.run(outbox.recover)
        self.unknown += len(self.recovered)
        if self.recovered:
            log.warning(
                "%d deliveries were being sent when the bot last stopped; sending them again once "
                "(a chat may see one of them twice)", len(self.recovered)
            )
        if given_up:
            self.failed += len(given_up)
            log.error("%d deliveries were in doubt a second time when the bot stopped: not sent again (they may have arrived)", len(given_up))
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
                **self._alert_args,
                **self._timeouts(),
            )
        except asyncio.CancelledError:
            raise  # left `sending`: the next start sends it again
        except Exception as error:
            await self._settle_failure(delivery, error)
        else:
            self.sent += 1
            with contextlib.suppress(Exception):  # logged by the flush; the row stays `sending`
                await self._record_sent(delivery.id, message.message_id)
            if delivery.kind == "alert_blocked" and self.charts is not None:
                # its own task: the photo waits its turn in the bot's flood control without holding a send slot
                task = asyncio.create_task(self._send_chart(delivery, silent))
                self._charts_in_flight.add(task)
                task.add_done_callback(self._charts_in_flight.discard)
        finally:
            self._release()  # only now: a slot is free once what it sent is recorded

    async def _settle_failure(self, delivery: outbox.Delivery, error: Exception) -> None:
        """What Telegram's answer (flood.fate_of) means for this delivery, written to the outbox."""
        fate = fate_of(error)
        if fate.kind == "wait":
            self.window.pause(fate.seconds)
            self.retried += 1
            log.debug("delivery %d goes again in %.0fs (429)", delivery.id, fate.seconds)
            await self.store.run(outbox.retry_later, delivery.id, self._clock() + fate.seconds, f"429 retry after {fate.seconds:g}s")
        elif fate.kind == "moved":
            log.info("chat %s became supergroup %s: its watches and deliveries move there", delivery.chat_id, fate.new_chat_id)
            await self.store.run(outbox.move_chat, delivery.chat_id, fate.new_chat_id)
        elif fate.kind == "gone":
            await self._drop_chat(delivery, error)
        elif fate.kind == "refused":
            self.failed += 1
            log.error("Telegram refused delivery %d (%s) to chat %s: %s", delivery.id, delivery.kind, delivery.chat_id, error)
            await self.store.run(outbox.fail, delivery.id, f"400 {getattr(error, 'message', error)}")
        elif fate.kind == "not_sent":  # a long outage is waited out: it never reached Telegram
            await self._retry(delivery, error, give_up=False)
        elif fate.kind == "unknown":
            await self._unknown(delivery, error)
        else:  # a bug or an answer we do not understand: tried a few times, then failed
            if not isinstance(error, TelegramError):
                log.error("sending delivery %d failed unexpectedly", delivery.id, exc_info=error)
            await self._retry(delivery, error, give_up=True)

    async def _unknown(self, delivery: outbox.Delivery, error: Exception) -> None:
        """The request went out and no answer came: it may have arrived. Once more at most."""
        reason = f"{type(error).__name__}: {error}"
        if delivery.unknown >= 1:
            self.failed += 1
            log.error("delivery %d to chat %s: fate unknown a second time (%s); not sent again, it may have arrived",
                      delivery.id, delivery.chat_id, reason)
            await self.store.run(outbox.fail, delivery.id, f"fate unknown twice: {reason}")
            return
        self.unknown += 1
        self.retried += 1
        log.warning("delivery %d to chat %s: no answer (%s); sent once more, the chat may see it twice",
                    delivery.id, delivery.chat_id, reason)
        await self.store.run(outbox.retry_unknown, delivery.id, self._clock() + 1.0, reason)

    async def charts_sent(self) -> None:
        """Wait until the charts started after alerts have gone (or failed): benchmarks and tests."""
        while self._charts_in_flight:
            await asyncio.gather(*set(self._charts_in_flight), return_exceptions=True)

    async def _send_chart(self, delivery: outbox.Delivery, silent: bool) -> None:
        """A blocked alert's chart, sent after it by the same bot as a reply would be (flood control spaces
        it in the chat and waits out a 429) — best effort: the alert is recorded sent already, so a chart
        that cannot be made or sent is logged, never queued again."""
        try:
            await self.charts.send_for_alert(self.bot, delivery.chat_id, delivery.ref, delivery.lang, silent=silent, **self._timeouts())
        except asyncio.CancelledError:
            raise
        except Exception as error:  # OONI down, or Telegram refused the photo
            self.charts.log_failure(error)

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

    async def _drop_chat(self, delivery: outbox.Delivery, error: Exception) -> None:
        message = getattr(error, "message", str(error))
        dropped = await self.store.run(outbox.drop_chat, delivery.chat_id, f"{type(error).__name__}: {message}")
        self.dropped += dropped
        log.info("chat %s is gone (%s): watches paused, %d deliveries dropped", delivery.chat_id, message, dropped)

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
        limiter = getattr(self.bot, "rate_limiter", None)
        if isinstance(limiter, FloodControl) and self.window is not limiter.gate:
            self.window = limiter.gate  # one gate for alerts and replies: replies go first
            self._alert_args = {"rate_limit_args": ALERT}

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
        for task in self._charts_in_flight:  # best effort, not recorded: a stop does not wait for pictures
            task.cancel()
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
