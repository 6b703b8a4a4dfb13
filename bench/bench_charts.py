"""Charts: the time and memory to render one, and the cost of a blocked alert with its chart to
1,000 watchers (the chart rendered once, uploaded once, then sent by Telegram's file_id) beside the
same alert without a chart and beside rendering a chart per chat — all measured in the same run.

Run: python bench/bench_charts.py [--watchers 1000]

The alert goes through the real pipeline: notifier.queue_event (one render per language, one
delivery per watcher, one transaction) and the Sender with the send limit lifted, against the fake
Bot API on loopback (in this process), through python-telegram-bot's Bot on our aiohttp layer.
The chart's data is 14 days × 11 networks of synthetic counts (no OONI in a benchmark).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from telegram import Bot  # noqa: E402

from bot import charts, notifier  # noqa: E402
from bot.chart_maker import ChartMaker  # noqa: E402
from bot.detector import Event  # noqa: E402
from bot.observations import Observation  # noqa: E402
from bot.sender import Sender  # noqa: E402
from bot.telegram_http import AiohttpRequest  # noqa: E402
from storage import outbox  # noqa: E402
from storage.db import Store  # noqa: E402
from tests.fakes.telegram import FakeTelegram  # noqa: E402

UTC = timezone.utc
T0 = datetime(2022, 9, 16, 12, tzinfo=UTC)
FIRST_CHAT = 10_000_000


def observations() -> list[Observation]:
    out = []
    for d in range(charts.DAYS):
        day = T0.replace(hour=0) - timedelta(days=charts.DAYS - 1 - d)
        for n in range(11):
            asn = (29049, 41997, 31721, 28787, 57293)[n] if n < 5 else 60000 + n
            for hour in range(24):
                start = day + timedelta(hours=hour)
                blocked = n < 3 and d >= 11
                out.append(Observation("AZ", "tiktok", asn, start, start + timedelta(hours=1), measurements=4,
                                       anomalies=3 if blocked else (hour % 7 == 0)))
    return out


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def render_figures(rounds: int = 5) -> tuple[float, float, float, int]:
    data = charts.chart_data(observations(), "AZ", "tiktok", T0.date(), T0 - timedelta(days=2))
    charts.render_png(data)  # the first render pays matplotlib's import and font cache
    before = rss_mb()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        png = charts.render_png(data)
        times.append(time.perf_counter() - t)
    grown = rss_mb() - before
    tracemalloc.start()  # apart from the timing: tracing slows allocation several times over
    charts.render_png(data)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return statistics.median(times), peak / 2**20, grown, len(png)


def fill_watchers(db, count: int) -> None:
    db.conn.execute("begin")
    db.conn.executemany(
        "insert into chats (id, type, language, paused, created_at) values (?, 'private', ?, 0, 1663113600)",
        [(FIRST_CHAT + i, ("en", "ru", "az")[i % 3]) for i in range(count)],
    )
    db.conn.executemany(
        "insert into watches (chat_id, country, platform, created_at) values (?, 'AZ', 'tiktok', 1663113600)",
        [(FIRST_CHAT + i,) for i in range(count)],
    )
    db.conn.execute("commit")


async def alert_to_watchers(watchers: int, with_chart: bool) -> dict:
    async def fetch(country, platform, since, until):
        return observations()

    with tempfile.TemporaryDirectory() as folder:
        store = await Store.open(Path(folder) / "bench.db")
        await store.run(fill_watchers, watchers)
        async with FakeTelegram() as fake:
            request = AiohttpRequest(pool_size=64)
            bot = Bot(fake.token, base_url=f"{fake.url}/bot", base_file_url=f"{fake.url}/file/bot", request=request)
            await bot.initialize()
            maker = ChartMaker(store, fetch) if with_chart else None
            sender = Sender(store, rate=math.inf, bot=bot, max_in_flight=32, charts=maker)
            event = Event("blocked", "AZ", "tiktok", T0, (29049, 41997, 31721), added=(29049, 41997, 31721),
                          method="tls", since=T0 - timedelta(days=2), anomalies=31, measurements=38)
            t = time.perf_counter()
            queued = await store.run(notifier.queue_event, event)
            while (await store.run(outbox.counts))["backlog"]:
                await sender.drain_once()
            await sender.charts_sent()
            elapsed = time.perf_counter() - t
            photos = len(fake.calls("sendPhoto"))
            texts = len(fake.calls("sendMessage"))
            await bot.shutdown()
        await store.close()
    return {"seconds": elapsed, "queued": queued, "texts": texts, "photos": photos,
            "renders": maker.renders if maker else 0, "uploads": maker.uploads if maker else 0}


async def main(watchers: int) -> None:
    render_s, traced_mb, rss_growth, size = render_figures()
    print("machine: 2 cores shared with four other engineers' test runs; figures vary run to run")
    print(f"one chart (1200x900 PNG, 11 networks -> 8 + others, 14 days): render {render_s * 1000:.0f} ms (median of 5), "
          f"{size / 1024:.0f} KiB; Python allocations peak {traced_mb:.1f} MiB, RSS growth over 5 renders {rss_growth:.1f} MiB, "
          f"process peak RSS {rss_mb():.0f} MiB")
    plain = await alert_to_watchers(watchers, with_chart=False)
    with_chart = await alert_to_watchers(watchers, with_chart=True)
    print(f"blocked alert to {watchers:,} watchers, send limit lifted, fake Bot API on loopback:")
    print(f"  without chart: {plain['seconds']:.2f} s  ({plain['texts']:,} sendMessage)")
    print(f"  with chart:    {with_chart['seconds']:.2f} s  ({with_chart['texts']:,} sendMessage + {with_chart['photos']:,} sendPhoto; "
          f"charts rendered {with_chart['renders']}, uploaded {with_chart['uploads']}, the rest by file_id)")
    print(f"  the chart's extra cost: {with_chart['seconds'] - plain['seconds']:.2f} s for {watchers:,} chats; "
          f"rendering per chat instead would add about {render_s * watchers:.0f} s of rendering alone")
    print(f"  at Telegram's 30 messages/s the same {watchers:,} alerts take {watchers / 30:.0f} s without charts and "
          f"{2 * watchers / 30:.0f} s with them (the photo is a message of its own)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watchers", type=int, default=1000)
    asyncio.run(main(parser.parse_args().watchers))
