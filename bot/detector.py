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
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

from bot.observations import METHODS, Observation

OK = "ok"
BLOCKED = "blocked"
UNKNOWN = "unknown"

STATE_VERSION = 2  # 2: sightings of filling buckets, pruned block tallies, the period's cleared networks
# How long after its end a source may still re-send a bucket: the live poll re-sends yesterday's day
# (final counts) once, after midnight, and again after a restart — so a day, with a day's margin.
RESEND_HORIZON = timedelta(days=2)


@dataclass(frozen=True)
class Thresholds:
    """The detector's tuning. The defaults are fitted to thin data (Azerbaijan has a handful of probes).

    Background: in the real 2024-01-01 fastpath rows 92 of 885 valid measurements (10.4%) are
    anomalous or confirmed, almost all one-offs; OONI's older EWMA detector (blocked above 0.10,
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
    # OK must hold over two days: covers night-time lapses and a day off of an exam-hours block.
    clear_after: timedelta = timedelta(hours=48)
    # Once a block has been seen to come and go, it must stay off over a weekend (Fri evening to Mon).
    clear_after_intermittent: timedelta = timedelta(hours=72)
    # A bucket with at least this many anomalies, mostly anomalous, means "not over yet": the block
    # must be absent for the whole clearing window (an exam hour or a blocked day resets it), while
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
        return max(self.window, self.clear_after, self.clear_after_intermittent)

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


class Bucket(NamedTuple):
    """One observation's counts, as the detector keeps them (a NamedTuple: thousands per state)."""

    start: datetime
    end: datetime
    valid: int
    signs: int  # anomalous + confirmed
    confirmed: int
    method: str | None
    evidence: tuple[str, ...]


class Sighting(NamedTuple):
    """A source bucket first seen while it was still filling: its counts when last seen, and when.

    A re-send's growth over these counts is the data that arrived in [at, that poll's now)."""

    end: datetime  # the source bucket's end (its start is the key)
    valid: int
    signs: int
    confirmed: int
    at: datetime


@dataclass
class Tally:
    """Counts of a block's buckets that were pruned (older than the retention), so its numbers span all of it."""

    valid: int = 0
    signs: int = 0
    methods: dict[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.valid or self.signs)

    def add(self, valid: int, signs: int, methods: dict[str, int]) -> None:
        self.valid += valid
        self.signs += signs
        for method, count in methods.items():
            self.methods[method] = self.methods.get(method, 0) + count

    def to_row(self) -> list:
        return [self.valid, self.signs, dict(self.methods)]

    @classmethod
    def from_row(cls, row: list | None) -> Tally:
        return cls(int(row[0]), int(row[1]), dict(row[2])) if row else cls()


class NetworkBlock(NamedTuple):
    """One network's block as it stood when the network cleared: what an `unblocked` event sums up."""

    asn: int
    since: datetime | None
    ended: datetime | None  # end of its last anomalous data
    anomalies: int
    measurements: int
    methods: dict[str, int]
    method: str | None
    evidence: tuple[str, ...]
    confirmed: bool
    intermittent: bool

    def to_dict(self) -> dict[str, Any]:
        d = self._asdict()
        d.update(since=_iso(self.since), ended=_iso(self.ended), evidence=list(self.evidence))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetworkBlock:
        return cls(
            asn=int(d["asn"]), since=_parse(d.get("since")), ended=_parse(d.get("ended")),
            anomalies=int(d.get("anomalies", 0)), measurements=int(d.get("measurements", 0)),
            methods=dict(d.get("methods", {})), method=d.get("method"), evidence=tuple(d.get("evidence", ())),
            confirmed=bool(d.get("confirmed", False)), intermittent=bool(d.get("intermittent", False)),
        )


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_SECOND = timedelta(seconds=1)


