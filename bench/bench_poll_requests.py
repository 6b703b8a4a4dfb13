"""Requests per poll cycle with IODA beside OONI, and /status on demand under fifty chats at once.

The real Poller over a real SQLite store polls the fake OONI API and the fake IODA API (tests/fakes/)
for C watched countries, each watched by W chats (every platform, `internet` included). It prints
the requests each source got per cycle beside the peer the issue names: what asking per watcher
would cost (W × C × 2 for IODA). Then /status for a country nobody watches, asked by 50 chats at
once through StatusLookup (the handler's path), and by 50 chats about 50 different countries.

    python bench/bench_poll_requests.py [--countries 5 20 50] [--watchers 1 100 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time

from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot import catalog  # noqa: E402
from bot.app import build_services  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.on_demand import StatusLookup  # noqa: E402
from bot.poller import Poller  # noqa: E402
from bot.sources.ioda import IodaSource  # noqa: E402
from bot.sources.ooni import OoniSource  # noqa: E402
from storage.db import Store  # noqa: E402
from storage.subscriptions import add_watches, ensure_chat  # noqa: E402
from tests.fakes.ioda import FakeIoda, at, uganda_alerts  # noqa: E402
from tests.fakes.ooni import FakeOoni  # noqa: E402

NOW = at("2026-01-13T16:15:00")  # the Uganda shutdown an hour and a quarter old


def watch_all(db, countries: list[str], watchers: int) -> None:
    for cc in countries:
        for n in range(watchers):
            chat = hash((cc, n)) & 0x7FFFFFFF
            ensure_chat(db, chat, "private")
            add_watches(db, chat, cc, list(catalog.PLATFORMS))


async def cycle_costs(countries: int, watchers: int, ooni: FakeOoni, ioda: FakeIoda) -> tuple[int, int, float]:
    codes = ["UG", *[c.code for c in catalog.all_countries() if c.code != "UG"]][:countries]
    with tempfile.TemporaryDirectory() as folder:
        store = await Store.open(Path(folder) / "bench.db")
        try:
            await store.run(watch_all, codes, watchers)
            services = build_services(Settings(database_path=Path(folder) / "bench.db"), store, sending=False, polling=False)
            async with OoniSource(ooni.url) as o, IodaSource(ioda.url) as i:
                poller = Poller(services, o, clock=lambda: NOW, outages=i)
                ooni.requests.clear(), ioda.requests.clear()
                started = time.perf_counter()
                result = await poller.poll_once()
                wall = time.perf_counter() - started
        finally:
            await store.close()
    assert result.outage_requests == len(ioda.requests)
    return len(ooni.requests), len(ioda.requests), wall


async def status_on_demand(ooni: FakeOoni, ioda: FakeIoda, same_country: bool) -> tuple[int, int, int, float]:
    with tempfile.TemporaryDirectory() as folder:
        store = await Store.open(Path(folder) / "bench.db")
        try:
            async with OoniSource(ooni.url) as o, IodaSource(ioda.url) as i:
                lookup = StatusLookup(store, o, i, interval=900, clock=lambda: NOW)
                ooni.requests.clear(), ioda.requests.clear()
                countries = ["UG"] * 50 if same_country else [c.code for c in catalog.all_countries()][:50]
                started = time.perf_counter()
                answers = await asyncio.gather(*(lookup.statuses(cc, list(catalog.PLATFORMS)) for cc in countries))
                wall = time.perf_counter() - started
                assert len(answers) == 50
                return lookup.fetches, len(ooni.requests), len(ioda.requests), wall
        finally:
            await store.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--countries", type=int, nargs="+", default=[5, 20, 50])
    parser.add_argument("--watchers", type=int, nargs="+", default=[1, 100, 1000])
    args = parser.parse_args()
    cc, alerts = uganda_alerts()
    print("machine: 2 cores shared by five engineers' suites; wall times are indicative only")
    async with FakeOoni() as ooni, FakeIoda({cc: alerts}) as ioda:
        print(f"{'countries':>9} {'watchers/country':>16} {'OONI req':>8} {'IODA req':>8} {'IODA per watcher (peer)':>24} {'wall':>7}")
        for countries in args.countries:
            for watchers in args.watchers:
                o, i, wall = await cycle_costs(countries, watchers, ooni, ioda)
                print(f"{countries:9} {watchers:16} {o:8} {i:8} {2 * countries * watchers:24} {wall:6.2f}s")
        for same, label in ((True, "50 chats, /status UG at once"), (False, "50 chats, 50 countries at once")):
            fetches, o, i, wall = await status_on_demand(ooni, ioda, same)
            print(f"{label:32} on-demand fetches {fetches:3}  OONI requests {o:3} (budget 3 a country)  "
                  f"IODA requests {i:3}  wall {wall:.2f}s")


if __name__ == "__main__":
    asyncio.run(main())
