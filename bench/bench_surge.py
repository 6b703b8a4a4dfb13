"""A surge of users against Telegram's 30 messages/s: every reply through bot/flood.py, beside a bare PTB bot.

Run: python bench/bench_surge.py [--users 1000] [--alerts 3000] [--only 1|2|3]

The fake Bot API runs in a process of its own and answers 429 (retry_after=1) to any send beyond 30 in
a sliding second, as Telegram does. Each bot side runs in a process of its own too, so its peak RSS
(VmHWM) is its own.

1. Blockwatch: `--users` distinct users send `/watch UG twitter` within one second; the real Application
   (build_services + build_application, SEND_RATE=30) answers. Replies delivered, lost, twice, the time
   from the first to the last reply as a ratio to the ideal users/30 s (goal <= 1.05x), 429 answers, peak RSS.
2. The peer, in the same run: a bare python-telegram-bot Application (concurrent_updates(True)) whose
   handler replies a fixed text, with AIORateLimiter() at its defaults (30/s overall, no retries).
3. Blockwatch while `--alerts` alerts are being sent: the alert is queued to as many watchers, the same
   surge arrives 3 s later; once it is answered, one user every 0.5 s sends /help (60 in all), as people
   do while a fan-out is still going. Reply latency p50/p95 for the surge (bounded by 30/s: the last of
   1,000 cannot be answered before ~33 s) and for the later commands (goal p95 <= 2 s), and the alerts'
   total time against the ideal (alerts + replies)/30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.telegram import FakeTelegram  # noqa: E402

RATE = 30
USERS = 1_000_000  # first user id of the surge
LATER = 2_000_000  # first user id of the commands after the surge
WATCHERS = 10_000_000  # first chat id of the watchers
COMMAND = "/watch UG twitter"


# --- the fake Bot API's process ------------------------------------------------------------------------


async def serve_fake() -> None:
    """Serve until stdin closes; each stdin line is a JSON order, answered with one JSON line."""
    async with FakeTelegram() as fake:
        fake.limit_rate(RATE)  # 429 retry_after=1 beyond 30 sends in any second
        asked: dict[int, float] = {}
        print(json.dumps([fake.url, fake.token]), flush=True)
        loop = asyncio.get_running_loop()
        background = set()

        async def trickle(first: int, count: int, every: float, text: str) -> None:
            for user in range(first, first + count):
                asked[user] = time.time()
                fake.send_text(user, user, text)
                await asyncio.sleep(every)

        while line := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
            order = json.loads(line)
            answer: dict = {}
            if order["do"] == "surge":
                for user in range(order["first"], order["first"] + order["count"]):
                    asked[user] = time.time()
                    fake.send_text(user, user, order["text"])
            elif order["do"] == "trickle":
                task = asyncio.create_task(trickle(order["first"], order["count"], order["every"], order["text"]))
                background.add(task)
                task.add_done_callback(background.discard)
            elif order["do"] == "report":
                first, count = order["first"], order["count"]
                times: dict[int, list[float]] = {}
                for call in fake.calls("sendMessage"):
                    if call.ok and isinstance(call.chat_id, int) and first <= call.chat_id < first + count:
                        times.setdefault(call.chat_id, []).append(call.time)
                firsts = sorted(ts[0] for ts in times.values())
                answer = {
                    "delivered": len(times), "twice": sum(1 for ts in times.values() if len(ts) > 1),
                    "first": firsts[0] if firsts else None, "last": firsts[-1] if firsts else None,
                    "latencies": [ts[0] - asked[chat] for chat, ts in times.items() if chat in asked],
                    "asked_first": min((asked[c] for c in range(first, first + count) if c in asked), default=None),
                    "429": Counter(c.status for c in fake.calls("sendMessage"))[429],
                }
            print(json.dumps(answer), flush=True)


class FakeProcess:
    async def __aenter__(self) -> "FakeProcess":
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__).resolve()), "--serve-fake",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=str(ROOT), limit=2**26,
        )
        self.url, self.token = json.loads(await self.process.stdout.readline())
        return self

    async def ask(self, **order) -> dict:
        self.process.stdin.write(json.dumps(order).encode() + b"\n")
        await self.process.stdin.drain()
        return json.loads(await self.process.stdout.readline())

    async def __aexit__(self, *exc) -> None:
        self.process.stdin.close()
        await self.process.communicate()


# --- the bots' processes ----------------------------------------------------------------------------------


def peak_kb() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


async def run_ours(url: str, token: str, alerts: int) -> None:
    """Blockwatch as `blockwatch run` builds it, polling the fake until stdin closes."""
    import logging

    from telegram import Update

    from bot import notifier
    from bot.app import build_application, build_services
    from bot.config import Settings
    from bot.detector import Event
    from storage import subscriptions
    from storage.db import Store

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="bot: %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(telegram_bot_token=token, telegram_api_url=url, database_path=Path(folder) / "bw.db", send_rate=RATE)
        store = await Store.open(settings.database_path)

        def fill(db) -> None:
            for i in range(alerts):
                subscriptions.ensure_chat(db, WATCHERS + i, "private", "en")
                subscriptions.add_watches(db, WATCHERS + i, "AZ", ["tiktok"])

        await store.run(fill)
        services = build_services(settings, store, sending=True, polling=False)
        app = build_application(services)
        await app.initialize()
        await app.post_init(app)
        await app.updater.start_polling(poll_interval=0, timeout=1, allowed_updates=Update.ALL_TYPES)
        await app.start()
        if alerts:
            from datetime import datetime, timezone

            t0 = datetime(2022, 9, 14, 6, tzinfo=timezone.utc)
            event = Event("blocked", "AZ", "tiktok", t0, (29049,), added=(29049,), method="tls", since=t0,
                          anomalies=31, measurements=38, evidence=("20220914T0600Z_webconnectivity_AZ_29049_n1_a",))
            await store.run(notifier.queue_event, event)
            await services.wake_sender()
        print(json.dumps({"ready": time.time()}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        limiter = app.bot.rate_limiter
        figures = {"peak_kb": peak_kb(), "replies": limiter.replies, "retried": limiter.retried, "unknown": limiter.unknown,
                   "late": limiter.late, "alerts_sent": services.sender.sent}
        await app.updater.stop()
        await app.stop()
        await app.post_stop(app)
        await app.shutdown()
        await store.close()
    print(json.dumps(figures), flush=True)


async def run_peer(url: str, token: str) -> None:
    """A bare PTB Application replying to /watch with a fixed text, AIORateLimiter at its defaults."""
    import logging

    from telegram import Update
    from telegram.ext import AIORateLimiter, ApplicationBuilder, CommandHandler

    failures = Counter()

    class Count(logging.Handler):
        def emit(self, record):
            failures[record.levelname] += 1

    logging.getLogger("telegram").addHandler(Count())
    logging.getLogger("telegram").setLevel(logging.ERROR)

    async def watch(update: Update, context) -> None:
        await update.message.reply_text("Watching Uganda: Twitter/X — no signs of blocking right now.")

    app = (ApplicationBuilder().token(token).base_url(f"{url}/bot").base_file_url(f"{url}/file/bot")
           .concurrent_updates(True).rate_limiter(AIORateLimiter()).build())
    app.add_handler(CommandHandler("watch", watch))
    await app.initialize()
    await app.updater.start_polling(poll_interval=0, timeout=1, allowed_updates=Update.ALL_TYPES)
    await app.start()
    print(json.dumps({"ready": time.time()}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    figures = {"peak_kb": peak_kb(), "errors_logged": failures["ERROR"]}
    await app.updater.stop()
    await app.stop()
    await app.shutdown()
    print(json.dumps(figures), flush=True)


class BotProcess:
    def __init__(self, fake: FakeProcess, side: str, alerts: int = 0):
        self.args = ["--side", side, "--url", fake.url, "--token", fake.token, "--alerts", str(alerts)]

    async def __aenter__(self) -> "BotProcess":
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__).resolve()), *self.args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=str(ROOT),
        )
        json.loads(await self.process.stdout.readline())
        return self

    async def stop(self) -> dict:
        self.process.stdin.write(b"stop\n")
        await self.process.stdin.drain()
        out, _ = await self.process.communicate()
        return json.loads(out.decode().strip().splitlines()[-1])

    async def __aexit__(self, *exc) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


# --- the parent: orchestration and figures ---------------------------------------------------------------------


async def until_answered(fake: FakeProcess, first: int, count: int, timeout: float, quiet: float = 10.0) -> dict:
    """Poll the fake until every user of the range has a reply, or nothing new came for `quiet` seconds."""
    started = last_change = time.time()
    seen = -1
    while True:
        report = await fake.ask(do="report", first=first, count=count)
        if report["delivered"] != seen:
            seen, last_change = report["delivered"], time.time()
        if seen >= count or time.time() - last_change > quiet or time.time() - started > timeout:
            return report
        await asyncio.sleep(0.5)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] if values else float("nan")


def surge_line(name: str, report: dict, users: int, figures: dict) -> str:
    ideal = users / RATE
    span = (report["last"] - report["first"]) if report["first"] else float("nan")
    total = (report["last"] - report["asked_first"]) if report["first"] else float("nan")
    return (f"   {name:34s} delivered {report['delivered']:5,}  lost {users - report['delivered']:4,}  twice {report['twice']:2}  "
            f"first→last {span:5.1f} s = {span / ideal:.3f}x ideal  (surge→last {total:5.1f} s)  429s {report['429']:4}  "
            f"peak RSS {figures['peak_kb'] / 1024:5.1f} MB")


async def surge(side: str, users: int) -> tuple[dict, dict]:
    async with FakeProcess() as fake:
        async with BotProcess(fake, side) as bot:
            await fake.ask(do="surge", first=USERS, count=users, text=COMMAND)
            report = await until_answered(fake, USERS, users, timeout=4 * users / RATE + 30)
            figures = await bot.stop()
    return report, figures


async def figures_1_2(users: int, only: int | None) -> None:
    print(f"Surge: {users:,} distinct users send '{COMMAND}' at once; the fake Bot API (own process) answers 429 "
          f"(retry_after=1) beyond {RATE} sends/s; ideal {users / RATE:.1f} s. 2 shared cores, 5 engineers busy on them.")
    if only in (None, 1):
        report, figures = await surge("ours", users)
        print(surge_line("1. Blockwatch (bot/flood.py):", report, users, figures)
              + f"  [replies {figures['replies']}, resent after 429 {figures['retried']}, late >60 s {figures['late']}]")
    if only in (None, 2):
        report, figures = await surge("peer", users)
        print(surge_line("2. bare PTB + AIORateLimiter():", report, users, figures)
              + f"  [handler errors logged {figures['errors_logged']}]")
    print("   goal: all delivered, none lost, none twice, first→last <= 1.05x ideal")


async def figure_3(users: int, alerts: int) -> None:
    later = 60
    async with FakeProcess() as fake:
        async with BotProcess(fake, "ours", alerts) as bot:
            await asyncio.sleep(3)
            await fake.ask(do="surge", first=USERS, count=users, text=COMMAND)
            surge_report = await until_answered(fake, USERS, users, timeout=4 * users / RATE + 30)
            await fake.ask(do="trickle", first=LATER, count=later, every=0.5, text="/help")
            later_report = await until_answered(fake, LATER, later, timeout=later * 0.5 + 30)
            alert_report = await until_answered(fake, WATCHERS, alerts, timeout=4 * (alerts + users) / RATE + 60, quiet=15)
            figures = await bot.stop()
    ideal = (alerts + users + later) / RATE
    alert_span = alert_report["last"] - alert_report["first"]
    print(f"3. Blockwatch sending {alerts:,} alerts; the same surge of {users:,} arrives 3 s in, then {later} users "
          f"send /help one every 0.5 s:")
    print(f"   surge replies: delivered {surge_report['delivered']:,}, lost {users - surge_report['delivered']}, twice "
          f"{surge_report['twice']}; latency p50 {pct(surge_report['latencies'], .5):.1f} s, p95 "
          f"{pct(surge_report['latencies'], .95):.1f} s (30/s alone makes the 1,000th wait ~{users / RATE:.0f} s)")
    print(f"   later /help replies (fan-out still going): delivered {later_report['delivered']}/{later}, latency p50 "
          f"{pct(later_report['latencies'], .5):.2f} s, p95 {pct(later_report['latencies'], .95):.2f} s, max "
          f"{max(later_report['latencies'], default=float('nan')):.2f} s   (goal p95 <= 2 s)")
    print(f"   alerts: delivered {alert_report['delivered']:,}/{alerts:,}, twice {alert_report['twice']}, first→last "
          f"{alert_span:.1f} s; all {alerts + users + later:,} messages of the run ideally take {ideal:.1f} s "
          f"({alert_span / ideal:.3f}x); 429 answers {alert_report['429']}; peak RSS {figures['peak_kb'] / 1024:.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--alerts", type=int, default=3000)
    parser.add_argument("--only", type=int, choices=(1, 2, 3))
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--side", choices=("ours", "peer"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        asyncio.run(serve_fake())
    elif args.side == "ours":
        asyncio.run(run_ours(args.url, args.token, args.alerts))
    elif args.side == "peer":
        asyncio.run(run_peer(args.url, args.token))
    else:
        if args.only in (None, 1, 2):
            asyncio.run(figures_1_2(args.users, args.only))
        if args.only in (None, 3):
            asyncio.run(figure_3(args.users, args.alerts))


if __name__ == "__main__":
    main()
