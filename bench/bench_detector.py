"""Detector time per poll cycle: 50 countries x 10 platforms x 20 networks, 48 hourly buckets each.

Run: python bench/bench_detector.py [--cycles N] [--live]

A cycle is what the live poller does every POLL_INTERVAL: for every (country, platform) one
`detect()` call with that poll's observations — the newest hourly bucket of every network that
had data, plus the previous bucket re-sent (still filling). The states are warmed with 48 hours of
history first. Networks have realistic, seeded histories: most are thin (a probe run every 1–6
hours of 1–25 measurements), background anomalies at 2–10%, and 3% of the pairs carry a real
block on some of their networks (so the blocked path is timed too).

Printed: detector time per cycle (median and worst of N cycles): the 500 detect() calls only —
folding the observations into the states, judging every network, building the events; not making
the observations (the source's job) nor storing the states. Then how the thresholds did on this
data (designed blocks found, noisy networks wrongly blocked), and separately what storing the
states costs (BlockState.to_json of all 500 states each cycle; json.loads + from_dict on a restart;
bench/bench_poll_cycle.py times a whole cycle's state handling in SQLite).

With --live, the observations have the live source's shape instead: each network's UTC day re-sent
every 15 minutes with its counts so far (yesterday's final counts once, after midnight), which the
detector splits into increments; a probe run's measurements arrive 10 minutes after its hour begins.
Warm-up and cycles are then 15-minute polls.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.detector import BlockState, detect  # noqa: E402
from bot.observations import Observation  # noqa: E402

COUNTRIES, PLATFORMS, NETWORKS, HISTORY_HOURS = 50, 10, 20, 48
HOUR = timedelta(hours=1)
T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)


class Network:
    """One network's seeded measurement habits: how often probes run, how many, how noisy, blocked when."""

    def __init__(self, rng: random.Random, asn: int, blocked: bool):
        self.asn = asn
        self.every = rng.choice([1, 1, 2, 3, 4, 6])
        self.phase = rng.randrange(self.every)
        self.size = rng.choice([1, 2, 3, 5, 8, 12, 25])
        self.noise = rng.uniform(0.02, 0.10)
        self.block_from = rng.randrange(10, HISTORY_HOURS + 12) if blocked else None
        self.seed = rng.randrange(1 << 30)

    def observation(self, country: str, platform: str, hour: int) -> Observation | None:
        if (hour - self.phase) % self.every:
            return None
        rng = random.Random(self.seed * 1000 + hour)  # the same bucket re-sent has the same counts
        n = max(1, self.size + rng.randint(-1, 1))
        failures = int(rng.random() < 0.1)
        valid = max(0, n - failures)
        if self.block_from is not None and hour >= self.block_from:
            anomalies = sum(rng.random() < 0.85 for _ in range(valid))
        else:
            anomalies = sum(rng.random() < self.noise for _ in range(valid))
        start = T0 + hour * HOUR
        uids = tuple(f"{start:%Y%m%d%H}0000.000000_{country}_webconnectivity_{self.asn}{i:04x}" for i in range(min(anomalies, 5)))
        return Observation(country, platform, self.asn, start, start + HOUR, n, anomalies, 0, failures,
                           "tls" if anomalies else None, uids)


class LiveDay:
    """One network's counts so far per UTC day, as the live source re-sends them (--live)."""

    def __init__(self, net: Network):
        self.net, self.next_hour = net, 0
        self.days: dict[datetime, list] = {}  # day → [measurements, anomalies, failures, uids]

    def observations(self, country: str, platform: str, now: datetime) -> list[Observation]:
        while T0 + self.next_hour * HOUR + timedelta(minutes=10) < now:  # runs that have arrived by now
            o = self.net.observation(country, platform, self.next_hour)
            self.next_hour += 1
            if o is not None:
                day = self.days.setdefault(o.start.replace(hour=0), [0, 0, 0, ()])
                day[0] += o.measurements
                day[1] += o.anomalies
                day[2] += o.failures
                day[3] = (o.evidence + day[3])[:5]
        today = now.replace(hour=0, minute=0)
        days = [today - timedelta(days=1), today] if now - today < QUARTER else [today]
        out = []
        for day in days:
            if (counts := self.days.get(day)) is not None:
                n, anomalies, failures, uids = counts
                out.append(Observation(country, platform, self.net.asn, day, day + timedelta(days=1), n, anomalies, 0,
                                       failures, "tls" if anomalies else None, uids))
        for old in [d for d in self.days if d < today - timedelta(days=1)]:
            del self.days[old]
        return out


QUARTER = timedelta(minutes=15)


