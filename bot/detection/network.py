"""Judging one network: when its data makes a block, how a block's numbers follow it, when it is over."""

from __future__ import annotations

from datetime import datetime

from bot.detection.state import BLOCKED, OK, Bucket, NetworkBlock, NetworkState, Tally, argmax
from bot.detection.thresholds import Thresholds


def anomalous(b: Bucket, th: Thresholds) -> bool:
    return b.signs > 0 and b.signs >= th.block_ratio * b.valid


def clean(b: Bucket, th: Thresholds) -> bool:
    return b.valid > 0 and b.signs <= th.clear_ratio * b.valid


def try_block(net: NetworkState, now: datetime, th: Thresholds) -> bool:
    """Blocked when a recent stretch of the window (ending with the newest data) is anomalous enough.

    Every stretch ending with the newest bucket is tried, so a block that began an hour ago is not
    diluted by the OK day before it. Returns whether the network became blocked."""
    total_signs = net.signs_total
    ratio = th.block_ratio
    valid = signs = 0
    oldest = None  # the oldest bucket of the longest qualifying stretch
    for b in reversed(net.buckets.values()):
        valid += b.valid
        signs += b.signs
        if total_signs < ratio * valid:
            break  # no longer stretch can reach the ratio, even with every remaining anomaly
        if signs >= th.needed(valid):
            oldest = b.start
    if oldest is None:
        return False
    first = next((b.start for b in net.buckets.values() if b.start >= oldest and anomalous(b, th)), oldest)
    net.status, net.since = BLOCKED, first
    net.evidence, net.method, net.methods = (), None, {}
    net.confirmed = net.intermittent = False
    net.last_anomalous = None
    net.pruned, net.pruned_after = Tally(), Tally()
    follow_block(net, now, th)
    return True


def shows_block(b: Bucket, previous_anomalous: bool, th: Thresholds) -> bool:
    """The block showing itself in a bucket: mostly anomalous with a few anomalies, or right after
    another mostly anomalous bucket. A lone stray anomaly (1 of 1) does not."""
    return anomalous(b, th) and (b.signs >= th.burst_anomalies or previous_anomalous)


def follow_block(net: NetworkState, now: datetime, th: Thresholds) -> None:
    """Keep a blocked network's numbers, method, evidence, end and intermittency up to date.

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
        elif clean(b, th):
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


def try_clear(net: NetworkState, now: datetime, th: Thresholds) -> NetworkBlock | None:
    """blocked → ok after a sustained, well-covered stretch of mostly OK valid data; gaps never clear.

    Over the whole clearing window (48 h, 72 h once the block came and went): the block never
    showed itself, at most `clear_ratio` of at least `clear_min_valid` valid measurements were
    anomalous, and the data reaches from near the window's start to near now. Returns the block that
    ended (its numbers, as they stood), or None."""
    span = th.clear_after_intermittent if net.intermittent else th.clear_after
    lo = now - span
    slack = span / 4
    valid = signs = 0
    first_start = last_end = None
    previous = False
    for b in net.buckets.values():
        if b.end <= lo or b.start >= now or b.valid == 0:
            continue
        if shows_block(b, previous, th):
            return None  # the block showed itself inside the window: not over
        previous = anomalous(b, th)
        valid += b.valid
        signs += b.signs
        first_start = first_start or b.start
        last_end = b.end
    if valid < th.clear_min_valid or signs > th.clear_ratio * valid:
        return None
    if first_start > lo + slack or last_end < now - slack:
        return None
    block = NetworkBlock(
        net.asn, net.since, net.last_anomalous, net.anomalies, net.measurements, dict(net.methods), net.method,
        net.evidence, net.confirmed, net.intermittent,
    )
    net.status, net.since = OK, now
    net.anomalies, net.measurements = signs, valid  # from now on: the window its OK status rests on
    net.pruned, net.pruned_after = Tally(), Tally()
    return block