def _bucket_row(b: Bucket) -> list:
    # Unix seconds rather than ISO text: thousands of buckets per state, stored every poll
    row = [(b.start - _EPOCH) // _SECOND, (b.end - b.start) // _SECOND, b.valid, b.signs]
    if b.confirmed or b.method or b.evidence:
        row += [b.confirmed, b.method, list(b.evidence)]
    return row


def _bucket_from_row(row: list) -> Bucket:
    start = _EPOCH + timedelta(seconds=row[0])
    end = start + timedelta(seconds=row[1])
    if len(row) > 4:
        return Bucket(start, end, row[2], row[3], row[4], row[5], tuple(row[6]))
    return Bucket(start, end, row[2], row[3], 0, None, ())


def _sighting_row(start: datetime, s: Sighting) -> list:
    return [(start - _EPOCH) // _SECOND, (s.end - start) // _SECOND, s.valid, s.signs, s.confirmed, (s.at - _EPOCH) // _SECOND]


def _sighting_from_row(row: list) -> tuple[datetime, Sighting]:
    start = _EPOCH + timedelta(seconds=row[0])
    return start, Sighting(start + timedelta(seconds=row[1]), row[2], row[3], row[4], _EPOCH + timedelta(seconds=row[5]))


@dataclass(slots=True)  # slots: ten thousand of them are walked every poll, and attributes in place are faster
class NetworkState:
    """What the detector knows about one network (ASN) of a country for one platform."""

    asn: int
    status: str = UNKNOWN  # "ok" | "blocked" | "unknown"
    since: datetime | None = None  # blocked: start of the first anomalous bucket; else when the status began
    buckets: dict[datetime, Bucket] = field(default_factory=dict)  # by start, ascending, pruned
    evidence: tuple[str, ...] = ()  # evidence links of the current (or last) block, newest first
    method: str | None = None
    methods: dict[str, int] = field(default_factory=dict)  # anomalies per method behind `method`
    anomalies: int = 0  # blocked: over the block (since → last anomalous data); else over the window judged
    measurements: int = 0  # valid measurements over the same stretch
    confirmed: bool = False  # OONI confirmed a block page during this block
    intermittent: bool = False  # the block came back after a real OK stretch (sticky for this block)
    last_anomalous: datetime | None = None  # end of the newest bucket where this block showed itself
    sightings: dict[datetime, Sighting] = field(default_factory=dict)  # filling source buckets, by start
    pruned: Tally = field(default_factory=Tally)  # this block's pruned buckets up to `last_anomalous`
    pruned_after: Tally = field(default_factory=Tally)  # ...and after it (they count once the block shows again)
    # running sums over `buckets`, kept by _put/_prune so a quiet network costs O(1) per poll
    valid_total: int = field(default=0, init=False, repr=False)
    signs_total: int = field(default=0, init=False, repr=False)
    expires: datetime | None = field(default=None, init=False, repr=False)  # end of the oldest bucket
    # its stored form (JSON text), kept while detect() leaves the network as it is: most networks of a
    # state get no new data in a poll, and their thousands of buckets need not be written out again
    stored: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.valid_total = sum(b.valid for b in self.buckets.values())
        self.signs_total = sum(b.signs for b in self.buckets.values())
        self.expires = next(iter(self.buckets.values())).end if self.buckets else None

    @property
    def blocked(self) -> bool:
        return self.status == BLOCKED

    def to_json(self) -> str:
        """`to_dict()` as compact JSON text; kept until detect() changes the network (see `stored`)."""
        if self.stored is None:
            self.stored = json.dumps(self.to_dict(), separators=(",", ":"))
        return self.stored

    def to_dict(self) -> dict[str, Any]:
        d = {
            "asn": self.asn,
            "status": self.status,
            "since": _iso(self.since),
            # compact, as there are thousands: [start, seconds, valid, signs(, confirmed, method, uids)]
            "buckets": [_bucket_row(b) for b in self.buckets.values()],
            "evidence": list(self.evidence),
            "method": self.method,
            "methods": dict(self.methods),
            "anomalies": self.anomalies,
            "measurements": self.measurements,
            "confirmed": self.confirmed,
            "intermittent": self.intermittent,
            "last_anomalous": _iso(self.last_anomalous),
        }
        # left out when empty: most of the thousands of networks have none
        if self.sightings:
            d["sightings"] = [_sighting_row(start, s) for start, s in self.sightings.items()]
        if self.pruned:
            d["pruned"] = self.pruned.to_row()
        if self.pruned_after:
            d["pruned_after"] = self.pruned_after.to_row()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetworkState:
        buckets = {b.start: b for b in map(_bucket_from_row, d.get("buckets", ()))}
        return cls(
            asn=int(d["asn"]),
            status=d.get("status", UNKNOWN),
            since=_parse(d.get("since")),
            buckets=dict(sorted(buckets.items())),
            evidence=tuple(d.get("evidence", ())),
            method=d.get("method"),
            methods=dict(d.get("methods", {})),
            anomalies=int(d.get("anomalies", 0)),
            measurements=int(d.get("measurements", 0)),
            confirmed=bool(d.get("confirmed", False)),
            intermittent=bool(d.get("intermittent", False)),
            last_anomalous=_parse(d.get("last_anomalous")),
            sightings=dict(map(_sighting_from_row, d.get("sightings", ()))),
            pruned=Tally.from_row(d.get("pruned")),
            pruned_after=Tally.from_row(d.get("pruned_after")),
        )


@dataclass
class BlockState:
    """The detector's state for one (country, platform): one NetworkState per ASN."""

    country: str
    platform: str
    networks: dict[int, NetworkState] = field(default_factory=dict)
    blocked_since: datetime | None = None  # when the current block started (its earliest network)
    intermittent: bool = False  # the current block has come and gone (sticky until it ends)
    last_data: datetime | None = None  # the newest data seen (end of the newest bucket, capped at now)
    cleared_blocks: list[NetworkBlock] = field(default_factory=list)  # networks cleared while the block went on
    # Whether the latest detect() call changed anything in it (not stored): the poller writes only
    # changed states. Conservative: True may mean "perhaps" (a blocked network, a filling bucket).
    changed: bool = field(default=False, init=False, compare=False, repr=False)

    @property
    def blocked_asns(self) -> tuple[int, ...]:
        return tuple(sorted([asn for asn, net in self.networks.items() if net.status == BLOCKED]))

    @property
    def blocked(self) -> bool:
        return any(net.status == BLOCKED for net in self.networks.values())

    def _blocked_networks(self) -> list[NetworkState]:
        return [self.networks[asn] for asn in self.blocked_asns]

    @property
    def method(self) -> str | None:
        return _common_method([(n.methods, n.method, n.anomalies) for n in self._blocked_networks()])

    @property
    def anomalies(self) -> int:
        return sum(net.anomalies for net in self._blocked_networks())

    @property
    def measurements(self) -> int:
        return sum(net.measurements for net in self._blocked_networks())

    @property
    def confirmed(self) -> bool:
        return any(net.confirmed for net in self._blocked_networks())

    @property
    def evidence(self) -> tuple[str, ...]:
        return tuple(uid for net in self._blocked_networks() for uid in net.evidence)

    def to_json(self) -> str:
        """The stored form: exactly `json.dumps(self.to_dict(), separators=(",", ":"))`, built from each
        network's kept text, so only the networks the last polls changed are written out again."""
        d = self.to_dict(networks=False)
        head, tail = json.dumps(d, separators=(",", ":")).split('"networks":0', 1)
        networks = ",".join(f'"{asn}":{net.to_json()}' for asn, net in sorted(self.networks.items()))
        return head + '"networks":{' + networks + "}" + tail

    def to_dict(self, networks: bool = True) -> dict[str, Any]:
        # networks=False: a 0 in their place, for to_json to fill in
        return {
            "version": STATE_VERSION,
            "country": self.country,
            "platform": self.platform,
            "blocked_since": _iso(self.blocked_since),
            "intermittent": self.intermittent,
            "last_data": _iso(self.last_data),
            "networks": {str(asn): net.to_dict() for asn, net in sorted(self.networks.items())} if networks else 0,
            "cleared_blocks": [b.to_dict() for b in self.cleared_blocks],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BlockState:
        return cls(
            country=d["country"],
            platform=d["platform"],
            networks={int(asn): NetworkState.from_dict(n) for asn, n in d.get("networks", {}).items()},
            blocked_since=_parse(d.get("blocked_since")),
            intermittent=bool(d.get("intermittent", False)),
            last_data=_parse(d.get("last_data")),
            cleared_blocks=[NetworkBlock.from_dict(b) for b in d.get("cleared_blocks", ())],
        )


@dataclass(frozen=True)
class Event:
    """A change worth telling watchers about, for one (country, platform)."""

    kind: str  # "blocked" | "unblocked" | "changed"
    country: str
    platform: str
    time: datetime  # the `now` of the detect call that found it
    asns: tuple[int, ...]  # blocked networks after the event (unblocked: every one blocked during the period)
    added: tuple[int, ...] = ()
    cleared: tuple[int, ...] = ()
    method: str | None = None  # "dns" | "tcp" | "tls" | "http" | None
    since: datetime | None = None  # when the block started (first anomalous bucket)
    anomalies: int = 0  # anomalous + confirmed measurements of the networks in `asns` over their blocks
    measurements: int = 0  # valid measurements over the same networks and stretches
    confirmed: bool = False  # OONI confirmed it (block page), rather than "signs of blocking"
    intermittent: bool = False
    evidence: tuple[str, ...] = ()  # the source's evidence links, a few per network
    duration: timedelta | None = None  # unblocked: from `since` to the end of the last anomalous data
    ended: datetime | None = None  # unblocked: end of the last anomalous data

    def to_json(self) -> dict[str, Any]:
        """The backtest's JSON line (CONTRACT.md): the contract's keys first, in its order, then extras."""
        return {
            "time": _iso(self.time, seconds=True),
            "country": self.country,
            "platform": self.platform,
            "kind": self.kind,
            "asns": list(self.asns),
            "method": self.method,
            "evidence": list(self.evidence),
            "added": list(self.added),
            "cleared": list(self.cleared),
            "since": _iso(self.since),
            "anomalies": self.anomalies,
            "measurements": self.measurements,
            "confirmed": self.confirmed,
            "intermittent": self.intermittent,
            "duration_seconds": None if self.duration is None else int(self.duration.total_seconds()),
            "ended": _iso(self.ended),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Event:
        """The Event back from `to_json()` (e.g. a stored row); unknown keys are ignored."""
        duration = d.get("duration_seconds")
        return cls(
            kind=d["kind"],
            country=d["country"],
            platform=d["platform"],
            time=_parse(d["time"]),
            asns=tuple(d.get("asns", ())),
            added=tuple(d.get("added", ())),
            cleared=tuple(d.get("cleared", ())),
            method=d.get("method"),
            since=_parse(d.get("since")),
            anomalies=int(d.get("anomalies", 0)),
            measurements=int(d.get("measurements", 0)),
            confirmed=bool(d.get("confirmed", False)),
            intermittent=bool(d.get("intermittent", False)),
            evidence=tuple(d.get("evidence", ())),
            duration=None if duration is None else timedelta(seconds=duration),
            ended=_parse(d.get("ended")),
        )


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
            # _fold's usual case inline (thousands per poll): a complete bucket, often re-sent unchanged
            b = _bucket(obs, end, th)
            if net.buckets.get(obs.start) != b and _put(net, b):
                changed.add(obs.asn)
        else:
            touched = True  # a filling bucket: its sighting moves on even when its counts do not
            net.stored = None
            if _fold(net, obs, now, th):
                changed.add(obs.asn)
        if newest is None or end > newest:
            newest = end
    if newest is not None:
        state.last_data = min(newest, now)

    window_start, retention_start = now - th.window, now - th.retention
    need_least = th.needed(th.min_valid)
    ended: list[NetworkBlock] = []  # blocks of networks that cleared in this call
    for asn, net in list(networks.items()):
        if net.status == BLOCKED:
            touched = True  # its numbers, evidence and tallies follow the block every call
            net.stored = None
            blocked_before.append(asn)
            _prune(net, retention_start)
            _follow_block(net, now, th)
            if (block := _try_clear(net, now, th)) is not None:
                ended.append(block)
            else:
                blocked_after.append(asn)
            continue
        if asn not in changed:
            # Without new data an ok/unknown network cannot become blocked (the window only loses
            # old buckets), so it is left as it is — re-judged when data comes, forgotten when stale.
            # (`expires` checked here first: _prune's own quick test, without a call per network)
            if net.expires is not None and net.expires <= retention_start and _prune(net, retention_start):
                touched = True
                net.stored = None
                if not net.buckets:
                    del networks[asn]
            continue
        net.stored = None  # its data changed
        if net.expires is not None and net.expires <= window_start:
            _prune(net, window_start)  # what is left is the window: the running sums are its totals
        if net.signs_total >= need_least and _try_block(net, now, th):
            blocked_after.append(asn)
            continue
        net.anomalies, net.measurements = net.signs_total, net.valid_total
        status = OK if net.valid_total >= th.min_valid else UNKNOWN
        if status != net.status:
            net.status, net.since = status, now

    before, after = tuple(sorted(blocked_before)), tuple(sorted(blocked_after))
    if not after:
        state.blocked_since = None
        state.intermittent = False
    else:
        starts = [state.networks[asn].since for asn in after] + [blocked_since_before]
        state.blocked_since = min(s for s in starts if s is not None)
        state.intermittent = state.intermittent or any(state.networks[asn].intermittent for asn in after)

    events: list[Event] = []
    if after != before:
        events.append(_event(state, before, after, ended, blocked_since_before, intermittent_before, now))
    # a network cleared while others stay blocked still belongs to this period's `unblocked`
    state.cleared_blocks = state.cleared_blocks + ended if after else []
    state.changed = (
        touched or bool(changed) or bool(events) or state.last_data != last_data_before
        or state.blocked_since != blocked_since_before or state.intermittent != intermittent_before
        or len(state.cleared_blocks) != cleared_before
    )
    return state, events


# --- per network ---------------------------------------------------------------------------------


def _bucket(obs: Observation, end: datetime, th: Thresholds) -> Bucket:
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


def _fold(net: NetworkState, obs: Observation, now: datetime, th: Thresholds) -> bool:
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
        b = _bucket(obs, end, th)
        return net.buckets.get(start) != b and _put(net, b)
    cut = end if end <= now else now
    whole = _bucket(obs, end, th)
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
        return _put(net, _cut(whole, cut))
    valid, signs, confirmed = whole.valid - seen.valid, whole.signs - seen.signs, whole.confirmed - seen.confirmed
    sightings[start] = Sighting(end, whole.valid, whole.signs, whole.confirmed, max(now, seen.at))
    if not (valid or signs or confirmed):
        _fill_details(net, whole)
        return False
    if valid < 0 or signs < 0 or confirmed < 0 or valid < signs:
        _drop(net, start, end)  # OONI revised the bucket: its pieces give way to the new whole
        return _put(net, _cut(whole, cut))
    evidence = whole.evidence if signs else ()
    if seen.at < cut:
        return _put(net, Bucket(seen.at, cut, valid, signs, confirmed, whole.method, evidence))
    # late data of a bucket last seen after its end: it joins the bucket's newest piece
    last = _newest_piece(net, start, end)
    if last is None:
        return _put(net, Bucket(start, cut, valid, signs, confirmed, whole.method, evidence))
    return _put(net, Bucket(
        last.start, last.end, last.valid + valid, last.signs + signs, last.confirmed + confirmed,
        whole.method or last.method, evidence or last.evidence,
    ))


def _cut(b: Bucket, end: datetime) -> Bucket:
    """The bucket ending at `end` (a filling bucket is stored up to now); cheaper than `_replace`."""
    return b if b.end == end else Bucket(b.start, end, b.valid, b.signs, b.confirmed, b.method, b.evidence)


def _newest_piece(net: NetworkState, start: datetime, end: datetime) -> Bucket | None:
    """The newest stored bucket starting within [start, end)."""
    for b in reversed(net.buckets.values()):
        if start <= b.start < end:
            return b
        if b.start < start:
            return None
    return None


def _fill_details(net: NetworkState, whole: Bucket) -> None:
    """Same counts, but the method or evidence came only now (the source had no request left): the
    bucket's newest anomalous piece gets what it lacks."""
    if not whole.signs or not (whole.method or whole.evidence):
        return
    last = _newest_piece(net, whole.start, whole.end)
    if last is None or not last.signs or (last.method and last.evidence):
        return
    net.buckets[last.start] = last._replace(method=last.method or whole.method, evidence=last.evidence or whole.evidence)


def _drop(net: NetworkState, start: datetime, end: datetime) -> None:
    """Forget the stored buckets that start within [start, end)."""
    kept = [b for b in net.buckets.values() if not start <= b.start < end]
    net.buckets = {b.start: b for b in kept}
    net.valid_total = sum(b.valid for b in kept)
    net.signs_total = sum(b.signs for b in kept)
    net.expires = kept[0].end if kept else None


def _put(net: NetworkState, b: Bucket) -> bool:
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


def _prune(net: NetworkState, cutoff: datetime) -> bool:
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
            (net.pruned_after if after else net.pruned).add(first.valid, first.signs, _methods_of(first))
    net.expires = None
    return True


def _methods_of(b: Bucket) -> dict[str, int]:
    return {b.method: b.signs} if b.signs and b.method else {}


def _anomalous(b: Bucket, th: Thresholds) -> bool:
    return b.signs > 0 and b.signs >= th.block_ratio * b.valid


def _clean(b: Bucket, th: Thresholds) -> bool:
    return b.valid > 0 and b.signs <= th.clear_ratio * b.valid


def _try_block(net: NetworkState, now: datetime, th: Thresholds) -> bool:
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
    first = next((b.start for b in net.buckets.values() if b.start >= oldest and _anomalous(b, th)), oldest)
    net.status, net.since = BLOCKED, first
    net.evidence, net.method, net.methods = (), None, {}
    net.confirmed = net.intermittent = False
    net.last_anomalous = None
    net.pruned, net.pruned_after = Tally(), Tally()
    _follow_block(net, now, th)
    return True


def _shows_block(b: Bucket, previous_anomalous: bool, th: Thresholds) -> bool:
    """The block showing itself in a bucket: mostly anomalous with a few anomalies, or right after
    another mostly anomalous bucket. A lone stray anomaly (1 of 1) does not."""
    return _anomalous(b, th) and (b.signs >= th.burst_anomalies or previous_anomalous)


def _follow_block(net: NetworkState, now: datetime, th: Thresholds) -> None:
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
        if _shows_block(b, previous, th):
            if shown and ok_valid >= th.intermittent_min_ok and ok_to - ok_from >= th.intermittent_min_gap:
                net.intermittent = True  # it came back after a real OK stretch
            shown = True
            ok_valid, ok_from, ok_to = 0, None, None
            if net.last_anomalous is None or b.end > net.last_anomalous:
                net.last_anomalous = b.end
            upto = (valid, signs, dict(methods))
            evidence[:0] = b.evidence  # newest first
        elif _clean(b, th):
            ok_valid += b.valid
            ok_from = ok_from or b.start
            ok_to = b.end
        elif _anomalous(b, th):
            fallback[:0] = b.evidence
        previous = _anomalous(b, th)
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
        net.method = _argmax(block_methods)
    if evidence or fallback:
        # a filling day's pieces carry the same uids again and again: each once
        net.evidence = tuple(dict.fromkeys(evidence or fallback))[: th.evidence_per_network]


def _try_clear(net: NetworkState, now: datetime, th: Thresholds) -> NetworkBlock | None:
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
        if _shows_block(b, previous, th):
            return None  # the block showed itself inside the window: not over
        previous = _anomalous(b, th)
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


# --- per (country, platform) ---------------------------------------------------------------------


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
            method=_common_method([(b.methods, b.method, b.anomalies) for b in blocks]),
            since=since,
            anomalies=sum(b.anomalies for b in blocks),
            measurements=sum(b.measurements for b in blocks),
            confirmed=any(b.confirmed for b in blocks),
            intermittent=intermittent_before or any(b.intermittent for b in blocks),
            evidence=tuple(dict.fromkeys(uid for b in blocks for uid in b.evidence)),
            duration=max(timedelta(0), last - since),
            ended=last,
        )
    return Event(
        kind="blocked" if not before else "changed",
        country=state.country,
        platform=state.platform,
        time=now,
        asns=after,
        added=added,
        cleared=cleared,
        method=state.method,
        since=state.blocked_since,
        anomalies=state.anomalies,
        measurements=state.measurements,
        confirmed=state.confirmed,
        intermittent=state.intermittent,
        evidence=state.evidence,
    )


def _common_method(parts: Iterable[tuple[dict[str, int], str | None, int]]) -> str | None:
    """The method behind most anomalies over these (methods, method, anomalies) parts (None where the
    data names none)."""
    totals: dict[str, int] = {}
    for methods, method, anomalies in parts:
        if methods:
            for name, count in methods.items():
                totals[name] = totals.get(name, 0) + count
        elif method:
            totals[method] = totals.get(method, 0) + max(1, anomalies)
    return _argmax(totals) if totals else None


def _argmax(counts: dict[str, int]) -> str:
    # ties go to the order of METHODS, so the answer never depends on dict order
    order = {m: i for i, m in enumerate(METHODS)}
    return max(counts, key=lambda m: (counts[m], -order.get(m, len(order))))


# --- time as JSON ---------------------------------------------------------------------------------


def _iso(dt: datetime | None, seconds: bool = False) -> str | None:
    """UTC ISO 8601 with a Z, e.g. 2022-09-14T12:00:00Z (microseconds only when there are some)."""
    if dt is None:
        return None
    dt = dt.astimezone(timezone.utc)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond and not seconds:
        text += f".{dt.microsecond:06d}"
    return text + "Z"


def _parse(text: str | None) -> datetime | None:
    if text is None:
        return None
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
