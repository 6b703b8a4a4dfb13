"""What OONI says beyond the counts, voted once for the live poll and the history alike: a few
evidence links and fastpath's method per key from the anomalous-measurement listing, and the
analysis pipeline's likeliest blocked layer per key."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from bot.sources.ooni.api import AnomalousRow, loni_method
from bot.sources.ooni.explorer import measurement_link

EVIDENCE_PER_BUCKET = 5  # links kept per platform/network/bucket: an alert lists a few

K = TypeVar("K", bound=Hashable)


@dataclass
class Details:
    """What we learned beyond the counts for one (platform, asn, bucket start)."""

    evidence: tuple[str, ...] = ()  # OONI Explorer links, newest first
    fallback: str | None = None  # method from fastpath's blocking_type
    method: str | None = None  # method from the analysis pipeline
    evidence_at: datetime | None = None
    method_at: datetime | None = None


def gather_evidence(rows: Iterable[AnomalousRow], key: Callable[[AnomalousRow], K]) -> dict[K, Details]:
    """Per key: the first few rows' links (rows come newest first) and the majority of fastpath's methods."""
    found: dict[K, Details] = {}
    votes: dict[K, dict[str, int]] = {}
    for row in rows:
        k = key(row)
        d = found.setdefault(k, Details())
        if len(d.evidence) < EVIDENCE_PER_BUCKET:
            d.evidence += (measurement_link(row.uid),)
        if row.method:
            v = votes.setdefault(k, {})
            v[row.method] = v.get(row.method, 0) + 1
    for k, v in votes.items():
        found[k].fallback = max(sorted(v), key=lambda m: v[m])  # ties: alphabetical, so runs agree
    return found


def best_methods(entries: Iterable[dict], key: Callable[[dict], K | None]) -> dict[K, str]:
    """Per key: the layer the analysis pipeline finds most likely blocked; entries whose key is None are skipped."""
    best: dict[K, tuple[str, float]] = {}
    for entry in entries:
        k = key(entry)
        found = loni_method(entry.get("loni"))
        if k is not None and found and found[1] > best.get(k, ("", 0.0))[1]:
            best[k] = found
    return {k: method for k, (method, _) in best.items()}
