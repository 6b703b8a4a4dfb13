"""How the detector serves a journalist on whole episodes, beside the simple rolling 24-hour rule.

Run: python bench/bench_detection.py

Each episode is a set of real OONI rows (tests/fixtures/ooni: real fastpath measurements re-dated by
tests/fakes/ooni.redate onto the episode's networks and hours, so flags, scores and blocking types
are the real rows'), served by the fake OONI API on 127.0.0.1 and replayed through the code
`blockwatch backtest` runs (`bot.backtest.backtest`: the OONI source's hourly history, then the live
detector on a clock stepping by one hour). Per episode it prints:

- blocked: hours from the first anomalous measurement of the block to the `blocked` event;
- clear: hours from the first clean measurement after the block's last anomalous one to `unblocked`;
- msgs: the alerts one watcher of the pair receives (every event is one message), and the shortest
  gap between two of them in hours;
- false: events naming a network that never blocked (and any event at all on the quiet episodes).

Beside each, the peer the issue names, on the same observations: per network, a rolling 24-hour
window evaluated hourly — blocked when it holds ≥ 5 valid measurements and ≥ 50 % are anomalous,
cleared when it holds ≥ 5 valid and ≤ 10 % are; pair events as the detector's (blocked, changed,
unblocked). Timings are not measured: the figures are hours of simulated time, not machine time.
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.backtest import backtest  # noqa: E402
from bot.detector import Event  # noqa: E402
from bot.observations import Observation  # noqa: E402
from bot.sources.ooni import OoniSource  # noqa: E402
from tests.fakes.ooni import (  # noqa: E402
    AZ_BLOCKED_ASNS, FakeOoni, _templates, az_tiktok_episode, load_fastpath_background, redate,
    tiktok_endpoints_az_2022,
)

UTC = timezone.utc
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
BAKU = timedelta(hours=4)  # Azerbaijan's UTC offset (no daylight saving since 2016)
DELTA, AZTELEKOM, AZERCELL, CONNECT, NAR, BAKCELL, AGTEL = 29049, 28787, 31721, 41997, 42779, 197830, 57293


@dataclass
class Episode:
    name: str
    rows: list[dict]
    since: date
    until: date
    # per network, the anomalous measurement times of the block (empty: never blocked)
    blocked_times: dict[int, list[datetime]] = field(default_factory=dict)
    clean_times: dict[int, list[datetime]] = field(default_factory=dict)
    country: str = "AZ"
    platform: str = "tiktok"
    quiet: bool = False  # any event is false


class Rows:
    """Probe runs made of real rows: each run `size` measurements of TikTok endpoints within ~10 minutes."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.bad, self.ok = _templates(load_fastpath_background())
        self.endpoints = tiktok_endpoints_az_2022()
        self.rows: list[dict] = []
        self.blocked: dict[int, list[datetime]] = defaultdict(list)
        self.clean: dict[int, list[datetime]] = defaultdict(list)

    def run(self, asn: int, when: datetime, size: int, anomalous: int) -> None:
        for i in range(size):
            t = when + timedelta(seconds=self.rng.randrange(600))
            url = self.rng.choice(self.endpoints)
            template = self.rng.choice(self.bad if i < anomalous else self.ok)
            self.rows.append(redate(template, cc="AZ", asn=asn, when=t.replace(tzinfo=None), rng=self.rng, input=url))
            (self.blocked if i < anomalous else self.clean)[asn].append(t)

    def runs(self, asn: int, start: datetime, end: datetime, every: timedelta, size: int, blocked=lambda t: False,
             share: float = 0.9) -> None:
        t = start
        while t < end:
            self.run(asn, t, size, round(size * share) if blocked(t) else 0)
            t += every


def az_2022() -> Episode:
    rows = az_tiktok_episode(after=timedelta(hours=72))
    blocked, clean = defaultdict(list), defaultdict(list)
    for row in rows:
        t = datetime.fromisoformat(row["measurement_start_time"]).replace(tzinfo=UTC)
        (blocked if row["anomaly"] == "t" else clean)[int(row["probe_asn"])].append(t)
    return Episode("AZ 2022 TikTok (fixture)", rows, date(2022, 9, 13), date(2022, 9, 20), dict(blocked), dict(clean))


