"""What the detector remembers between polls, and its stored (JSON) form.

`BlockState` per (country, platform) holds one `NetworkState` per ASN; each keeps its recent
`Bucket`s of counts, the `Sighting`s of source buckets still filling, and, while blocked, the
block's numbers (older pruned buckets summed in `Tally`s). `NetworkBlock` is one network's block
as it stood when it cleared. `to_dict`/`from_dict`/`to_json` are the stored form (`storage/states.py`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

from bot.detection.event import Change
from bot.detection.isotime import iso, parse_iso
from bot.detection.pattern import Pattern, pattern, zone_of
from bot.detection.thresholds import DEFAULT
from bot.observations import METHODS

OK = "ok"
BLOCKED = "blocked"
UNKNOWN = "unknown"

# 2: sightings of filling buckets, pruned block tallies, the period's cleared networks;
# 3: the evidence that raised a block, its hours (bites, clean), pending changes, the last alert.
# Older states load with those empty: a block goes on (its hours refilled from the data held).
STATE_VERSION = 3


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
        d.update(since=iso(self.since), ended=iso(self.ended), evidence=list(self.evidence))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetworkBlock:
        return cls(
            asn=int(d["asn"]), since=parse_iso(d.get("since")), ended=parse_iso(d.get("ended")),
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
    raised_valid: int = 0  # valid measurements of the stretch that raised this block: what clean data must match
    raised_span: int = 0  # ...and the seconds that stretch spanned
    bites: int = 0  # local hour-of-week bins (bit i = hour i from Monday 00:00) where this block showed itself
    clean_hours: int = 0  # ...and where its data was clean while it lasted
    last_clean: datetime | None = None  # end of the newest clean data of this block
    # running sums over `buckets`, kept by put/prune so a quiet network costs O(1) per poll
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
            "since": iso(self.since),
            # compact, as there are thousands: [start, seconds, valid, signs(, confirmed, method, uids)]
            "buckets": [_bucket_row(b) for b in self.buckets.values()],
            "evidence": list(self.evidence),
            "method": self.method,
            "methods": dict(self.methods),
            "anomalies": self.anomalies,
            "measurements": self.measurements,
            "confirmed": self.confirmed,
            "intermittent": self.intermittent,
            "last_anomalous": iso(self.last_anomalous),
        }
        # left out when empty: most of the thousands of networks have none
        if self.sightings:
            d["sightings"] = [_sighting_row(start, s) for start, s in self.sightings.items()]
        if self.pruned:
            d["pruned"] = self.pruned.to_row()
        if self.pruned_after:
            d["pruned_after"] = self.pruned_after.to_row()
        if self.status == BLOCKED:
            d.update(raised=[self.raised_valid, self.raised_span], bites=self.bites, clean_hours=self.clean_hours,
                     last_clean=iso(self.last_clean))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetworkState:
        buckets = {b.start: b for b in map(_bucket_from_row, d.get("buckets", ()))}
        return cls(
            asn=int(d["asn"]),
            status=d.get("status", UNKNOWN),
            since=parse_iso(d.get("since")),
            buckets=dict(sorted(buckets.items())),
            evidence=tuple(d.get("evidence", ())),
            method=d.get("method"),
            methods=dict(d.get("methods", {})),
            anomalies=int(d.get("anomalies", 0)),
            measurements=int(d.get("measurements", 0)),
            confirmed=bool(d.get("confirmed", False)),
            intermittent=bool(d.get("intermittent", False)),
            last_anomalous=parse_iso(d.get("last_anomalous")),
            sightings=dict(map(_sighting_from_row, d.get("sightings", ()))),
            pruned=Tally.from_row(d.get("pruned")),
            pruned_after=Tally.from_row(d.get("pruned_after")),
            raised_valid=int(d.get("raised", (0, 0))[0]),
            raised_span=int(d.get("raised", (0, 0))[1]),
            bites=int(d.get("bites", 0)),
            clean_hours=int(d.get("clean_hours", 0)),
            last_clean=parse_iso(d.get("last_clean")),
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
    pending: list[Change] = field(default_factory=list)  # changes not yet announced (see Thresholds.changed_every)
    pending_since: datetime | None = None  # when the oldest pending change was noticed
    last_alert: datetime | None = None  # when the latest event of this pair was raised
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
        return common_method([(n.methods, n.method, n.anomalies) for n in self._blocked_networks()])

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

    @property
    def pattern(self) -> Pattern | None:
        """The rhythm of an intermittent block, over its blocked networks (None when not intermittent)."""
        nets = self._blocked_networks()
        if not self.intermittent or not nets:
            return None
        bites = clean = 0
        for net in nets:
            bites, clean = bites | net.bites, clean | net.clean_hours
        if not bites:
            return None
        blocked = [n.last_anomalous for n in nets if n.last_anomalous]
        cleaned = [n.last_clean for n in nets if n.last_clean]
        return pattern(zone_of(self.country), bites, clean, DEFAULT.continuous_max_gap,
                       max(blocked, default=None), max(cleaned, default=None))

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
            "blocked_since": iso(self.blocked_since),
            "intermittent": self.intermittent,
            "last_data": iso(self.last_data),
            "networks": {str(asn): net.to_dict() for asn, net in sorted(self.networks.items())} if networks else 0,
            "cleared_blocks": [b.to_dict() for b in self.cleared_blocks],
            "pending": [c.to_dict() for c in self.pending],
            "pending_since": iso(self.pending_since),
            "last_alert": iso(self.last_alert),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BlockState:
        return cls(
            country=d["country"],
            platform=d["platform"],
            networks={int(asn): NetworkState.from_dict(n) for asn, n in d.get("networks", {}).items()},
            blocked_since=parse_iso(d.get("blocked_since")),
            intermittent=bool(d.get("intermittent", False)),
            last_data=parse_iso(d.get("last_data")),
            cleared_blocks=[NetworkBlock.from_dict(b) for b in d.get("cleared_blocks", ())],
            pending=[Change.from_dict(c) for c in d.get("pending", ())],
            pending_since=parse_iso(d.get("pending_since")),
            last_alert=parse_iso(d.get("last_alert")),
        )



def common_method(parts: Iterable[tuple[dict[str, int], str | None, int]]) -> str | None:
    """The method behind most anomalies over these (methods, method, anomalies) parts (None where the
    data names none)."""
    totals: dict[str, int] = {}
    for methods, method, anomalies in parts:
        if methods:
            for name, count in methods.items():
                totals[name] = totals.get(name, 0) + count
        elif method:
            totals[method] = totals.get(method, 0) + max(1, anomalies)
    return argmax(totals) if totals else None


def argmax(counts: dict[str, int]) -> str:
    # ties go to the order of METHODS, so the answer never depends on dict order
    order = {m: i for i, m in enumerate(METHODS)}
    return max(counts, key=lambda m: (counts[m], -order.get(m, len(order))))
