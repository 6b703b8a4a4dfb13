"""State handling per poll cycle: 500 stored (country, platform) states, read every cycle vs held in memory.

Run: python bench/bench_poll_cycle.py [--cycles N]

The states and observations of bench/bench_detector.py (50 countries x 10 platforms x 20 networks,
48 hours of hourly history, seeded). A cycle is what `Poller.poll_once` does once OONI has answered:
per country one `bot.poller._apply` — one transaction in a real SQLite file: detect(), save_state()
and queue the events — over its 10 platforms.
- before: every state read from SQLite each cycle (load_state: SQL, json.loads, from_dict), as the
  poller did (a fresh HeldStates per cycle is exactly that);
- after: one HeldStates for the poller's life — read on the first cycle, then held.
The same detect() calls are timed apart on in-memory states, so what is left of a cycle is the
state handling. Before, after and detector-only run interleaved, hour by hour, on identical states
(the box is shared: interleaving keeps a busy moment from favouring one side).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_detector import HISTORY_HOURS, HOUR, T0, build, poll  # noqa: E402

from bot.detector import DEFAULT, BlockState, detect  # noqa: E402
from bot.poller import HeldStates, _apply  # noqa: E402
from storage.db import connect, transaction  # noqa: E402
from storage.states import load_state, save_state  # noqa: E402


def observations_for(pairs, hour: int) -> dict[str, tuple[list[str], list]]:
    """What one cycle hands `_apply`: per country its platforms and the observations (bucket hour, and hour-1 re-sent)."""
    per_country: dict[str, tuple[list[str], list]] = defaultdict(lambda: ([], []))
    for country, platform, networks in pairs:
        platforms, observations = per_country[country]
        platforms.append(platform)
        for net in networks:
            for k in (hour - 1, hour):
                o = net.observation(country, platform, k)
                if o is not None:
                    observations.append(o)
    return per_country


def timed(fn, *args) -> tuple[float, float]:
    t, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - t, time.process_time() - cpu


def cycle(db, held: HeldStates, batches, now) -> None:
    for country, (platforms, observations) in sorted(batches.items()):
        _apply(db, held, country, platforms, observations, now, DEFAULT)


def detect_only(states: dict, batches, now) -> None:
    for country, (platforms, observations) in batches.items():
        for platform in platforms:
            mine = [o for o in observations if o.platform == platform]
            key = (country, platform)
            states[key], _ = detect(states[key], mine, now, country=country, platform=platform)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=10)
    args = parser.parse_args()
    pairs = build(random.Random(20220913))
    states: dict[tuple[str, str], BlockState] = {}
    for hour in range(HISTORY_HOURS):  # warm-up: 48 hours of history, in memory
        poll(pairs, states, hour)

    with tempfile.TemporaryDirectory() as folder:
        before_db, after_db = connect(Path(folder) / "before.db"), connect(Path(folder) / "after.db")
        for db in (before_db, after_db):
            with transaction(db):
                for state in states.values():
                    save_state(db, state)
        size = before_db.execute("select sum(length(data)) from states").fetchone()[0]

        held = HeldStates()  # the poller's, for its whole life
        before, after, alone = [], [], []
        for i in range(args.cycles):
            hour = HISTORY_HOURS + i
            batches, now = observations_for(pairs, hour), T0 + (hour + 1) * HOUR
            before.append(timed(cycle, before_db, HeldStates(), batches, now))
            after.append(timed(cycle, after_db, held, batches, now))
            alone.append(timed(detect_only, states, batches, now))
        assert len(held) == len(states)
        # the two databases went through the same cycles: the same states stored
        assert list(before_db.query("select data from states order by country, platform")) == list(
            after_db.query("select data from states order by country, platform"))

        # the parts, over all 500 states at once
        keys = sorted(states)
        read = timed(lambda: [load_state(after_db, c, p) for c, p in keys])
        def write_all() -> None:
            with transaction(after_db):
                for key in keys:
                    save_state(after_db, states[key])

        write = timed(write_all)
        before_db.close()
        after_db.close()

    def ms(values, cpu=False) -> float:
        return statistics.median(v[1 if cpu else 0] for v in values) * 1000

    d_wall, d_cpu = ms(alone), ms(alone, cpu=True)
    print(f"{len(states)} states, {size / 1e6:.1f} MB of JSON in SQLite; {args.cycles} cycles of 50 countries x 10 platforms "
          f"(medians; wall, then CPU — the box is shared)")
    print(f"detector alone (the same detect() calls, in memory): {d_wall:.0f} ms, CPU {d_cpu:.0f} ms")
    for name, values in (("before: states read from SQLite every cycle", before), ("after:  states held in memory", after)):
        wall, cpu = ms(values), ms(values, cpu=True)
        print(f"{name}: cycle {wall:.0f} ms, CPU {cpu:.0f} ms → state handling ~{wall - d_wall:.0f} ms, CPU ~{cpu - d_cpu:.0f} ms")
    print(f"after, first cycle (reads every state once): {after[0][0] * 1000:.0f} ms, CPU {after[0][1] * 1000:.0f} ms")
    print(f"parts, all {len(keys)} states: read (load_state: SQL + json.loads + from_dict) {read[0] * 1000:.0f} ms, "
          f"write (save_state: to_json + SQL, one transaction) {write[0] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