def background() -> list[Episode]:
    rows = load_fastpath_background()
    by_cc = defaultdict(list)
    for row in rows:
        by_cc[row["probe_cc"]].append(row)
    return [Episode(f"background {cc}", r, date(2024, 1, 1), date(2024, 1, 2), country=cc, platform="*", quiet=True)
            for cc, r in sorted(by_cc.items())]


def continuous() -> Episode:
    r = Rows(1)
    t0 = datetime(2022, 10, 4, tzinfo=UTC)
    block = (t0 + DAY + 9 * HOUR, t0 + 4 * DAY + 9 * HOUR)  # three days, one well-measured network
    r.runs(DELTA, t0, t0 + 7 * DAY, HOUR, 6, lambda t: block[0] <= t < block[1], share=1.0)
    for asn in (AZTELEKOM, AZERCELL):
        r.runs(asn, t0 + HOUR, t0 + 7 * DAY, 3 * HOUR, 4)
    return Episode("continuous, one network", r.rows, t0.date(), (t0 + 7 * DAY).date(), dict(r.blocked), dict(r.clean))


def daytime() -> Episode:
    r = Rows(2)
    t0 = datetime(2022, 10, 3, tzinfo=UTC)  # a Monday
    weeks = 3

    def on(t: datetime) -> bool:
        local = t + BAKU
        return t < t0 + weeks * 7 * DAY and local.weekday() < 5 and 8 <= local.hour < 17

    for asn in (DELTA, AZERCELL):
        r.runs(asn, t0, t0 + (weeks * 7 + 7) * DAY, 2 * HOUR, 5, on)
    r.runs(CONNECT, t0 + 3 * HOUR, t0 + (weeks * 7 + 7) * DAY, 5 * HOUR, 5, on)  # thinner: a run every 5 h
    r.runs(AZTELEKOM, t0 + HOUR, t0 + (weeks * 7 + 7) * DAY, 3 * HOUR, 4)
    return Episode("daytime only, 3 weeks, weekends off", r.rows, t0.date(), (t0 + (weeks * 7 + 7) * DAY).date(),
                   dict(r.blocked), dict(r.clean))


def spreading() -> Episode:
    r = Rows(3)
    t0 = datetime(2022, 10, 4, tzinfo=UTC)
    b = t0 + DAY
    windows = {DELTA: (b, b + 60 * HOUR), AZERCELL: (b, b + 66 * HOUR), CONNECT: (b + 30 * HOUR, b + 72 * HOUR)}
    for asn, (s, e) in windows.items():
        r.runs(asn, t0, t0 + 7 * DAY, 2 * HOUR, 5, lambda t, s=s, e=e: s <= t < e)
    r.runs(AZTELEKOM, t0 + HOUR, t0 + 7 * DAY, 3 * HOUR, 4)
    return Episode("two networks, a third joins, ends one by one", r.rows, t0.date(), (t0 + 7 * DAY).date(),
                   dict(r.blocked), dict(r.clean))


def lone_probe() -> Episode:
    r = Rows(4)
    t0 = datetime(2022, 10, 3, tzinfo=UTC)
    for asn in (DELTA, AZERCELL, AZTELEKOM):
        r.runs(asn, t0, t0 + 14 * DAY, 3 * HOUR, 4)
    r.run(BAKCELL, t0 + 7 * DAY + 11 * HOUR, 8, 7)  # a small ISP's only probe, once, mostly anomalous
    return Episode("lone probe run on a small ISP", r.rows, t0.date(), (t0 + 14 * DAY).date(),
                   {}, dict(r.clean), quiet=True)


def silent_probe() -> Episode:
    r = Rows(5)
    t0 = datetime(2022, 10, 4, tzinfo=UTC)
    b, e = t0 + DAY, t0 + 6 * DAY
    silent = (b + 24 * HOUR, b + 96 * HOUR)
    t = t0
    while t < t0 + 9 * DAY:
        if not silent[0] <= t < silent[1]:
            r.run(DELTA, t, 5, 5 if b <= t < e else 0)
        t += 2 * HOUR
    r.runs(AZTELEKOM, t0 + HOUR, t0 + 9 * DAY, 3 * HOUR, 4)
    return Episode("probe silent 3 days mid-block", r.rows, t0.date(), (t0 + 9 * DAY).date(), dict(r.blocked), dict(r.clean))


# --- the peer: a rolling 24-hour rule ---------------------------------------------------------------