def poll_live(pairs, states, live: dict, quarter: int) -> tuple[float, float, int, int]:
    """One 15-minute cycle in the live source's shape; returns what `poll` returns."""
    now = T0 + (quarter + 1) * QUARTER
    batches = []
    for country, platform, networks in pairs:
        days = live.setdefault((country, platform), [LiveDay(net) for net in networks])
        batches.append((country, platform, [o for d in days for o in d.observations(country, platform, now)]))
    n_obs = sum(len(b[2]) for b in batches)
    n_events = 0
    t, cpu = time.perf_counter(), time.process_time()
    for country, platform, observations in batches:
        key = (country, platform)
        states[key], events = detect(states.get(key), observations, now, country=country, platform=platform)
        n_events += len(events)
    return time.perf_counter() - t, time.process_time() - cpu, n_obs, n_events


def build(rng: random.Random):
    pairs = []
    for c in range(COUNTRIES):
        country = chr(65 + c // 26) + chr(65 + c % 26)
        for p in range(PLATFORMS):
            blocked_pair = rng.random() < 0.03
            networks = [Network(rng, 1000 + c * 100 + n, blocked_pair and n < 3) for n in range(NETWORKS)]
            pairs.append((country, f"platform{p}", networks))
    return pairs


def poll(pairs, states, hour: int) -> tuple[float, float, int, int]:
    """One cycle at now = end of `hour`: returns (wall and CPU seconds in detect, observations, events)."""
    batches = []
    for country, platform, networks in pairs:
        observations = []
        for net in networks:
            for k in (hour - 1, hour):
                o = net.observation(country, platform, k)
                if o is not None:
                    observations.append(o)
        batches.append((country, platform, observations))
    now = T0 + (hour + 1) * HOUR
    n_obs = sum(len(b[2]) for b in batches)
    n_events = 0
    t, cpu = time.perf_counter(), time.process_time()
    for country, platform, observations in batches:
        key = (country, platform)
        states[key], events = detect(states.get(key), observations, now, country=country, platform=platform)
        n_events += len(events)
    return time.perf_counter() - t, time.process_time() - cpu, n_obs, n_events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--live", action="store_true", help="day buckets re-sent every 15 minutes, as the live source sends them")
    args = parser.parse_args()
    rng = random.Random(20220913)
    pairs = build(rng)
    states: dict[tuple[str, str], BlockState] = {}
    live: dict = {}
    per_hour = 4 if args.live else 1

    def cycle(i: int):
        return poll_live(pairs, states, live, i) if args.live else poll(pairs, states, i)

    for i in range(HISTORY_HOURS * per_hour):  # warm-up: 48 hours of history
        cycle(i)
    buckets = sum(len(n.buckets) for s in states.values() for n in s.networks.values())
    blocked = sum(len(s.blocked_asns) for s in states.values())
    print(f"states: {len(states)} pairs, {sum(len(s.networks) for s in states.values())} networks, "
          f"{buckets} buckets held, {blocked} networks blocked after warm-up")

    times, cpu_times, observed, events = [], [], 0, 0
    for i in range(args.cycles):
        seconds, cpu, n_obs, n_events = cycle(HISTORY_HOURS * per_hour + i)
        times.append(seconds)
        cpu_times.append(cpu)
        observed, events = observed + n_obs, events + n_events
    print(f"detector per cycle ({COUNTRIES}x{PLATFORMS} detect() calls, ~{observed // args.cycles} observations, "
          f"{args.cycles} cycles, {events} events): wall median {statistics.median(times) * 1000:.1f} ms "
          f"(best {min(times) * 1000:.1f}, worst {max(times) * 1000:.1f}); "
          f"CPU median {statistics.median(cpu_times) * 1000:.1f} ms")

    # what the thresholds did with this data: blocks by design found, chance clusters of noise taken for blocks
    end_hour = HISTORY_HOURS + args.cycles // per_hour
    designed = found = false = 0
    for country, platform, networks in pairs:
        blocked = set(states[(country, platform)].blocked_asns)
        for net in networks:
            started = net.block_from is not None and net.block_from < end_hour
            designed += started
            found += started and net.asn in blocked
            false += not started and net.asn in blocked
    print(f"blocks by design {designed}, found {found}; noisy networks wrongly blocked: {false} of "
          f"{COUNTRIES * PLATFORMS * NETWORKS - designed}")

    t = time.perf_counter()
    blobs = [s.to_json() for s in states.values()]
    dump = time.perf_counter() - t
    t = time.perf_counter()
    [BlockState.from_dict(json.loads(b)) for b in blobs]
    load = time.perf_counter() - t
    print(f"state storage (not in the detector figure): to_json {dump * 1000:.0f} ms per cycle, "
          f"json.loads+from_dict {load * 1000:.0f} ms on a restart, {sum(map(len, blobs)) / 1e6:.1f} MB of JSON")


if __name__ == "__main__":
    main()
