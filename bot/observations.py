"""What a measurement source tells the detector: counts per country, platform, network and time bucket.

Sources (bot/sources/*) produce these; the detector (bot/detector.py) consumes them. Nothing
else flows between the two, so a second source only has to produce Observations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

METHODS = ("dns", "tcp", "tls", "http")


@dataclass(frozen=True)
class Observation:
    """Measurement counts for one platform on one network (ASN) of one country over [start, end).

    Counts partition `measurements` the way OONI's aggregation does:
    failures (the probe failed), then confirmed (a known block page), then anomalies, then ok.
    A source may re-send a bucket while it is still filling (e.g. today's counts), always with
    the bucket's whole counts so far. The detector takes the first sighting of a filling bucket as
    one bucket [start, now), the growth of each later sighting of the same (country, platform, asn,
    start) as a new piece [previous sighting, now), and counts that went down as the source's
    revision, which replaces that bucket. So a source never re-sends a bucket with only part of its
    counts: a drop it did not mean would be taken for a revision.
    """

    country: str  # ISO 3166-1 alpha-2, upper case
    platform: str  # a catalog platform name, e.g. "tiktok"
    asn: int
    start: datetime  # UTC, aware
    end: datetime  # UTC, aware, exclusive
    measurements: int
    anomalies: int
    confirmed: int = 0
    failures: int = 0
    method: str | None = None  # one of METHODS where the data shows it
    evidence: tuple[str, ...] = field(default=())  # links to the evidence (the source builds them: OONI Explorer pages of anomalous measurements)

    @property
    def valid(self) -> int:
        """Measurements that say something about reachability (the probe did not fail)."""
        return self.measurements - self.failures

    @property
    def blocked_signs(self) -> int:
        return self.anomalies + self.confirmed