def rolling_rule(observations: list[Observation], start: datetime, end: datetime) -> list[tuple[datetime, str, tuple[int, ...]]]:
    per = defaultdict(list)
    for o in observations:
        per[o.asn].append(o)
    blocked: set[int] = set()
    events = []
    now = start + HOUR
    while now <= end:
        before = set(blocked)
        for asn, obs in per.items():
            window = [o for o in obs if now - DAY <= o.start and o.end <= now]
            valid = sum(o.valid for o in window)
            signs = sum(o.blocked_signs for o in window)
            if valid < 5:
                continue
            if asn not in blocked and signs >= 0.5 * valid:
                blocked.add(asn)
            elif asn in blocked and signs <= 0.1 * valid:
                blocked.discard(asn)
        if blocked != before:
            kind = "blocked" if not before else ("unblocked" if not blocked else "changed")
            events.append((now, kind, tuple(sorted(blocked or before))))
        now += HOUR
    return events


# --- figures ----------------------------------------------------------------------------------------


def figures(ep: Episode, events: list[tuple[datetime, str, tuple[int, ...]]]) -> dict[str, str]:
    blocked_asns = {asn for asn, times in ep.blocked_times.items() if times}
    false = sum(1 for _, _, asns in events if ep.quiet or set(asns) - blocked_asns)
    times = [t for t, _, _ in events]
    gap = min((b - a for a, b in zip(times, times[1:])), default=None)
    out = {"msgs": f"{len(events)}" + (f" (min gap {gap / HOUR:.0f} h)" if gap is not None else ""), "false": str(false)}
    if blocked_asns:
        first_bad = min(min(ts) for ts in ep.blocked_times.values() if ts)
        last_bad = max(max(ts) for ts in ep.blocked_times.values() if ts)
        clean_after = [t for ts in ep.clean_times.values() for t in ts if t > last_bad]
        first_clean = min(clean_after) if clean_after else None
        b = next((t for t, k, _ in events if k == "blocked"), None)
        u = next((t for t, k, _ in reversed(events) if k == "unblocked"), None)
        out["blocked"] = f"{(b - first_bad) / HOUR:.1f} h" if b else "never"
        out["clear"] = f"{(u - first_clean) / HOUR:.1f} h" if u and first_clean and u > last_bad else "never"
    else:
        out["blocked"] = out["clear"] = "—"
    return out


async def run(ep: Episode) -> tuple[dict[str, str], dict[str, str]]:
    from bot import catalog

    platforms = list(catalog.PLATFORMS) if ep.platform == "*" else [ep.platform]
    async with FakeOoni(ep.rows) as fake, OoniSource(fake.url) as source:
        events: list[Event] = await backtest(source, ep.country, platforms, ep.since, ep.until, HOUR)
        observations = await source.history(ep.country, platforms, ep.since, ep.until)
    start = datetime(ep.since.year, ep.since.month, ep.since.day, tzinfo=UTC)
    end = datetime(ep.until.year, ep.until.month, ep.until.day, tzinfo=UTC)
    mine = figures(ep, [(e.time, e.kind, e.asns) for e in events])
    peer_events = []
    for platform in platforms:
        peer_events += rolling_rule([o for o in observations if o.platform == platform], start, end)
    return mine, figures(ep, sorted(peer_events))


async def main() -> None:
    episodes = [az_2022(), continuous(), daytime(), spreading(), lone_probe(), silent_probe()]
    rows = []
    for ep in episodes:
        rows.append((ep.name, *await run(ep)))
    quiet_mine = quiet_peer = 0
    for ep in background():
        mine, peer = await run(ep)
        quiet_mine += int(mine["false"])
        quiet_peer += int(peer["false"])
    rows.append(("real background 2024-01-01, every country and platform", {"blocked": "—", "clear": "—", "msgs": str(quiet_mine), "false": str(quiet_mine)},
                 {"blocked": "—", "clear": "—", "msgs": str(quiet_peer), "false": str(quiet_peer)}))
    print("episode | blocked after | all-clear after | msgs per watcher | false events   (detector / rolling 24 h rule)")
    for name, mine, peer in rows:
        print(f"{name} | {mine['blocked']} / {peer['blocked']} | {mine['clear']} / {peer['clear']} | "
              f"{mine['msgs']} / {peer['msgs']} | {mine['false']} / {peer['false']}")


if __name__ == "__main__":
    asyncio.run(main())
