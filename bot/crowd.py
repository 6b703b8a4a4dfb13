"""Crowd reports → crowd signals, and the throttle in front of them. Pure: no database, no clock.

The rules, in the order they apply:
- People, not reports: each reporter (a pseudonym) counts once per country and platform, by their
  first report in the window (Downdetector counts the first report per user per service too).
- A signal needs `min_reporters` (SIGNAL_MIN_REPORTERS) distinct people within `window`
  (SIGNAL_WINDOW). Agreement that is harder to fake brings it sooner: each further network the
  reporters are on adds `network_weight`, and a volume well above that pair's usual level adds
  `volume_weight` (only once the pair has a history to be above). Never with fewer than
  MIN_PEOPLE (2) people: one person never makes a signal.
- New accounts arrive at a human pace, or they are a burst: a reporter the bot has no earlier
  report from ("fresh") counts as a person only while the pair's allowance of fresh reporters lasts
  — `fresh_burst` (3) at once, then one more every `fresh_every` (2) seconds (a token bucket per pair,
  `admit_fresh`). The rest are "held": stored, shown to the admins as a burst ("100 new accounts in
  1 s, 97 too fast to be people"), never counted as people, and a pair with held reporters in its
  window gets no volume bonus (volume is exactly what a burst fakes). People typing a command seconds
  apart all count, so SIGNAL_MIN_REPORTERS new people still make a signal, on a thin network too;
  100 scripted accounts in a second count as 3.
- A reporter's second report for the same pair within the window is a duplicate (it counts once),
  and more than `burst_limit` reports in `burst_period` from one reporter are refused: both get a
  polite reply and store nothing.

A pair's reports in a window come down to a `Tally` (people, and what and where they reported);
`judge` weighs a tally. The database builds tallies with SQL over an index (storage/reports.py);
`tally` builds the same from Report objects, and both meet in `judge`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bot import catalog

SYMPTOMS = ("blocked", "down", "slow")  # most telling first: ties in a signal go to the earlier
MIN_PEOPLE = 2  # whatever the weights, a signal takes at least two different people
HOUR = 3600
DAY = 86400
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
    fresh_burst: int = 3  # new reporters a pair may gain at once …
    fresh_every: float = 2.0  # … and one more every this many seconds (a person takes longer to type /report)

    @classmethod
    def from_settings(cls, settings) -> "Rules":
        return cls(min_reporters=max(MIN_PEOPLE, int(settings.signal_min_reporters)), window=int(settings.signal_window))

    def best_score(self, reports: int) -> float:
        """The most `reports` reports could ever weigh (to skip pairs that cannot make a signal)."""
        return reports + self.network_weight * max(reports - 1, 0) + self.volume_weight


@dataclass(frozen=True)
class Report:
    reporter: bytes  # the keyed pseudonym, never a Telegram id
    country: str
    platform: str
    symptom: str
    at: int  # Unix seconds
    asn: int | None = None
    note: str | None = None
    fresh: bool = False  # the reporter had no earlier report stored
    held: bool = False  # fresh, and past the pair's allowance of fresh reporters: a burst, not a person


@dataclass(frozen=True)
class Tally:
    """What one pair's reports in a window come to — counts only, nobody in it."""

    country: str
    platform: str
    reporters: int  # distinct people
    symptoms: tuple[tuple[str, int], ...]  # (symptom, people)
    networks: tuple[tuple[int | None, int], ...]  # (asn, people); None = network not said
    first_at: int
    last_at: int
    fresh: int = 0  # new accounts among all reporters in the window, held ones included
    held: int = 0  # new accounts that came too fast to count as people
    fresh_first: int | None = None
    fresh_last: int | None = None


@dataclass(frozen=True)
class Assessment:
    """How the reports of one (country, platform) stand in the window."""

    country: str
    platform: str
    reporters: int  # distinct people
    symptoms: tuple[tuple[str, int], ...]  # (symptom, people), most reported first
    networks: tuple[tuple[int | None, str | None, int], ...]  # (asn, name, people), most first; asn None last
    first_at: int
    last_at: int
    usual: float  # the pair's usual number of reporters per window
    above_usual: bool
    score: float
    needed: int
    burst_accounts: int = 0  # new accounts in the window, when some came too fast to be people (else 0)
    burst_held: int = 0  # of those, how many were not counted
    burst_seconds: int = 0  # from the first new account to the last

    @property
    def symptom(self) -> str:
        return self.symptoms[0][0]

    @property
    def is_signal(self) -> bool:
        return self.reporters >= MIN_PEOPLE and self.score >= self.needed

    @property
    def worth_review(self) -> bool:
        """A signal, or a burst of new accounts as large as a signal: admins are told either way, and the
        burst is shown as a burst, never as people."""
        return self.is_signal or self.burst_accounts >= self.needed

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


