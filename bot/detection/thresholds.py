"""The detector's tuning: every threshold with its reason, and the binomial bar derived from them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class Thresholds:
    """The detector's tuning. The defaults are fitted to thin data (Azerbaijan has a handful of probes).

    Background: in the real 2024-01-01 fastpath rows 92 of 885 valid measurements (10.4%) are
    anomalous or confirmed, almost all one-offs; fitted on alternate rows the rate is 11.6% (even
    lines) or 9.2% (odd lines), and the other half, held out, raises nothing at either fit
    (tests/test_detector.py); OONI's older EWMA detector (blocked above 0.10,
    cleared below 0.05) assumed far denser data than one country's few probes give.
    """

    # A day of data: a few probe runs per network, yet short enough to catch a one-day block.
    window: timedelta = timedelta(hours=24)
    # Fewer valid measurements than this never decide: "a day with two measurements" is not evidence;
    # one probe run of TikTok's 25 AZ endpoints is.
    min_valid: int = 5
    # Anomalous + confirmed measurements needed: a stray anomaly or a pair of them is background noise.
    min_anomalies: int = 3
    # Blocked when at least half of the valid measurements are anomalous: 5x the background rate, and
    # what TLS interference on AS29049 gave in 2022 (most measurements of the blocked endpoints).
    block_ratio: float = 0.5
    # The anomaly rate of a network that is not blocked: 10.4% in the real 2024-01-01 rows.
    background: float = 0.10
    # ...and how unlikely the anomalies must be under that background (binomial tail). Each poll
    # tests every network and several recent stretches: 1e-5 keeps chance clusters out over 10,000
    # networks polled hourly, and still lets 5 of 5, 7 of 8 or 10 of 12 anomalous decide.
    significance: float = 1e-5
    # Cleared only below twice the background rate, so ratios hovering near 0.5 never flap.
    clear_ratio: float = 0.2
    # More valid data is needed to say "it works again" than to raise the alarm: a wrong unblock
    # would tell journalists a block is over while it goes on.
    clear_min_valid: int = 8
    # A probe run takes minutes and may straddle an hour: anomalous buckets starting this far apart are
    # two runs, and a network only one run speaks for needs them (or a second network, or a big sample).
    corroboration_gap: timedelta = timedelta(hours=2)
    # A single run this big is more than one probe's test list (TikTok's AZ list is 25 URLs): it decides alone.
    lone_run_valid: int = 50
    # A second network corroborates when its own block showed within this time of the thin one's.
    peer_within: timedelta = timedelta(hours=24)
    # Clean data after the block's last showing must span this long at least (two runs, not one lucky probe)...
    clear_min_span: timedelta = timedelta(hours=3)
    # ...and is enough once it spans this long, however strong the evidence that raised the alarm was.
    clear_within: timedelta = timedelta(hours=12)
    # A block seen biting at hours of the day with no gap longer than this is continuous; otherwise
    # (daytime only, or not seen at night yet) its clean data must cover the hours when it used to bite.
    continuous_max_gap: timedelta = timedelta(hours=8)
    # How long a blocked network's data is kept: a weekday-only block's clean stretch runs Fri to Mon.
    clear_horizon: timedelta = timedelta(days=4)
    # Alert watchers at most once per this for `changed`: changes within it go out as one message.
    changed_every: timedelta = timedelta(hours=6)
    # A bucket with at least this many anomalies, mostly anomalous, means "not over yet": the block
    # must be absent from the clean stretch that clears it (an exam hour or a blocked day resets it), while
    # a single stray anomaly (a 1-of-1 bucket) does not.
    burst_anomalies: int = 2
    # An OK stretch between anomalous buckets marks a block intermittent only with this much data...
    intermittent_min_ok: int = 3
    # ...spanning at least this long: the service came back for a while, not for one lucky probe.
    intermittent_min_gap: timedelta = timedelta(hours=3)
    # Evidence links kept per blocked network (an alert lists a few, not hundreds).
    evidence_per_network: int = 3

    @property
    def retention(self) -> timedelta:
        """How far back a blocked network's buckets are kept (the longest window that reads them)."""
        return max(self.window, self.clear_horizon)

    def __post_init__(self) -> None:
        # the bar for each sample size, computed once (not a field: equality and hash ignore it)
        object.__setattr__(self, "_needed", _needed_table(self))

    def needed(self, valid: int) -> int:
        """Anomalies (+ confirmed) out of `valid` that make a block; more than `valid` means "never"."""
        table = self._needed
        if valid < len(table):
            return table[valid]
        return max(self.min_anomalies, math.ceil(self.block_ratio * valid))


def _needed_table(th: Thresholds, size: int = 128) -> tuple[int, ...]:
    """For each number of valid measurements, the fewest anomalies that pass every bar of `th`."""
    table = []
    for valid in range(size):
        if valid < th.min_valid:
            table.append(valid + 1)  # unreachable: too little data ever decides
            continue
        signs = max(th.min_anomalies, math.ceil(th.block_ratio * valid))
        while signs <= valid and _tail(valid, signs, th.background) > th.significance * (1 + 1e-9):
            signs += 1
        table.append(signs)
    return tuple(table)


def _tail(n: int, k: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p): how likely k anomalies of n are from background alone."""
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


DEFAULT = Thresholds()
