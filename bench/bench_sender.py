"""The alert pipeline (render → outbox → sender) against the fake Bot API, each figure beside its peer.

Run: python bench/bench_sender.py [--only 1|2|3] [--quick]

1. Send limit lifted: messages per second the whole pipeline moves to the fake — queue_event (the
   event row, one render per language, one delivery per watcher, in one transaction) then the
   Sender draining it — beside a bare python-telegram-bot loop awaiting send_message chat after
   chat against the same fake, which writes nothing durable. Goal: >= 0.8x the bare loop.
2. SEND_RATE=30 against a fake that answers 429 beyond 30 messages in any second: the time to
   reach 3,000 watchers as a ratio to 3,000/30 s, and exactly 3,000 delivered (none lost, none
   twice) — beside PTB's AIORateLimiter (30/s) alone sending the same 3,000 messages concurrently.
   Goal: <= 1.03x. Takes about four minutes (both sides send 3,000 messages at 30/s).
3. Peak memory with 100,000 watches: a fresh process opens a database of 100,000 watching chats,
   queues one alert to all of them (100,000 deliveries) and runs the sender against the fake (in
   another process, so its memory is not counted) until 20,000 are delivered (--memory-sends N;
   the sender holds at most one batch of 500 deliveries, so what is left to send costs no memory;
   all 100,000 take about 4 minutes at the fake's ~400 msg/s); its peak RSS (VmHWM) beside the
   same process's after importing the bot stack. Goal: under 150 MB.

--quick runs smaller sizes (300 messages for 2; 20,000 watches, 5,000 sent for 3) to check the wiring.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from telegram import Bot  # noqa: E402
from telegram.constants import ParseMode  # noqa: E402
from telegram.error import RetryAfter  # noqa: E402
from telegram.ext import AIORateLimiter, ExtBot  # noqa: E402

from bot import notifier  # noqa: E402
from bot.detector import Event  # noqa: E402
from bot.sender import Sender  # noqa: E402
from storage.db import Store  # noqa: E402
from tests.fakes.telegram import FakeTelegram  # noqa: E402

T0 = datetime(2022, 9, 14, 6, tzinfo=timezone.utc)
EVENT = Event(
    "blocked", "AZ", "tiktok", T0, (29049, 41997, 31721), added=(29049, 41997, 31721), method="tls", since=T0,
    anomalies=31, measurements=38, evidence=("20220914T061502Z_webconnectivity_AZ_29049_n1_a", "20220914T0620Z_b"),
)
FIRST_CHAT = 10_000_000


def fill_watchers(db, count: int, languages=("en", "ru", "az")) -> None:
    """`count` private chats watching AZ tiktok, languages in turn (one transaction, as a bulk import)."""
    db.conn.execute("begin")
    db.conn.executemany(
        "insert into chats (id, type, language, paused, created_at) values (?, 'private', ?, 0, 1663113600)",
        [(FIRST_CHAT + i, languages[i % len(languages)]) for i in range(count)],
    )
    db.conn.executemany(
        "insert into watches (chat_id, country, platform, created_at) values (?, 'AZ', 'tiktok', 1663113600)",
        [(FIRST_CHAT + i,) for i in range(count)],
    )
    db.conn.execute("commit")


class FakeProcess:
    """The fake Bot API in a process of its own, as Telegram is: its work does not slow the side measured.

    `async with FakeProcess(limit_rate=30) as fake:` gives fake.url and fake.token; `await fake.summary()`
    says what it received: chats reached, chats reached more than once, messages accepted, 429 answers."""

    def __init__(self, limit_rate: int | None = None):
        self.limit_rate = limit_rate
        self.url = self.token = ""

    async def __aenter__(self) -> "FakeProcess":
        args = [sys.executable, str(Path(__file__).resolve()), "--serve-fake"]
        if self.limit_rate:
            args += ["--limit-rate", str(self.limit_rate)]
        self.process = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=str(ROOT)
        )
        self.url, self.token = json.loads(await self.process.stdout.readline())
        return self

    async def _ask(self, command: str) -> dict:
        self.process.stdin.write(command.encode() + b"\n")
        await self.process.stdin.drain()
        return json.loads(await self.process.stdout.readline())

    async def summary(self) -> dict:
        return await self._ask("summary")

    async def clear(self) -> None:
        await self._ask("clear")

    async def __aexit__(self, *exc) -> None:
        self.process.stdin.close()
        await self.process.communicate()


async def serve_fake(limit_rate: int | None) -> None:
    """The child side of FakeProcess: serve until stdin closes, answer its questions on stdout."""
    async with FakeTelegram() as fake:
        if limit_rate:
            fake.limit_rate(limit_rate)
        print(json.dumps([fake.url, fake.token]), flush=True)
        loop = asyncio.get_running_loop()
        while command := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
            if command == "summary":
                sends = sends_per_chat(fake)
                statuses = Counter(c.status for c in fake.calls("sendMessage"))
                answer = {"chats": len(sends), "twice": sum(1 for n in sends.values() if n > 1),
                          "accepted": sum(sends.values()), "429": statuses.get(429, 0)}
            else:
                fake.clear()
                answer = {}
            print(json.dumps(answer), flush=True)


def bot_for(fake, **kwargs) -> Bot:
    return (ExtBot if kwargs else Bot)(fake.token, base_url=f"{fake.url}/bot", **kwargs)


def sends_per_chat(fake: FakeTelegram) -> Counter:
    return Counter(c.chat_id for c in fake.calls("sendMessage") if c.ok)


async def pipeline_run(fake, count: int, rate: float) -> tuple[float, Sender]:
    """queue_event + Sender drain for `count` watchers; seconds from queueing to the last delivery recorded."""
    with tempfile.TemporaryDirectory() as folder:
        store = await Store.open(Path(folder) / "bench.db")
        try:
            await store.run(fill_watchers, count)
            bot = bot_for(fake)
            async with bot:
                sender = Sender(store, rate=rate, bot=bot)
                started = time.perf_counter()
                queued = await store.run(notifier.queue_event, EVENT)
                await sender.drain_once()
                elapsed = time.perf_counter() - started
            assert queued == count and sender.sent == count, (queued, sender.sent)
        finally:
            await store.close()
    return elapsed, sender


async def bare_loop_run(fake, count: int, text: str) -> float:
    bot = bot_for(fake)
    async with bot:
        started = time.perf_counter()
        for i in range(count):
            await bot.send_message(FIRST_CHAT + i, text, parse_mode=ParseMode.HTML)
        return time.perf_counter() - started


async def figure_1(count: int, rounds: int = 5) -> None:
    text = notifier.render_alert(EVENT, "en")
    pipeline, bare = [], []
    async with FakeProcess() as fake:
        await bare_loop_run(fake, 200, text)  # warm both paths (connections, imports, caches)
        await pipeline_run(fake, 200, math.inf)
        for _ in range(rounds):  # interleaved, so a busy moment of the machine hits both
            await fake.clear()
            bare.append(count / await bare_loop_run(fake, count, text))
            await fake.clear()
            seconds, _ = await pipeline_run(fake, count, math.inf)
            pipeline.append(count / seconds)
            got = await fake.summary()
            assert (got["chats"], got["twice"]) == (count, 0), got
    median_pipeline, median_bare = statistics.median(pipeline), statistics.median(bare)
    print(f"1. send limit lifted, {count:,} watchers, fake Bot API in its own process, median of {rounds} interleaved runs:")
    print(f"   pipeline (render + outbox + sender): {median_pipeline:6.0f} msg/s   (runs: {', '.join(f'{x:.0f}' for x in pipeline)})")
    print(f"   bare PTB loop (await send_message):  {median_bare:6.0f} msg/s   (runs: {', '.join(f'{x:.0f}' for x in bare)})")
    print(f"   ratio {median_pipeline / median_bare:.2f}x (goal >= 0.8x)")


async def figure_2(count: int, rate: int = 30) -> None:
    ideal = count / rate
    async with FakeProcess(limit_rate=rate) as fake:
        seconds, sender = await pipeline_run(fake, count, rate)
        ours = await fake.summary()

    text = notifier.render_alert(EVENT, "en")
    async with FakeProcess(limit_rate=rate) as fake:
        bot = bot_for(fake, rate_limiter=AIORateLimiter(overall_max_rate=rate, overall_time_period=1, max_retries=5))
        lost = 0

        async def send(chat_id: int) -> None:
            nonlocal lost
            try:
                await bot.send_message(chat_id, text, parse_mode=ParseMode.HTML)
            except RetryAfter:
                lost += 1

        async with bot:
            started = time.perf_counter()
            await asyncio.gather(*(send(FIRST_CHAT + i) for i in range(count)))
            peer_seconds = time.perf_counter() - started
        theirs = await fake.summary()

    def line(name, secs, got, lost):
        return (f"   {name:20s} {secs:6.1f} s = {secs / ideal:.3f}x ideal; delivered to {got['chats']:,} chats, "
                f"twice {got['twice']}, lost {lost}, 429 answers {got['429']}")

    print(f"2. SEND_RATE={rate} against a fake answering 429 beyond {rate}/s, {count:,} watchers (ideal {ideal:.0f} s):")
    print(line("pipeline:", seconds, ours, count - ours["chats"]))
    print(line("AIORateLimiter only:", peer_seconds, theirs, lost))
    print("   goal: <= 1.03x, all delivered, none lost, none twice")


MEMORY_CHILD = r"""
import asyncio, json, math, sys
sys.path.insert(0, sys.argv[1])
from telegram import Bot
from bot import notifier
from bot.detector import Event
from bot.sender import Sender
from storage.db import Store

