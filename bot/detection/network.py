"""Judging one network: when its data makes a block, how a block's numbers follow it, when it is over."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from bot.detection.buckets import drop
from bot.detection.pattern import continuous, covered, hour_of_week
from bot.detection.state import BLOCKED, OK, Bucket, NetworkBlock, NetworkState, Tally, argmax
from bot.detection.thresholds import Thresholds


def anomalous(b: Bucket, th: Thresholds) -> bool:
    return b.signs > 0 and b.signs >= th.block_ratio * b.valid


def clean(b: Bucket, th: Thresholds) -> bool:
    return b.valid > 0 and b.signs <= th.clear_ratio * b.valid


class Candidate(NamedTuple):
    """A network whose recent data passes the bar: where its block starts, and what the evidence is."""

    first: datetime  # start of the first anomalous bucket of the qualifying stretch
    valid: int  # valid measurements from its first anomalous bucket on
    span: timedelta  # from its first anomalous bucket to the end of its newest bucket
    corroborated: bool  # more than one run speaks for it, or one run far bigger than a probe's


def candidate(net: NetworkState, th: Thresholds) -> Candidate | None:
    """A recent stretch of the window (ending with the newest data) anomalous enough to be a block.

    Every stretch ending with the newest bucket is tried, so a block that began an hour ago is not
    diluted by the OK day before it. Corroborated when its anomalous buckets start at least
    `corroboration_gap` apart (two probe runs) or the stretch holds `lone_run_valid` measurements."""
    total_signs = net.signs_total
    ratio = th.block_ratio
    valid = signs = 0
    oldest = None  # the oldest bucket of the longest qualifying stretch
    stretch_valid = 0
    for b in reversed(net.buckets.values()):
        valid += b.valid
        signs += b.signs
        if total_signs < ratio * valid:
            break  # no longer stretch can reach the ratio, even with every remaining anomaly
        if signs >= th.needed(valid):
            oldest, stretch_valid = b.start, valid
    if oldest is None:
        return None
    starts = [b.start for b in net.buckets.values() if b.start >= oldest and anomalous(b, th)] or [oldest]
    newest = next(reversed(net.buckets.values())).end
    runs = starts[-1] - starts[0] >= th.corroboration_gap
    # the evidence is the data from the first anomalous bucket on, not the OK data the stretch may start with
    evidence_valid = sum(b.valid for b in net.buckets.values() if b.start >= starts[0])
    return Candidate(starts[0], evidence_valid, newest - starts[0], runs or stretch_valid >= th.lone_run_valid)


def start_block(net: NetworkState, found: Candidate, now: datetime, th: Thresholds, zone: ZoneInfo) -> None:
    net.status, net.since = BLOCKED, found.first
    net.evidence, net.method, net.methods = (), None, {}
    net.confirmed = net.intermittent = False
    net.last_anomalous = net.last_clean = None
    net.pruned, net.pruned_after = Tally(), Tally()
    net.raised_valid, net.raised_span = found.valid, int(found.span.total_seconds())
    net.bites = net.clean_hours = 0
    follow_block(net, now, th, zone)


def shows_block(b: Bucket, previous_anomalous: bool, th: Thresholds) -> bool:
    """The block showing itself in a bucket: mostly anomalous with a few anomalies, or right after
    another mostly anomalous bucket. A lone stray anomaly (1 of 1) does not."""
    return anomalous(b, th) and (b.signs >= th.burst_anomalies or previous_anomalous)


def follow_block(net: NetworkState, now: datetime, th: Thresholds, zone: ZoneInfo) -> None:
    """Keep a blocked network's numbers, method, evidence, end, intermittency and hours up to date.

    The numbers and method are the block's: its data from `since` to the end of its last anomalous
    bucket (pruned buckets included, through the tallies), not the OK data that may follow it."""
    valid = signs = 0
    methods: dict[str, int] = {}
    upto: tuple[int, int, dict[str, int]] | None = None  # the sums up to the newest bucket showing the block
    evidence: list[str] = []
    fallback: list[str] = []  # uids of lone anomalies, if the block never showed more
    shown = previous = False
    ok_valid = 0
    ok_from = ok_to = None
    for b in net.buckets.values():
        if b.start < net.since or b.start >= now or b.valid == 0:
            continue
        valid += b.valid
        signs += b.signs
        if b.signs and b.method:
            methods[b.method] = methods.get(b.method, 0) + b.signs
        if b.confirmed:
            net.confirmed = True
        if shows_block(b, previous, th):
            if shown and ok_valid >= th.intermittent_min_ok and ok_to - ok_from >= th.intermittent_min_gap:
                net.intermittent = True  # it came back after a real OK stretch
            shown = True
            ok_valid, ok_from, ok_to = 0, None, None
            if net.last_anomalous is None or b.end > net.last_anomalous:
                net.last_anomalous = b.end
            upto = (valid, signs, dict(methods))
            evidence[:0] = b.evidence  # newest first
            if (hour := hour_of_week(b.start, b.end, zone)) is not None:
                net.bites |= 1 << hour
        elif clean(b, th):
            if (hour := hour_of_week(b.start, b.end, zone)) is not None:
                net.clean_hours |= 1 << hour
            if net.last_clean is None or b.end > net.last_clean:
                net.last_clean = b.end
            ok_valid += b.valid
            ok_from = ok_from or b.start
            ok_to = b.end
        elif anomalous(b, th):
            fallback[:0] = b.evidence
        previous = anomalous(b, th)
    if upto is not None and net.pruned_after:
        # the block showed itself after the pruned quiet stretch: that stretch is inside the block now
        net.pruned.add(net.pruned_after.valid, net.pruned_after.signs, net.pruned_after.methods)
        net.pruned_after = Tally()
    if upto is None:
        # not shown in the data held: its showing was pruned (the tallies hold it), or it never showed
        # more than lone anomalies (then all it has is what is held)
        upto = (0, 0, {}) if net.pruned else (valid, signs, methods)
    net.measurements = net.pruned.valid + upto[0]
    net.anomalies = net.pruned.signs + upto[1]
    block_methods = dict(net.pruned.methods)
    for method, count in upto[2].items():
        block_methods[method] = block_methods.get(method, 0) + count
    if block_methods:
        net.methods = block_methods
        net.method = argmax(block_methods)
    if evidence or fallback:
        # a filling day's pieces carry the same uids again and again: each once
        net.evidence = tuple(dict.fromkeys(evidence or fallback))[: th.evidence_per_network]


def try_clear(net: NetworkState, now: datetime, th: Thresholds, zone: ZoneInfo) -> NetworkBlock | None:
    """blocked → ok once the clean data since the block last showed itself is as strong as what raised it.

    That data (mostly OK: at most `clear_ratio` anomalous) must hold at least as many valid measurements
    as the stretch that raised the alarm and span as long (at least `clear_min_span`) — or simply span
    `clear_within` with `clear_min_valid` measurements. A block that has not been seen biting around the
    clock (daytime only, or not seen at night yet) must also be seen clean through one whole occurrence
    of the hours when it bit, on a day it would bite. Gaps never clear: only data does. Returns the
    block that ended (its numbers, as they stood), or None."""
    after = net.last_anomalous or net.since
    data = [b for b in net.buckets.values() if b.start >= after and b.start < now and b.valid]
    if not data:
        return None
    valid = sum(b.valid for b in data)
    signs = sum(b.signs for b in data)
    span = data[-1].end - data[0].start
    if signs > th.clear_ratio * valid or valid < th.clear_min_valid or span < th.clear_min_span:
        return None
    as_strong = valid >= net.raised_valid and span >= timedelta(seconds=net.raised_span)
    if not as_strong and span < th.clear_within:
        return None
    if not continuous(net.bites, th.continuous_max_gap) and not covered(
        net.bites, [(b.start, b.end, b.valid) for b in data], zone, th.min_valid, now,
    ):
        return None
    block = NetworkBlock(
        net.asn, net.since, net.last_anomalous, net.anomalies, net.measurements, dict(net.methods), net.method,
        net.evidence, net.confirmed, net.intermittent,
    )
    net.status, net.since = OK, now
    net.anomalies, net.measurements = signs, valid  # from now on: the clean stretch its OK status rests on
    drop(net, data[0].start - th.retention - th.window, after)  # the ended block's data must not raise it again
    net.pruned, net.pruned_after = Tally(), Tally()
    return block