def tally(reports: Iterable[Report], *, now: int, window: int) -> Tally | None:
    """The tally of the first pair's reports in the window ending `now` (others ignored); None if none."""
    reports = list(reports)
    if not reports:
        return None
    country, platform = reports[0].country, reports[0].platform
    in_window = [r for r in reports if r.country == country and r.platform == platform and now - window < r.at <= now]
    people = first_per_reporter(r for r in in_window if not r.held)
    if not people:
        return None
    fresh = first_per_reporter(r for r in in_window if r.fresh)
    return Tally(
        country, platform, len(people),
        tuple(Counter(r.symptom for r in people).items()),
        tuple(Counter(r.asn for r in people).items()),
        people[0].at, people[-1].at,
        fresh=len(fresh), held=len({r.reporter for r in in_window if r.held}),
        fresh_first=fresh[0].at if fresh else None, fresh_last=fresh[-1].at if fresh else None,
    )


def admit_fresh(tokens: float | None, last_at: int | None, now: int, rules: Rules) -> tuple[bool, float]:
    """Whether a pair's new fresh reporter counts as a person, and the pair's allowance left after it.

    A token bucket: `fresh_burst` tokens when full (a pair never seen starts full), one more every
    `fresh_every` seconds; a fresh reporter takes one, or is held when none is left."""
    if tokens is None or last_at is None:
        tokens = float(rules.fresh_burst)
    else:
        tokens = min(float(rules.fresh_burst), tokens + max(0, now - last_at) / rules.fresh_every)
    if tokens >= 1:
        return True, tokens - 1
    return False, tokens


def judge(tally: Tally, *, rules: Rules, usual: float = 0.0) -> Assessment:
    """Weigh a tally: people, plus the bonus for networks and for volume above the usual level."""
    known = sum(1 for asn, _ in tally.networks if asn is not None)
    # the bonus never exceeds what the extra people could bring: 2 people on 2 networks is not 3 people
    network_bonus = rules.network_weight * min(max(known - 1, 0), tally.reporters - 1)
    # a burst is volume: with held accounts in the window, volume above the usual level proves nothing
    above_usual = tally.held == 0 and _above_usual(tally.reporters, usual, rules.volume_factor)
    return Assessment(
        country=tally.country,
        platform=tally.platform,
        reporters=tally.reporters,
        symptoms=tuple(sorted(tally.symptoms, key=lambda kv: (-kv[1], SYMPTOMS.index(kv[0])))),
        networks=tuple(
            (asn, catalog.network_name(asn) if asn is not None else None, people)
            for asn, people in sorted(tally.networks, key=lambda kv: (kv[0] is None, -kv[1], kv[0] or 0))
        ),
        first_at=tally.first_at,
        last_at=tally.last_at,
        usual=usual,
        above_usual=above_usual,
        score=tally.reporters + network_bonus + (rules.volume_weight if above_usual else 0.0),
        needed=rules.min_reporters,
        burst_accounts=tally.fresh if tally.held else 0,
        burst_held=tally.held,
        burst_seconds=(tally.fresh_last - tally.fresh_first) if tally.held and tally.fresh_first is not None else 0,
    )


def assess(reports: Iterable[Report], *, now: int, rules: Rules, usual: float = 0.0) -> Assessment | None:
    """The assessment of one pair from its reports; None when none is in the window."""
    counted = tally(reports, now=now, window=rules.window)
    return judge(counted, rules=rules, usual=usual) if counted is not None else None


def could_signal(tally: Tally, rules: Rules) -> bool:
    """Whether the tally makes a signal with the volume bonus at its best (its usual level then decides)."""
    if tally.held and tally.fresh >= rules.min_reporters:
        return True  # a burst as large as a signal: the admins are told
    if tally.reporters < MIN_PEOPLE:
        return False
    return judge(tally, rules=rules).score + rules.volume_weight >= rules.min_reporters


def find_signals(
    tallies: Iterable[Tally], *, rules: Rules, usual: Mapping[tuple[str, str], float] | None = None
) -> list[Assessment]:
    """The tallies that make a signal, strongest first."""
    found = []
    for counted in tallies:
        assessment = judge(counted, rules=rules, usual=(usual or {}).get((counted.country, counted.platform), 0.0))
        if assessment.worth_review:
            found.append(assessment)
    return sorted(found, key=lambda a: (-a.score, a.country, a.platform))


def usual_days(now: int, days: int = USUAL_DAYS) -> tuple[int, int]:
    """The days whose counts make a pair's usual level: the `days` whole days before today, as
    (first day's start, today's start) in Unix seconds."""
    today = now - now % DAY
    return today - days * DAY, today


def worth_a_look(volumes: Iterable[tuple[str, str, int]], rules: Rules) -> list[tuple[str, str]]:
    """The pairs whose report count in the window (an upper bound of their people) could make a
    signal at best; the others need no closer look."""
    return [
        (country, platform) for country, platform, reports in volumes
        if reports >= MIN_PEOPLE and rules.best_score(reports) >= rules.min_reporters
    ]


def usual_level(reports_before: int, *, window: int, days: int = USUAL_DAYS) -> float:
    """A pair's mean number of reports per window, from how many it had in the `days` before the window.

    Those counts survive the retention purge, so the usual level is known long after the reports
    are gone. Quiet stretches count as zero: a pair nobody reports has a usual level near 0."""
    return reports_before / (days * 86400 / window)


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