def peak_kb():  # this process's own high-water mark (ru_maxrss would carry the forking parent's over exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

baseline = peak_kb()

async def main():
    store = await Store.open(sys.argv[2])
    bot = Bot(sys.argv[3], base_url=sys.argv[4] + "/bot")
    target = int(sys.argv[6])
    async with bot:
        sender = Sender(store, rate=math.inf, bot=bot)
        queued = await store.run(notifier.queue_event, Event.from_json(json.loads(sys.argv[5])))
        after_queue = peak_kb()
        loop = asyncio.create_task(sender.run())
        while sender.sent < target and not loop.done():
            await asyncio.sleep(0.2)
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
    await store.close()
    return queued, sender.sent, after_queue

queued, sent, after_queue = asyncio.run(main())
print(json.dumps({"queued": queued, "sent": sent, "baseline_kb": baseline, "after_queue_kb": after_queue, "peak_kb": peak_kb()}))
"""


async def figure_3(count: int, sends: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.db"
        store = await Store.open(path)
        await store.run(fill_watchers, count)
        await store.close()
        async with FakeProcess() as fake:
            started = time.perf_counter()
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-c", MEMORY_CHILD, str(ROOT), str(path), fake.token, fake.url,
                json.dumps(EVENT.to_json()), str(sends),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=str(ROOT),
            )
            out, err = await child.communicate()
            seconds = time.perf_counter() - started
            if child.returncode != 0:
                raise SystemExit(err.decode())
            got = await fake.summary()
    figures = json.loads(out.decode().strip().splitlines()[-1])
    mb = lambda kb: kb / 1024  # noqa: E731
    print(f"3. peak memory with {count:,} watches: one alert queued to all {figures['queued']:,}, then the sender "
          f"ran until {figures['sent']:,} were delivered ({got['chats']:,} chats reached, {got['twice']} twice, {seconds:.0f} s):")
    print(f"   peak RSS of the bot process:              {mb(figures['peak_kb']):6.1f} MB (goal < 150 MB)")
    print(f"   ... peak up to queueing all deliveries:   {mb(figures['after_queue_kb']):6.1f} MB")
    print(f"   the same process after its imports:       {mb(figures['baseline_kb']):6.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", type=int, choices=(1, 2, 3))
    parser.add_argument("--quick", action="store_true", help="smaller sizes, to check the wiring")
    parser.add_argument("--memory-sends", type=int, help="figure 3: deliveries to send before stopping (default 20,000)")
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--limit-rate", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        asyncio.run(serve_fake(args.limit_rate))
        return
    runs = {
        1: lambda: figure_1(2_000),
        2: lambda: figure_2(300 if args.quick else 3_000),
        3: lambda: figure_3(20_000 if args.quick else 100_000, args.memory_sends or (5_000 if args.quick else 20_000)),
    }
    for number in [args.only] if args.only else [3, 1, 2]:  # memory first: the process is smallest then
        asyncio.run(runs[number]())


if __name__ == "__main__":
    main()
