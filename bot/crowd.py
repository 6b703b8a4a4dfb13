"""Crowd reports → crowd signals, and the throttle in front of them. Pure: no database, no clock.

The rules, in the order they apply:
- People, not reports: each reporter (a pseudonym) counts once per country and platform, by their
  first report in the window (Downdetector counts the first report per user per service too).
- A signal needs `min_reporters` (SIGNAL_MIN_REPORTERS) distinct people within `window`
  (SIGNAL_WINDOW). Agreement that is harder to fake brings it sooner: each further network the
  reporters are on adds `network_weight`, and a volume well above that pair's usual level adds
  `volume_weight` (only once the pair has a history to be above). Never with fewer than
  MIN_PEOPLE (2) people: one person never makes a signal.
- A reporter's second report for the same pair within the window is a duplicate (it counts once),
  and more than `burst_limit` reports in `burst_period` from one reporter are refused: both get a
  polite reply and store nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

SYMPTOMS = ("blocked", "down", "slow")  # most telling first: ties in a signal go to the earlier
MIN_PEOPLE = 2  # whatever the weights, a signal takes at least two different people
HOUR = 3600
USUAL_DAYS = 28  # the "usual level" is the mean over this many days before the window


@dataclass(frozen=True)
class Rules:
    min_reporters: int = 5
    window: int = 7200  # seconds
    network_weight: float = 0.5  # per network beyond the first
    volume_weight: float = 1.0  # when the window's reporters are well above the pair's usual level
    volume_factor: float = 3.0  # "well above": at least this many times the usual level
    burst_limit: int = 5  # reports one reporter may make …
    burst_period: int = 3600  # … within this many seconds

    @classmethod
    def from_settings(cls, settings) -> "Rules":
        return cls(min_reporters=max(MIN_PEOPLE, int(settings.signal_min_reporters)), window=int(settings.signal_window))


@dataclass(frozen=True)
class Report:
    reporter: bytes  # the keyed pseudonym, never a Telegram id
    country: str
    platform: str
    symptom: str
    at: int  # Unix seconds
    asn: int | None = None
    network: str | None = None  # the network's name when known
    note: str | None = None


@dataclass(frozen=True)
class Assessment:
    """How the reports of one (country, platform) stand in the window ending `now`."""

    country: str
    platform: str
    reporters: int  # distinct people
    symptoms: tuple[tuple[str, int], ...]  # (symptom, people), most reported first
    networks: tuple[tuple[int | None, str | None, int], ...]  # (asn, name, people); asn None = network not said
    first_at: int
    last_at: int
    usual: float  # the pair's usual number of reporters per window
    above_usual: bool
    score: float
    needed: int

    @property
    def symptom(self) -> str:
        return self.symptoms[0][0]

    @property
    def is_signal(self) -> bool:
        return self.reporters >= MIN_PEOPLE and self.score >= self.needed

    @property
    def known_networks(self) -> int:
        return sum(1 for asn, _, _ in self.networks if asn is not None)


def _above_usual(people: int, usual: float, factor: float) -> bool:
    # no history (usual 0): nothing to be above, so no bonus — a new pair needs the full count
    return usual > 0 and people >= MIN_PEOPLE and people >= factor * usual


def first_per_reporter(reports: Iterable[Report]) -> list[Report]:
    """Each reporter's earliest report, oldest first."""
    first: dict[bytes, Report] = {}
    for report in reports:
        seen = first.get(report.reporter)
        if seen is None or report.at < seen.at:
            first[report.reporter] = report
    return sorted(first.values(), key=lambda r: r.at)


def assess(reports: Sequence[Report], *, now: int, rules: Rules, usual: float = 0.0) -> Assessment | None:
    """The assessment of one pair from its reports (others and those outside the window are ignored);
    None when no report is in the window."""
    if not reports:
        return None
    country, platform = reports[0].country, reports[0].platform
    start = now - rules.window
    people = first_per_reporter(
        r for r in reports if r.country == country and r.platform == platform and start < r.at <= now
    )
    if not people:
        return None
    symptoms = Counter(r.symptom for r in people)
    networks: Counter = Counter((r.asn, r.network if r.asn is not None else None) for r in people)
    known = sum(1 for asn, _ in networks if asn is not None)
    # the bonus never exceeds what the extra people could bring: 2 people on 2 networks is not 3 people
    network_bonus = rules.network_weight * min(max(known - 1, 0), len(people) - 1)
    above_usual = _above_usual(len(people), usual, rules.volume_factor)
    volume_bonus = rules.volume_weight if above_usual else 0.0
    return Assessment(
        country=country,
        platform=platform,
        reporters=len(people),
        symptoms=tuple(sorted(symptoms.items(), key=lambda kv: (-kv[1], SYMPTOMS.index(kv[0])))),
        networks=tuple(
            (asn, name, count)
            for (asn, name), count in sorted(networks.items(), key=lambda kv: (kv[0][0] is None, -kv[1], kv[0][0] or 0))
        ),
        first_at=people[0].at,
        last_at=people[-1].at,
        usual=usual,
        above_usual=above_usual,
        score=len(people) + network_bonus + volume_bonus,
        needed=rules.min_reporters,
    )


def find_signals(
    reports: Iterable[Report], *, now: int, rules: Rules, usual: Mapping[tuple[str, str], float] | None = None
) -> list[Assessment]:
    """Every pair whose reports in the window make a signal, strongest first."""
    by_pair: dict[tuple[str, str], list[Report]] = {}
    for report in reports:
        by_pair.setdefault((report.country, report.platform), []).append(report)
    found = []
    for pair, pair_reports in by_pair.items():
        assessment = assess(pair_reports, now=now, rules=rules, usual=(usual or {}).get(pair, 0.0))
        if assessment is not None and assessment.is_signal:
            found.append(assessment)
    return sorted(found, key=lambda a: (-a.score, a.country, a.platform))


def usual_level(hourly: Mapping[int, int], *, now: int, window: int, days: int = USUAL_DAYS) -> float:
    """The pair's mean number of reports per window over `days` before the current window.

    `hourly` maps an hour (Unix seconds of its start) to that hour's report count; the counts
    survive the retention purge, so the usual level is known long after the reports are gone.
    Hours with no reports count as zero: a quiet pair has a usual level near 0."""
    end = now - window
    start = end - days * 86400
    total = sum(count for hour, count in hourly.items() if start <= hour < end)
    return total / (days * 86400 / window)


# -- the throttle ------------------------------------------------------------------------------

ACCEPT, DUPLICATE, TOO_MANY = "accept", "duplicate", "too_many"


def throttle(recent: Iterable[Report], *, country: str, platform: str, now: int, rules: Rules) -> str:
    """What to do with a reporter's new report, given their own recent reports.

    DUPLICATE: they already reported this pair within the window (it counts once);
    TOO_MANY: more than `burst_limit` reports within `burst_period`; else ACCEPT."""
    recent = list(recent)
    if any(r.country == country and r.platform == platform and now - r.at < rules.window for r in recent):
        return DUPLICATE
    if sum(1 for r in recent if now - r.at < rules.burst_period) >= rules.burst_limit:
        return TOO_MANY
    return ACCEPT


def lookback(rules: Rules) -> int:
    """How far back a reporter's own reports matter to the throttle."""
    return max(rules.window, rules.burst_period)

