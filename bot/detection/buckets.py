"""Folding a source's observations into one network's buckets, and forgetting old ones.

A complete bucket is stored whole (re-sent with other counts, it replaces the old). A bucket still
filling is stored as [start, now) the first time and remembered as a `Sighting`; each re-send's
growth becomes a piece of its own, [last sighting, now); counts that shrink are the source's
revision and replace the bucket's pieces. Running sums (`valid_total`, `signs_total`, `expires`)
are kept in step so a quiet network costs O(1) per poll.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.detection.state import BLOCKED, Bucket, NetworkState, Sighting
from bot.detection.thresholds import Thresholds
from bot.observations import Observation

# How long after its end a source may still re-send a bucket: the live poll re-sends yesterday's day
# (final counts) once, after midnight, and again after a restart — so a day, with a day's margin.
RESEND_HORIZON = timedelta(days=2)


def bucket_of(obs: Observation, end: datetime, th: Thresholds) -> Bucket:
    """The counts the detector keeps (as [obs.start, end)), clamped so a malformed observation cannot
    break the sums."""
    valid = obs.measurements - obs.failures
    confirmed = obs.confirmed if obs.confirmed > 0 else 0
    signs = (obs.anomalies if obs.anomalies > 0 else 0) + confirmed
    if valid < 0:
        valid = 0
    if signs > valid:  # more anomalies than valid measurements: the valid count bounds them
        signs, confirmed = valid, min(confirmed, valid)
    if not signs:
        return _new_bucket(Bucket, (obs.start, end, valid, 0, 0, obs.method, ()))
    return _new_bucket(Bucket, (obs.start, end, valid, signs, confirmed, obs.method, tuple(obs.evidence[: th.evidence_per_network])))


# tuple.__new__ with the fields in order: half the cost of Bucket(...), once per observation
_new_bucket = tuple.__new__


def fold(net: NetworkState, obs: Observation, now: datetime, th: Thresholds) -> bool:
    """Take one observation into a network's buckets; returns whether its data changed.

    A bucket first seen complete is stored whole (re-sent with other counts, it is replaced). One first
    seen while filling is stored as [start, now) and remembered as a Sighting; each re-send then adds
    its growth as a piece [last sighting, now) carrying the observation's method and evidence, and a
    shrink (a revision) replaces the bucket's pieces by the new whole."""
    start, end = obs.start, obs.end
    sightings = net.sightings
    if not sightings and end <= now:
        # the usual case, a complete bucket: built as stored, and a re-send with the same counts
        # is recognised without going further
        b = bucket_of(obs, end, th)
        return net.buckets.get(start) != b and put(net, b)
    cut = end if end <= now else now
    whole = bucket_of(obs, end, th)
    if sightings:
        gone = now - RESEND_HORIZON  # one subtraction per observation, not one per sighting
        for old in [k for k, s in sightings.items() if s.end <= gone]:
            del sightings[old]  # the source sends it no more
    seen = sightings.get(start)
    if seen is None or seen.end != end:
        if seen is not None:
            del sightings[start]  # another grain from the same start: start over with it
        if end > now:
            sightings[start] = Sighting(end, whole.valid, whole.signs, whole.confirmed, now)
        return put(net, ending_at(whole, cut))
    valid, signs, confirmed = whole.valid - seen.valid, whole.signs - seen.signs, whole.confirmed - seen.confirmed
    sightings[start] = Sighting(end, whole.valid, whole.signs, whole.confirmed, max(now, seen.at))
    if not (valid or signs or confirmed):
        fill_details(net, whole)
        return False
    if valid < 0 or signs < 0 or confirmed < 0 or valid < signs:
        drop(net, start, end)  # OONI revised the bucket: its pieces give way to the new whole
        return put(net, ending_at(whole, cut))
    evidence = whole.evidence if signs else ()
    if seen.at < cut:
        return put(net, Bucket(seen.at, cut, valid, signs, confirmed, whole.method, evidence))
    # late data of a bucket last seen after its end: it joins the bucket's newest piece
    last = newest_piece(net, start, end)
    if last is None:
        return put(net, Bucket(start, cut, valid, signs, confirmed, whole.method, evidence))
    return put(net, Bucket(
        last.start, last.end, last.valid + valid, last.signs + signs, last.confirmed + confirmed,
        whole.method or last.method, evidence or last.evidence,
    ))


