"""Deciding from measurement counts when a platform becomes blocked or unblocked in a country.

Pure: `detect(state, observations, now)` takes the stored state of one (country, platform), the
observations a source just returned for it and the current time, and returns the new state and
the events to announce. No I/O and no clock, so the live poller and the backtest run the same code
and tests drive it with any history.

Per network (ASN) the state is ok, blocked or unknown (too little data to say). A network becomes
blocked when a recent stretch of its data (ending with the newest bucket, within the last day) is
mostly anomalous, with enough valid measurements and anomalies that background noise could hardly
have made it (a binomial bar against the real background rate), so thin data cannot decide on its
own. It is cleared only after a sustained, well-covered period of mostly OK valid data in which the
block never showed itself (hysteresis), and never by a gap in the data.
Events are per (country, platform) and list every blocked network: `blocked` when the first network
is blocked, `changed` when the set changes while something stays blocked, `unblocked` when the last
one clears. Their numbers are the blocked networks' data over their block (from its start to its last
anomalous data), never the OK data that clears it; `unblocked` names every network of the period.

A source may re-send a bucket while it fills (the live poll's UTC day, with growing counts). The
first sighting is one bucket [start, now); each later sighting's growth is new data in its own piece
[previous sighting, now), so a block that starts at 06:00 is judged on its own data, not diluted by
the morning. Counts that shrink (OONI revised them) replace that bucket's pieces by the new whole.
The last counts of each such bucket and when they were seen are kept in the state (`Sighting`), so a
restart goes on where it stopped.

This module is the per-(country, platform) step; its parts live in bot/detection/, one job each:
`thresholds` (the tuning and its reasons), `state` (what is remembered and its stored form),
`event` (what is announced and its JSON line), `buckets` (observations folded into a network's
buckets), `network` (one network judged: blocked, following its block, cleared), `isotime`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

# the detector's types, importable from here as before (bot/detection/ holds one job per module)
from bot.detection.buckets import bucket_of, fold, prune, put
from bot.detection.event import ADDED, CLEARED, Change, Event
from bot.detection.network import Candidate, candidate, follow_block, start_block, try_clear
from bot.detection.pattern import zone_of
from bot.detection.state import BLOCKED, OK, UNKNOWN, BlockState, NetworkBlock, NetworkState, common_method
from bot.detection.thresholds import DEFAULT, Thresholds
from bot.observations import Observation

__all__ = [
    "BLOCKED", "DEFAULT", "OK", "UNKNOWN", "BlockState", "Event", "NetworkBlock", "NetworkState", "Thresholds", "detect",
]


def detect(
    state: BlockState | None,
    observations: Iterable[Observation],
    now: datetime,
    thresholds: Thresholds = DEFAULT,
    *,
    country: str | None = None,
    platform: str | None = None,
) -> tuple[BlockState, list[Event]]:
    """Fold one poll's observations for a (country, platform) into its state; return it and the events.

    `state` is mutated and returned (None: a first poll; then the pair comes from the observations
    or from `country`/`platform`). Observations may re-send a bucket already seen: a complete one
    with the same counts changes nothing; one still filling adds its growth since the last sighting
    as a new piece (see the module's docstring). An empty poll keeps every network's state: time
    passing alone can only clear a network whose OK data already covers the clearing window.
    """
    if now.tzinfo is None:
        raise ValueError("detect: `now` must be timezone-aware (UTC)")
    th = thresholds
    observations = list(observations)
    if state is None:
        country = country or (observations[0].country if observations else None)
        platform = platform or (observations[0].platform if observations else None)
        if not country or not platform:
            raise ValueError("detect: no state and no observations — pass country= and platform=")
        state = BlockState(country, platform)
        touched = True  # a new state is stored even when it holds nothing yet
    else:
        touched = False  # set wherever the state may change: see BlockState.changed
    # the blocked networks before and after are gathered in the one walk over the networks below
    # (folding observations changes no status); `blocked_asns` would walk them twice more
    blocked_before: list[int] = []
    blocked_after: list[int] = []
    blocked_since_before, intermittent_before = state.blocked_since, state.intermittent
    last_data_before, cleared_before = state.last_data, len(state.cleared_blocks)

    changed: set[int] = set()  # networks whose data changed: only they can newly become blocked
    networks, country, platform = state.networks, state.country, state.platform
    newest = state.last_data
    for obs in observations:
        if obs.country != country or obs.platform != platform:
            raise ValueError(f"detect: observation for {obs.country}/{obs.platform} given to {country}/{platform}")
        if obs.start >= now:  # not yet begun by our clock: it says nothing about the past
            continue
        net = networks.get(obs.asn)
        if net is None:
            net = networks[obs.asn] = NetworkState(obs.asn, since=now)
        end = obs.end
        if end <= now and not net.sightings:
            # fold's usual case inline (thousands per poll): a complete bucket, often re-sent unchanged
            b = bucket_of(obs, end, th)
            if net.buckets.get(obs.start) != b and put(net, b):
                changed.add(obs.asn)
        else:
            touched = True  # a filling bucket: its sighting moves on even when its counts do not
            net.stored = None
            if fold(net, obs, now, th):
                changed.add(obs.asn)
        if newest is None or end > newest:
            newest = end
    if newest is not None:
        state.last_data = min(newest, now)

    window_start, retention_start = now - th.window, now - th.retention
    need_least = th.needed(th.min_valid)
    zone = zone_of(country)
    ended: list[NetworkBlock] = []  # blocks of networks that cleared in this call
    thin: list[tuple[NetworkState, Candidate]] = []  # passing the bar on one run's word: need a peer
    for asn, net in list(networks.items()):
        if net.status == BLOCKED:
            touched = True  # its numbers, evidence and tallies follow the block every call
            net.stored = None
            blocked_before.append(asn)
            prune(net, retention_start)
            follow_block(net, now, th, zone)
            if (block := try_clear(net, now, th, zone)) is not None:
                ended.append(block)
            else:
                blocked_after.append(asn)
            continue
        if asn not in changed:
            # Without new data an ok/unknown network cannot become blocked (the window only loses
            # old buckets), so it is left as it is — re-judged when data comes, forgotten when stale.
            # (`expires` checked here first: prune's own quick test, without a call per network)
            if net.expires is not None and net.expires <= retention_start and prune(net, retention_start):
                touched = True
                net.stored = None
                if not net.buckets:
                    del networks[asn]
            continue
        net.stored = None  # its data changed
        if net.expires is not None and net.expires <= window_start:
            prune(net, window_start)  # what is left is the window: the running sums are its totals
        if net.signs_total >= need_least and (found := candidate(net, th)) is not None:
            if found.corroborated:
                start_block(net, found, now, th, zone)
                blocked_after.append(asn)
                continue
            thin.append((net, found))
        _judge_unblocked(net, now, th)
    if thin:
        # a thin network's peer may have had no new data this poll: networks passing the bar earlier count too
        for asn, net in networks.items():
            if net.status != BLOCKED and asn not in changed and net.signs_total >= need_least:
                if net.expires is not None and net.expires <= window_start:
                    prune(net, window_start)
                    net.stored = None
                if (found := candidate(net, th)) is not None:
                    thin.append((net, found))
    for net, found in thin:
        # one run's word stands when another network shows the block near it: a second thin one, or
        # a blocked one that showed itself within `peer_within`
        peers = len(thin) > 1 or any(
            networks[a].last_anomalous is not None and abs(networks[a].last_anomalous - found.first) <= th.peer_within
            for a in blocked_after
        )
        if peers:
            start_block(net, found, now, th, zone)
            blocked_after.append(net.asn)

    before, after = tuple(sorted(blocked_before)), tuple(sorted(blocked_after))
    if not after:
        state.blocked_since = None
        state.intermittent = False
    else:
        starts = [state.networks[asn].since for asn in after] + [blocked_since_before]
        state.blocked_since = min(s for s in starts if s is not None)
        state.intermittent = state.intermittent or any(state.networks[asn].intermittent for asn in after)

    pending_before = len(state.pending)
    events: list[Event] = []
    if before and after and after != before:
        # a change waits, so changes close together go out as one message (Thresholds.changed_every)
        if not state.pending:
            state.pending_since = now
        state.pending += [Change(a, ADDED, networks[a].since) for a in after if a not in before]
        state.pending += [Change(b.asn, CLEARED, b.ended) for b in ended]
    if after != before and not (before and after):
        events.append(_event(state, before, after, ended, blocked_since_before, intermittent_before, now))
        state.pending, state.pending_since = [], None
    elif state.pending and now >= max(state.pending_since, state.last_alert or state.pending_since) + th.changed_every:
        changes = _net_changes(state.pending)
        if changes:
            events.append(_changed(state, after, changes, now))
        state.pending, state.pending_since = [], None
    if events:
        state.last_alert = now
    # a network cleared while others stay blocked still belongs to this period's `unblocked`
    state.cleared_blocks = state.cleared_blocks + ended if after else []
    state.changed = (
        touched or bool(changed) or bool(events) or state.last_data != last_data_before
        or state.blocked_since != blocked_since_before or state.intermittent != intermittent_before
        or len(state.cleared_blocks) != cleared_before or len(state.pending) != pending_before
    )
    return state, events


def _judge_unblocked(net: NetworkState, now: datetime, th: Thresholds) -> None:
    """A network that is not blocked: ok with enough data in the window, else unknown."""
    net.anomalies, net.measurements = net.signs_total, net.valid_total
    status = OK if net.valid_total >= th.min_valid else UNKNOWN
    if status != net.status:
        net.status, net.since = status, now


def _net_changes(pending: list[Change]) -> tuple[Change, ...]:
    """What the pending changes come to: a network that left and came back (or came and left) has not
    changed; otherwise its latest change stands. Oldest first."""
    by_asn: dict[int, list[Change]] = {}
    for change in pending:
        by_asn.setdefault(change.asn, []).append(change)
    kept = [changes[-1] for changes in by_asn.values() if changes[0].kind == changes[-1].kind]
    return tuple(sorted(kept, key=lambda c: (c.time or datetime.min.replace(tzinfo=timezone.utc), c.asn)))


def _changed(state: BlockState, after: tuple[int, ...], changes: tuple[Change, ...], now: datetime) -> Event:
    return _as_it_stands(
        state, "changed", now, after,
        added=tuple(c.asn for c in changes if c.kind == ADDED),
        cleared=tuple(c.asn for c in changes if c.kind == CLEARED),
        changes=changes,
    )


def _as_it_stands(
    state: BlockState, kind: str, now: datetime, asns: tuple[int, ...], *,
    added: tuple[int, ...], cleared: tuple[int, ...], changes: tuple[Change, ...] = (),
) -> Event:
    """A `blocked` or `changed` event: the block's facts as the state holds them now."""
    return Event(
        kind=kind,
        country=state.country,
        platform=state.platform,
        time=now,
        asns=asns,
        added=added,
        cleared=cleared,
        method=state.method,
        since=state.blocked_since,
        anomalies=state.anomalies,
        measurements=state.measurements,
        confirmed=state.confirmed,
        intermittent=state.intermittent,
        evidence=state.evidence,
        changes=changes,
        pattern=state.pattern,
    )


def _event(
    state: BlockState,
    before: tuple[int, ...],
    after: tuple[int, ...],
    ended: list[NetworkBlock],
    blocked_since_before: datetime | None,
    intermittent_before: bool,
    now: datetime,
) -> Event:
    added = tuple(a for a in after if a not in before)
    cleared = tuple(a for a in before if a not in after)
    if not after:  # clearings not announced yet (see Thresholds.changed_every) end with this event too
        cleared = tuple(sorted(set(cleared) | {c.asn for c in state.pending if c.kind == CLEARED}))
    if not after:  # the last blocked network cleared: the whole period, every network it had
        blocks = sorted(state.cleared_blocks + ended, key=lambda b: b.asn)
        ends = [b.ended for b in blocks if b.ended]
        last = max(ends) if ends else now
        since = blocked_since_before or min((b.since for b in blocks if b.since), default=last)
        return Event(
            kind="unblocked",
            country=state.country,
            platform=state.platform,
            time=now,
            asns=tuple(sorted({b.asn for b in blocks})),
            cleared=cleared,
            method=common_method([(b.methods, b.method, b.anomalies) for b in blocks]),
            since=since,
            anomalies=sum(b.anomalies for b in blocks),
            measurements=sum(b.measurements for b in blocks),
            confirmed=any(b.confirmed for b in blocks),
            intermittent=intermittent_before or any(b.intermittent for b in blocks),
            evidence=tuple(dict.fromkeys(uid for b in blocks for uid in b.evidence)),
            duration=max(timedelta(0), last - since),
            ended=last,
        )
    return _as_it_stands(state, "blocked" if not before else "changed", now, after, added=added, cleared=cleared)
