"""How many OONI API requests a poll cycle costs: 50 countries × 10 platforms × 20 networks.

Starts the fake OONI API (tests/fakes/ooni.py) with real fastpath rows re-dated into that many
countries, platforms and networks, then runs poll cycles — one `OoniSource.observe()` per country
with all ten platforms watched — and prints the requests made per cycle and per country and the
wall time. Cycle 1 is a cold start (yesterday's counts, first details), the next follow every
15 minutes; an hour on, the details of still-anomalous pairs are refreshed.

    python bench/bench_ooni_requests.py [--countries 50] [--networks 20] [--blocked 5]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot import catalog  # noqa: E402
from bot.sources.ooni import OoniSource  # noqa: E402
from tests.fakes.ooni import FakeOoni, _templates, load_fastpath_background, redate, web_analysis  # noqa: E402

NOW = datetime(2024, 1, 10, 12, tzinfo=timezone.utc)
OONI_PLATFORMS = {name: p for name, p in catalog.PLATFORMS.items() if p.source == "ooni"}  # `internet` is IODA's


def build_rows(countries: list[str], networks: int, blocked: int, rng: random.Random) -> list[dict]:
    """Two measurements per country, platform, network and kind (web / app test) in the last 36 h,
    about 3% of them one-off anomalies; in the first `blocked` countries TikTok is blocked (TLS) on
    3 networks, measured 8 times each."""
    background = load_fastpath_background()
    bad_web, ok_web = _templates(background)
    app_templates: dict[str, list[dict]] = {}
    for row in background:
        app_templates.setdefault(row["test_name"], []).append(row)
    rows = []
    for i, cc in enumerate(countries):
        asns = [64512 + 100 * i + n for n in range(networks)]
        for name, platform in OONI_PLATFORMS.items():
            domains = catalog.platform_domains(name, cc)
            for n, asn in enumerate(asns):
                block = name == "tiktok" and i < blocked and n < 3
                for _ in range(8 if block else 2):
                    when = (NOW - timedelta(seconds=rng.randrange(36 * 3600))).replace(tzinfo=None)
                    if domains:
                        bad = block or rng.random() < 0.03
                        template = rng.choice(bad_web if bad else ok_web)
                        url = f"https://{rng.choice(domains)}/"
                        analysis = web_analysis("tls") if block else None
                        rows.append(redate(template, cc=cc, asn=asn, when=when, rng=rng, input=url, analysis=analysis))
                    tests = [t for t in platform.tests if app_templates.get(t)]
                    if tests:
                        template = rng.choice(app_templates[rng.choice(tests)])
                        rows.append(redate(template, cc=cc, asn=asn, when=when, rng=rng))
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--countries", type=int, default=50)
    parser.add_argument("--networks", type=int, default=20)
    parser.add_argument("--blocked", type=int, default=5, help="countries with TikTok blocked on 3 networks")
    args = parser.parse_args()

    rng = random.Random(1)
    countries = [c.code for c in catalog.all_countries()][: args.countries]
    t0 = time.perf_counter()
    rows = build_rows(countries, args.networks, args.blocked, rng)
    print(f"rows: {len(rows)} ({args.countries} countries x {len(OONI_PLATFORMS)} platforms x "
          f"{args.networks} networks), built in {time.perf_counter() - t0:.1f} s")

    platforms = list(OONI_PLATFORMS)
    async with FakeOoni(rows) as fake, OoniSource(fake.url) as source:
        for n, offset in enumerate((0, 15, 30, 45, 60, 75, 90), start=1):
            label = f"cycle {n} (+{offset} min)" if offset else "cycle 1 (cold)"
            fake.requests.clear()
            per_country = []
            observations = 0
            started = time.perf_counter()
            for cc in countries:
                before = len(fake.requests)
                observations += len(await source.observe(cc, platforms, NOW + timedelta(minutes=offset)))
                per_country.append(len(fake.requests) - before)
            wall = time.perf_counter() - started
            paths = Counter(path.removeprefix("/api/v1/") for path, _ in fake.requests)
            print(
                f"{label:18} requests {len(fake.requests):4}  per country: max {max(per_country)} "
                f"mean {statistics.mean(per_country):.2f}  observations {observations:5}  "
                f"wall {wall:.2f} s  ({', '.join(f'{p} {n}' for p, n in sorted(paths.items()))})"
            )
    print(f"source totals: requests_made {source.requests_made}, errors {source.errors}")


if __name__ == "__main__":
    asyncio.run(main())