def ending_at(b: Bucket, end: datetime) -> Bucket:
    """The bucket ending at `end` (a filling bucket is stored up to now); cheaper than `_replace`."""
    return b if b.end == end else Bucket(b.start, end, b.valid, b.signs, b.confirmed, b.method, b.evidence)


def newest_piece(net: NetworkState, start: datetime, end: datetime) -> Bucket | None:
    """The newest stored bucket starting within [start, end)."""
    for b in reversed(net.buckets.values()):
        if start <= b.start < end:
            return b
        if b.start < start:
            return None
    return None


def fill_details(net: NetworkState, whole: Bucket) -> None:
    """Same counts, but the method or evidence came only now (the source had no request left): the
    bucket's newest anomalous piece gets what it lacks."""
    if not whole.signs or not (whole.method or whole.evidence):
        return
    last = newest_piece(net, whole.start, whole.end)
    if last is None or not last.signs or (last.method and last.evidence):
        return
    net.buckets[last.start] = last._replace(method=last.method or whole.method, evidence=last.evidence or whole.evidence)


def drop(net: NetworkState, start: datetime, end: datetime) -> None:
    """Forget the stored buckets that start within [start, end)."""
    kept = [b for b in net.buckets.values() if not start <= b.start < end]
    net.buckets = {b.start: b for b in kept}
    net.valid_total = sum(b.valid for b in kept)
    net.signs_total = sum(b.signs for b in kept)
    net.expires = kept[0].end if kept else None


def put(net: NetworkState, b: Bucket) -> bool:
    """Store a bucket; it replaces any stored bucket it overlaps (a new grain, a revised bucket).

    Returns whether anything changed (a re-sent bucket with the same counts changes nothing)."""
    buckets = net.buckets
    old = buckets.get(b.start)
    if old is not None and old.end == b.end:
        if old == b:
            return False
        buckets[b.start] = b  # same key: keeps its place in the order
        net.valid_total += b.valid - old.valid
        net.signs_total += b.signs - old.signs
        return True
    if old is None and (not buckets or buckets[next(reversed(buckets))].end <= b.start):
        if not buckets:
            net.expires = b.end
        buckets[b.start] = b  # the usual case: a new bucket after all the others
        net.valid_total += b.valid
        net.signs_total += b.signs
        return True
    kept = [x for x in buckets.values() if x.end <= b.start or x.start >= b.end]
    kept.append(b)
    kept.sort(key=lambda x: x.start)
    net.buckets = {x.start: x for x in kept}
    net.valid_total = sum(x.valid for x in kept)
    net.signs_total = sum(x.signs for x in kept)
    net.expires = kept[0].end
    return True


def prune(net: NetworkState, cutoff: datetime) -> bool:
    """Forget buckets that ended at or before `cutoff` (ascending order: they are at the front)."""
    if net.expires is None or net.expires > cutoff:
        return False  # the common case, decided without touching the buckets
    buckets = net.buckets
    while buckets:
        first = buckets[next(iter(buckets))]
        if first.end > cutoff:
            net.expires = first.end
            return True
        del buckets[first.start]
        net.valid_total -= first.valid
        net.signs_total -= first.signs
        if net.status == BLOCKED and first.start >= net.since and first.valid:
            # the block's numbers span all of it: pruned data is tallied, not lost
            after = net.last_anomalous is None or first.end > net.last_anomalous
            (net.pruned_after if after else net.pruned).add(first.valid, first.signs, methods_of(first))
    net.expires = None
    return True


def methods_of(b: Bucket) -> dict[str, int]:
    return {b.method: b.signs} if b.signs and b.method else {}
