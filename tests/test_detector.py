"""The block/unblock detector: thin data and real background noise stay quiet, real blocks are found
on the first poll that shows them, spread and end with hysteresis, and survive a restart."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from bot.detection.event import Change
from bot.detector import DEFAULT, BlockState, Event, Thresholds, detect
from bot.observations import Observation

UTC = timezone.utc
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
T0 = datetime(2022, 9, 10, tzinfo=UTC)  # days before the Azerbaijan TikTok block of 13–15 Sep 2022
FASTPATH = Path(__file__).parent / "fixtures" / "ooni" / "fastpath_rows_2024-01-01.jsonl"

AZERCELL, BAKINTERNET, DELTA, AZERONLINE = 29049, 41997, 31721, 28787


# for tests of how buckets are kept, apart from the corroboration rule: one run's word is enough
ONE_RUN = Thresholds(corroboration_gap=timedelta(0))


def detect1(state, observations, now, thresholds=ONE_RUN, **kw):
    """detect() with ONE_RUN thresholds: a single bucket's block, for tests of what happens next."""
    return detect(state, observations, now, thresholds, **kw)


def h(n: float) -> datetime:
    return T0 + n * HOUR


def obs(asn, start, valid, anomalies=0, *, hours=1, confirmed=0, failures=0, method=None, uids=None,
        country="AZ", platform="tiktok") -> Observation:
    if uids is None:
        uids = tuple(f"{start:%Y%m%d%H}_{asn}_{i}" for i in range(anomalies + confirmed))
    return Observation(
        country=country, platform=platform, asn=asn, start=start, end=start + hours * HOUR,
        measurements=valid + failures, anomalies=anomalies, confirmed=confirmed, failures=failures,
        method=method, evidence=tuple(uids),
    )


def replay(profile, first_hour, last_hour, state=None, thresholds=DEFAULT, resend=True):
    """Poll hourly: at now = h(k+1) the source returns bucket k (and bucket k-1 again, still filling).

    `profile(asn_list) -> {asn: f(hour) -> (valid, anomalies, method) | None}`; returns state and
    [(now, event)].
    """
    events = []
    for k in range(first_hour, last_hour):
        observations = []
        for hour in ([k - 1, k] if resend else [k]):
            for asn, f in profile.items():
                counts = f(hour)
                if counts:
                    valid, anomalies, method = counts
                    observations.append(obs(asn, h(hour), valid, anomalies, method=method))
        state, new = detect(state, observations, h(k + 1), thresholds, country="AZ", platform="tiktok")
        events.extend((h(k + 1), e) for e in new)
    return state, events


def quiet(hour):
    """A network's normal life: a probe run every 3 hours, 6 valid, a stray anomaly now and then."""
    if hour % 3:
        return None
    return (6, 1 if hour % 21 == 0 else 0, "dns")


def blocked_between(start, end, valid=12, anomalies=10, method="tls", every=2):
    """TLS interference like AS29049's in 2022: most measurements anomalous while it lasts."""

    def f(hour):
        if hour % every:
            return None
        if start <= hour < end:
            return (valid, anomalies, method)
        return (valid, 0, "dns")

    return f


# --- must NOT raise -----------------------------------------------------------------------------


def test_a_stray_anomaly_raises_nothing():
    state, events = replay({AZERCELL: quiet, BAKINTERNET: quiet}, 0, 96)
    assert events == []
    assert state.networks[AZERCELL].status == "ok"
    assert state.blocked_asns == ()


def test_a_single_fully_anomalous_bucket_of_one_measurement_raises_nothing():
    state, events = detect(None, [obs(AZERCELL, h(0), 1, 1, method="tls")], h(1))
    assert events == [] and state.networks[AZERCELL].status == "unknown"


def test_a_day_with_two_measurements_raises_nothing_even_both_anomalous():
    day = obs(AZERCELL, T0, 2, 2, hours=24, method="tls")
    state, events = detect(None, [day], T0 + 20 * HOUR)
    assert events == []
    assert state.networks[AZERCELL].status == "unknown"  # too little data to say either way
    # the same day re-sent while it fills replaces the old counts, it does not add to them
    # (were they added, the fourth sending would make 8 of 8 anomalous: a block)
    for _ in range(3):
        state, events = detect(state, [day], T0 + 21 * HOUR)
        assert events == []
    assert state.networks[AZERCELL].status == "unknown"


def test_a_run_of_one_off_anomalies_across_networks_raises_nothing():
    # each hour a different network of the country sees one anomaly among a few OK measurements
    asns = list(range(64500, 64520))
    profile = {asn: (lambda i: (lambda hour: (3, 1 if hour % 20 == i else 0, "dns")))(i) for i, asn in enumerate(asns)}
    state, events = replay(profile, 0, 72)
    assert events == []
    assert all(net.status == "ok" for net in state.networks.values())


def fastpath_rows():
    return [json.loads(line) for line in FASTPATH.read_text().splitlines()]


def fastpath_observations(start: datetime, end: datetime, spread_hours: int | None = None, rows=None):
    """The real 2024-01-01 rows (or `rows` of them) as Observations per country/ASN/test/domain (as the
    aggregation counts).

    With `spread_hours`, row i goes to hour i % spread_hours after `start` (each group's one-offs
    then land in different buckets over the period)."""
    groups = defaultdict(lambda: [0, 0, 0, 0, [], defaultdict(int)])
    for i, row in enumerate(fastpath_rows() if rows is None else rows):
        bucket = start if spread_hours is None else start + (i % spread_hours) * HOUR
        platform = f"{row['test_name']}:{row['domain'] or ''}"
        g = groups[(row["probe_cc"], platform, int(row["probe_asn"]), bucket)]
        g[0] += 1
        if row["msm_failure"] == "t":
            g[1] += 1
        elif row["confirmed"] == "t":
            g[2] += 1
            g[4].append(row["measurement_uid"])
        elif row["anomaly"] == "t":
            g[3] += 1
            g[4].append(row["measurement_uid"])
            method = {"dns": "dns", "tcp_ip": "tcp", "http-failure": "http", "http-diff": "http"}.get(row["blocking_type"])
            if method:
                g[5][method] += 1
    by_pair = defaultdict(list)
    for (cc, platform, asn, bucket), (n, failures, confirmed, anomalies, uids, methods) in groups.items():
        size = (end - start) if spread_hours is None else HOUR
        by_pair[(cc, platform)].append(Observation(
            country=cc, platform=platform, asn=asn, start=bucket, end=bucket + size, measurements=n,
            anomalies=anomalies, confirmed=confirmed, failures=failures,
            method=max(methods, key=methods.get) if methods else None, evidence=tuple(uids),
        ))
    return by_pair


def test_fixture_is_the_real_background():
    rows = [json.loads(line) for line in FASTPATH.read_text().splitlines()]
    assert len(rows) == 1080
    assert sum(r["anomaly"] == "t" or r["confirmed"] == "t" for r in rows if r["msm_failure"] == "f") == 92


@pytest.mark.parametrize("grain", [HOUR, DAY])
def test_the_real_2024_01_01_background_raises_nothing(grain):
    start = datetime(2024, 1, 1, tzinfo=UTC)
    by_pair = fastpath_observations(start, start + grain)
    assert len(by_pair) > 300
    assert sum(o.blocked_signs for group in by_pair.values() for o in group) == 92
    for (cc, platform), observations in by_pair.items():
        state, events = detect(None, observations, start + grain)
        assert events == [], (cc, platform)
        # and the next polls, the same bucket re-sent, still nothing
        state, events = detect(state, observations, start + grain + HOUR)
        assert events == [], (cc, platform)


def background_rate(rows) -> float:
    """The anomaly rate of a network that is not blocked, as Thresholds.background is fitted."""
    valid = [r for r in rows if r["msm_failure"] == "f"]
    return sum(r["anomaly"] == "t" or r["confirmed"] == "t" for r in valid) / len(valid)


@pytest.mark.parametrize("fit_on", [0, 1])
def test_the_background_rate_fitted_on_one_half_of_the_rows_raises_nothing_on_the_other(fit_on):
    """Two-fold hold-out: the rate is fitted on alternate rows (even or odd lines), the detector with
    that rate (rounded up to a percent) and the default rate must stay quiet on the other half, which it
    never saw. Rates: even lines 51/438 = 11.6 %, odd lines 41/447 = 9.2 %, all 92/885 = 10.4 %."""
    rows = fastpath_rows()
    fitted_rows, held_out = rows[fit_on::2], rows[1 - fit_on :: 2]
    rate = background_rate(fitted_rows)
    assert round(rate, 3) == (0.116, 0.092)[fit_on]
    # the default sits between the two halves' fits: neither half alone would move it far
    assert 0.092 <= DEFAULT.background <= 0.116
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for th in (Thresholds(background=math.ceil(rate * 100) / 100), DEFAULT):
        for grain, spread in ((HOUR, None), (DAY, None), (48 * HOUR, 48)):
            by_pair = fastpath_observations(start, start + grain, spread, rows=held_out)
            assert sum(o.blocked_signs for group in by_pair.values() for o in group) == (41, 51)[fit_on]
            for (cc, platform), observations in by_pair.items():
                state = None
                for k in range(1, 49 if spread else 2):
                    now = start + (k * HOUR if spread else grain)
                    mine = [o for o in observations if o.start == now - HOUR] if spread else observations
                    state, events = detect(state, mine, now, th, country=cc, platform=platform)
                    assert events == [], (fit_on, th.background, cc, platform, now)


def test_the_real_background_spread_over_two_days_raises_nothing():
    start = datetime(2024, 1, 1, tzinfo=UTC)
    by_pair = fastpath_observations(start, start + 48 * HOUR, spread_hours=48)
    for (cc, platform), observations in by_pair.items():
        state = None
        for k in range(48):
            now = start + (k + 1) * HOUR
            state, events = detect(state, [o for o in observations if o.start == now - HOUR], now,
                                   country=cc, platform=platform)
            assert events == [], (cc, platform, now)


# --- a real block: appears, spreads, ends --------------------------------------------------------


def az_2022():
    """AS29049 blocked from hour 72 (13 Sep 00:00) to 120; AS41997 from 80 to 118; others quiet."""
    return {
        AZERCELL: blocked_between(72, 120),
        BAKINTERNET: blocked_between(80, 118, valid=8, anomalies=7, every=3),
        DELTA: quiet,
        AZERONLINE: quiet,
    }


def test_a_block_is_raised_on_the_first_poll_whose_data_shows_it():
    state, events = replay(az_2022(), 0, 80)
    assert [e.kind for _, e in events] == ["blocked"]
    when, event = events[0]
    # bucket 72 (the first anomalous one) is one probe run; the run of bucket 74, two hours later,
    # corroborates it and arrives in the poll at 75:00
    assert when == h(75)
    assert event.time == h(75)
    assert event.asns == (AZERCELL,) and event.added == (AZERCELL,)
    assert event.method == "tls"
    assert event.since == h(72)
    assert event.anomalies == 20 and event.measurements == 24  # the block's own data, not the OK before it
    assert event.confirmed is False and event.intermittent is False
    assert event.evidence == (f"{h(74):%Y%m%d%H}_{AZERCELL}_0", f"{h(74):%Y%m%d%H}_{AZERCELL}_1",
                              f"{h(74):%Y%m%d%H}_{AZERCELL}_2")
    assert state.blocked_since == h(72) and state.blocked_asns == (AZERCELL,)


def test_a_block_in_a_day_bucket_is_raised_on_the_first_poll_that_has_it():
    # a day bucket may be one probe run: it decides with a second network's day, or alone once big
    day = obs(AZERCELL, T0, 7, 6, hours=24, method="tls")
    state, events = detect(None, [obs(AZERCELL, T0 - DAY, 9, 0, hours=24)], T0 + 2 * HOUR)
    assert events == []
    state, events = detect(state, [obs(AZERCELL, T0 - DAY, 9, 0, hours=24), day], T0 + 14 * HOUR)
    assert events == []  # one day bucket of one network: one run's word
    state, events = detect(state, [day, obs(DELTA, T0, 6, 6, hours=24, method="tls")], T0 + 15 * HOUR)
    assert [e.kind for e in events] == ["blocked"] and events[0].asns == (AZERCELL, DELTA)
    assert events[0].since == T0 and events[0].anomalies == 12 and events[0].measurements == 13
    big = obs(BAKINTERNET, T0, DEFAULT.lone_run_valid, DEFAULT.lone_run_valid, hours=24, method="tls")
    state, events = detect(None, [big], T0 + 14 * HOUR)
    assert [e.kind for e in events] == ["blocked"] and events[0].asns == (BAKINTERNET,)


# --- a day bucket re-sent while it fills (the live source's UTC days) ----------------------------

QUARTER = timedelta(minutes=15)
D1 = T0 + DAY  # 11 Sep 2022


def runs_of(asn, first: datetime, last: datetime, *, every=timedelta(minutes=30), valid=2, blocked_from=None):
    """Probe runs of `valid` measurements on `asn` every `every` in [first, last): (time, asn, valid, anomalies)."""
    runs, t = [], first
    while t < last:
        runs.append((t, asn, valid, valid if blocked_from is not None and t >= blocked_from else 0))
        t += every
    return runs


def filling_days(runs, now: datetime, days=(0,)) -> list[Observation]:
    """What the live source sends at `now`: per network, each asked UTC day's counts of the runs before now
    (today's day = 0 still filling, yesterday = -1 final), with the day's method and a few uids."""
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    out = []
    for offset in days:
        day = today + offset * DAY
        per_asn = defaultdict(lambda: [0, 0])
        for t, asn, valid, anomalies in runs:
            if day <= t < min(now, day + DAY):
                per_asn[asn][0] += valid
                per_asn[asn][1] += anomalies
        for asn, (valid, anomalies) in sorted(per_asn.items()):
            uids = tuple(f"{day:%m%d}_{asn}_{i}" for i in range(min(anomalies, 3)))
            out.append(obs(asn, day, valid, anomalies, hours=24, method="tls" if anomalies else None, uids=uids))
    return out


def poll_every_quarter(runs, first: datetime, last: datetime, state=None, restart=False, thresholds=DEFAULT):
    """Poll like the live poller every 15 minutes (yesterday's final counts on the first poll of a day)."""
    events, now = [], first
    while now <= last:
        days = (-1, 0) if now - now.replace(hour=0, minute=0, second=0, microsecond=0) < QUARTER else (0,)
        if restart and state is not None:
            state = BlockState.from_dict(json.loads(json.dumps(state.to_dict())))
        state, new = detect(state, filling_days(runs, now, days), now, thresholds, country="AZ", platform="tiktok")
        events += [(now, e) for e in new]
        now += QUARTER
    return state, events


def test_a_block_inside_a_day_still_filling_is_raised_from_its_increments_not_diluted_by_the_morning():
    # a run of 2 every 30 min all day; from 06:00 both measurements anomalous. Re-sent whole every 15 min,
    # the day reads 6 anomalies of 30 at 07:15; its increments since 06:00 read 6 of 6.
    runs = runs_of(AZERCELL, D1, D1 + DAY, blocked_from=D1 + 6 * HOUR) + runs_of(DELTA, D1, D1 + DAY)
    state, events = poll_every_quarter(runs, D1 + QUARTER, D1 + 12 * HOUR)
    assert [e.kind for _, e in events] == ["blocked"]
    when, blocked = events[0]
    # the bar is passed by runs 06:00, 06:30 and 07:00 (6 of 6; 4 are too few); a second run two hours
    # after the first corroborates them: the 08:00 run, in the poll at 08:15
    assert DEFAULT.needed(4) > 4 and DEFAULT.needed(6) <= 6
    assert when == D1 + 8 * HOUR + QUARTER
    assert blocked.since == D1 + 6 * HOUR  # the first anomalous increment, not midnight
    assert (blocked.anomalies, blocked.measurements) == (10, 10)
    assert blocked.asns == (AZERCELL,) and blocked.method == "tls" and blocked.evidence
    # by 12:00 the block's numbers are its 12 runs from 06:00 (2 each), every piece once, not the morning
    assert state.blocked_asns == (AZERCELL,) and (state.anomalies, state.measurements) == (2 * 12, 2 * 12)


def test_evidence_and_method_of_a_re_sent_day_go_to_its_increment():
    runs = runs_of(AZERCELL, D1, D1 + DAY, blocked_from=D1 + 6 * HOUR)
    state, events = poll_every_quarter(runs, D1 + QUARTER, D1 + 9 * HOUR)
    [(_, blocked)] = events
    # the anomalies, their method and uids belong to the increments from 06:00, not to the OK morning
    assert blocked.since == D1 + 6 * HOUR and blocked.method == "tls"
    assert blocked.evidence == (f"{D1:%m%d}_{AZERCELL}_0", f"{D1:%m%d}_{AZERCELL}_1", f"{D1:%m%d}_{AZERCELL}_2")
    assert (state.anomalies, state.measurements) == (2 * 6, 2 * 6)  # runs 06:00..08:30, none of the morning's


def test_increments_survive_a_restart_at_every_poll():
    runs = runs_of(AZERCELL, D1 - DAY, D1 + DAY, blocked_from=D1 + 6 * HOUR) + runs_of(DELTA, D1 - DAY, D1 + DAY)
    kept, kept_events = poll_every_quarter(runs, D1 - 2 * HOUR, D1 + 10 * HOUR)
    restarted, restarted_events = poll_every_quarter(runs, D1 - 2 * HOUR, D1 + 10 * HOUR, restart=True)
    assert restarted_events == kept_events and [e.kind for _, e in kept_events] == ["blocked"]
    assert restarted.to_dict() == kept.to_dict()
    assert (restarted.anomalies, restarted.measurements) == (2 * 8, 2 * 8)  # runs 06:00..09:30, each once


def test_yesterdays_final_counts_re_sent_after_midnight_are_not_counted_twice():
    # polls up to 23:45 saw the day filling (72 OK runs, every 20 min); a run at 23:50, 3 of 3 anomalous,
    # is only in the final counts sent after midnight: a piece of its own [23:45, 24:00), counted once
    late = D1 + DAY - timedelta(minutes=10)
    runs = runs_of(DELTA, D1, D1 + DAY, every=timedelta(minutes=20)) + [(late, DELTA, 3, 3)]
    state, events = poll_every_quarter(runs, D1 + QUARTER, D1 + DAY, thresholds=ONE_RUN)  # the last: yesterday's final
    assert events == []  # 3 of 3 alone is too little data
    # a new process's source sends yesterday again, twice: counted twice it would be 6 of 6, a block
    for hour in (10, 11):
        state, events = detect(state, filling_days(runs, D1 + DAY + hour * HOUR, days=(-1,)), D1 + DAY + hour * HOUR, ONE_RUN)
        assert events == []
    # a new run, 3 of 3 anomalous, lands next to the late piece: together 6 of 6, since 23:45
    runs.append((D1 + DAY + 11 * HOUR, DELTA, 3, 3))
    now = D1 + DAY + 11 * HOUR + 2 * QUARTER
    state, events = detect(state, filling_days(runs, now), now, ONE_RUN)
    [blocked] = events
    assert blocked.kind == "blocked" and blocked.since == D1 + DAY - QUARTER
    assert (blocked.anomalies, blocked.measurements) == (6, 6)


def test_counts_that_shrink_replace_the_days_pieces_by_the_new_whole():
    runs = runs_of(DELTA, D1, D1 + DAY)
    state, events = poll_every_quarter(runs, D1 + QUARTER, D1 + 4 * HOUR, thresholds=ONE_RUN)
    assert events == []
    # OONI revised the day: 10 measurements, 1 anomalous, where we had 16 OK. Taken for growth it would be
    # refused (fewer), taken as a piece it would add; it replaces the day's pieces
    revised_at = D1 + 4 * HOUR + QUARTER
    state, events = detect(state, [obs(DELTA, D1, 10, 1, hours=24)], revised_at, ONE_RUN)
    assert events == []
    # and growth from the revised counts is an increment again: 6 more, all anomalous, since the revision
    state, events = detect(state, [obs(DELTA, D1, 16, 7, hours=24, method="tls")], revised_at + QUARTER, ONE_RUN)
    [blocked] = events
    assert blocked.since == revised_at and (blocked.anomalies, blocked.measurements) == (6, 6)


def test_spreading_to_a_second_network_is_a_change_and_the_end_an_unblock_with_its_duration():
    state, events = replay(az_2022(), 0, 240)
    kinds = [(e.kind, e.asns, e.added, e.cleared) for _, e in events]
    assert kinds == [
        ("blocked", (AZERCELL,), (AZERCELL,), ()),
        ("changed", (AZERCELL, BAKINTERNET), (BAKINTERNET,), ()),
        # AS41997 cleared first, within six hours of AS29049: that change goes out with the end, which
        # names the period's networks and clears both (watchers last heard of both as blocked)
        ("unblocked", (AZERCELL, BAKINTERNET), (), (AZERCELL, BAKINTERNET)),
    ]
    (t_blocked, _), (t_changed, changed), (t_unblocked, unblocked) = events
    # AS41997 probes every 3 h: bucket 81 is its first run in the block, noticed at 82:00 (AS29049's
    # block corroborates its one run); the change waits six hours after it, and after the blocked alert
    assert changed.changes == (Change(BAKINTERNET, "added", h(81)),)
    assert t_changed == h(82) + DEFAULT.changed_every and t_changed - t_blocked >= DEFAULT.changed_every
    assert changed.since == h(72)  # the block still started with AS29049
    assert changed.method == "tls"
    # AS29049's runs 72..86 and AS41997's 81, 84, 87
    assert changed.anomalies == 8 * 10 + 3 * 7 and changed.measurements == 8 * 12 + 3 * 8
    assert len(changed.evidence) == 6  # three per network
    # the end: the last anomalous data was bucket 118 (AS29049, ends 119:00); OK after that, from bucket 120:
    # cleared once that data is as strong as what raised the block (24 valid over 3 h), within 12 h
    assert unblocked.ended == h(119)
    assert unblocked.since == h(72)  # the whole block, not just its last network
    assert unblocked.duration == h(119) - h(72)
    assert h(120) + DEFAULT.clear_min_span <= t_unblocked <= h(120) + DEFAULT.clear_within
    assert unblocked.method == "tls" and unblocked.intermittent is False
    # every network blocked during the period, both cleared by this event
    assert unblocked.asns == (AZERCELL, BAKINTERNET) and unblocked.cleared == (AZERCELL, BAKINTERNET)
    # the numbers of the whole period: AS29049's 24 runs (72..118) and AS41997's 13 (81..117)
    assert (unblocked.anomalies, unblocked.measurements) == (24 * 10 + 13 * 7, 24 * 12 + 13 * 8)
    assert len(unblocked.evidence) == 6  # three per network
    assert state.blocked_asns == () and state.blocked_since is None and state.cleared_blocks == []
    assert state.pending == []


def test_one_network_clearing_while_another_stays_blocked_is_a_change():
    profile = {AZERCELL: blocked_between(10, 200), BAKINTERNET: blocked_between(10, 40)}
    state, events = replay(profile, 0, 120)
    assert [(e.kind, e.asns, e.cleared) for _, e in events] == [
        ("blocked", (AZERCELL, BAKINTERNET), ()),
        ("changed", (AZERCELL,), (BAKINTERNET,)),
    ]
    when, changed = events[1]
    assert changed.since == h(10)
    # the numbers are AS29049's over its block (every 2 h from hour 10 to its newest run), not the
    # last day's nor AS41997's clearing window
    runs = len(range(10, int((when - T0) / HOUR), 2))
    assert when - h(10) > DEFAULT.window  # more than a day of them
    assert (changed.anomalies, changed.measurements) == (runs * 10, runs * 12)


def test_method_is_the_most_common_among_blocked_observations_and_confirmed_counts():
    observations = [
        obs(AZERCELL, h(0), 12, 10, method="tls"),
        obs(BAKINTERNET, h(0), 8, 6, confirmed=1, method="dns"),
        obs(DELTA, h(0), 20, 1, method="http"),  # not blocked: its method does not count
    ]
    state, events = detect(None, observations, h(1))
    assert [e.kind for e in events] == ["blocked"]
    event = events[0]
    assert event.asns == (AZERCELL, BAKINTERNET)
    assert event.method == "tls"  # 10 tls against 7 dns
    assert event.confirmed is True
    assert event.anomalies == 17 and event.measurements == 20
    assert len(event.evidence) == 6
    assert set(event.evidence[:3]) <= set(observations[0].evidence)


# --- gaps, flapping, intermittent blocks ---------------------------------------------------------


def test_gaps_never_unblock():
    state, events = replay({AZERCELL: blocked_between(0, 1000)}, 0, 24)
    assert [e.kind for _, e in events] == ["blocked"]
    for k in range(24, 24 * 8):  # a week of polls that return nothing (or an error: no call at all)
        state, events = detect(state, [], h(k))
        assert events == []
    assert state.blocked_asns == (AZERCELL,)
    # after the gap, OK data clears it only once it is as strong as what raised the block (two runs,
    # 24 valid over 3 h): two hours of 6 are not
    for k in range(24 * 8, 24 * 8 + 2):
        state, events = detect(state, [obs(AZERCELL, h(k - 1), 6, 0)], h(k))
        assert events == []
    assert state.blocked_asns == (AZERCELL,)
    for k in range(24 * 8 + 2, 24 * 8 + 12):
        state, events = detect(state, [obs(AZERCELL, h(k - 1), 6, 0)], h(k))
        if events:
            break
    [unblocked] = events
    assert unblocked.kind == "unblocked" and unblocked.ended == h(23)  # it ended in its data, not after the gap
    assert h(k) - h(24 * 8 - 1) <= DEFAULT.clear_within


def test_ok_data_too_thin_to_match_the_evidence_does_not_unblock():
    # a day blocked (6 of 6 an hour), then two OK runs of 2 four hours apart, then nothing for days
    profile = {AZERCELL: lambda hour: (6, 6, "tls") if hour < 24 else ((2, 0, "tls") if hour in (24, 28) else None)}
    state, events = replay(profile, 0, 24 * 6)
    assert [e.kind for _, e in events] == ["blocked"]
    assert state.blocked_asns == (AZERCELL,)


def test_flapping_around_the_block_threshold_gives_at_most_one_event():
    # ratio alternates 0.4 / 0.6 each hour for five days
    profile = {AZERCELL: lambda hour: (5, 3 if hour % 2 else 2, "tls")}
    state, events = replay(profile, 0, 120)
    assert [e.kind for _, e in events] == ["blocked"]


def test_flapping_around_the_clear_threshold_does_not_produce_pairs():
    # a clear block for a day, then ratios alternating 0.1 / 0.3 for five days
    def f(hour):
        if hour < 24:
            return (10, 9, "tls")
        return (10, 1 if hour % 2 else 3, "tls")

    state, events = replay({AZERCELL: f}, 0, 24 * 6)
    kinds = [e.kind for _, e in events]
    assert kinds[0] == "blocked"
    assert kinds.count("blocked") == 1 and kinds.count("unblocked") <= 1


def test_slightly_anomalous_data_keeps_a_block_open():
    # after the block, 30% of measurements stay anomalous (some endpoints still blocked): not over
    profile = {AZERCELL: lambda hour: (10, 9 if hour < 24 else 3, "tls")}
    state, events = replay(profile, 0, 24 * 6)
    assert [e.kind for _, e in events] == ["blocked"]


def daytime_block(days, dense=True):
    """Anomalous 08:00–18:00, OK at night, for `days` days from hour 0; OK afterwards."""

    def f(hour):
        if dense:
            counts = (4, 4) if hour < days * 24 and 8 <= hour % 24 < 18 else (3, 0)
        else:  # thin: a run every 2 hours of one measurement
            if hour % 2:
                return None
            counts = (2, 2) if hour < days * 24 and 8 <= hour % 24 < 18 else (2, 0)
        return (*counts, "tls")

    return f


@pytest.mark.parametrize("dense", [True, False])
def test_an_intermittent_block_is_one_period_flagged_intermittent(dense):
    state, events = replay({AZERCELL: daytime_block(5, dense)}, 0, 24 * 12)
    kinds = [e.kind for _, e in events]
    assert kinds == ["blocked", "unblocked"]
    (t_blocked, blocked), (t_unblocked, unblocked) = events
    assert blocked.since == h(8) and blocked.intermittent is False  # day one cannot know yet
    assert unblocked.intermittent is True
    last_anomalous_end = h(4 * 24 + (18 if dense else 17))
    assert unblocked.ended == last_anomalous_end
    assert unblocked.duration == last_anomalous_end - h(8)
    # neither cleared at night nor by the night's clean data: only once clean data covered the next
    # day's hours when it used to bite (08:00-18:00 UTC, it bit on T0's weekend too)
    assert last_anomalous_end + DAY <= t_unblocked <= last_anomalous_end + DAY + 2 * HOUR


def test_intermittency_is_known_while_the_block_lasts():
    state, _ = replay({AZERCELL: daytime_block(5)}, 0, 24 * 2 + 10)
    assert state.intermittent is True and state.networks[AZERCELL].intermittent is True
    assert state.blocked_asns == (AZERCELL,)


def test_a_block_off_over_the_weekend_stays_one_period():
    # blocked on weekdays (daytime), off Saturday and Sunday, two weeks (T0 is a Saturday)
    def f(hour):
        on = (T0 + hour * HOUR).weekday() < 5 and 8 <= hour % 24 < 18 and hour < 24 * 14
        return (4, 4 if on else 0, "tls")

    state, events = replay({AZERCELL: f}, 0, 24 * 20)
    assert [e.kind for _, e in events] == ["blocked", "unblocked"]
    (_, blocked), (t_unblocked, unblocked) = events
    # not cleared over either weekend: after Friday 18:00 (hour 13 * 24 + 18), only Monday's clean hours do
    assert unblocked.ended == h(13 * 24 + 18)
    assert h(16 * 24 + 18) <= t_unblocked <= h(16 * 24 + 20)


# --- state: one per ASN, persistence, restarts ---------------------------------------------------


def test_state_round_trips_through_json():
    state, _ = replay(az_2022(), 0, 100)
    assert state.blocked_asns == (AZERCELL, BAKINTERNET)
    text = json.dumps(state.to_dict())
    again = BlockState.from_dict(json.loads(text))
    assert again == state
    assert again.to_dict() == state.to_dict()
    assert again.method == "tls" and again.evidence == state.evidence


def test_a_restart_neither_repeats_nor_misses_an_event():
    observations = [obs(AZERCELL, h(0), 12, 10, method="tls")]
    state, events = detect1(None, observations, h(1))
    assert [e.kind for e in events] == ["blocked"]
    restored = BlockState.from_dict(json.loads(json.dumps(state.to_dict())))
    restored, events = detect1(restored, observations, h(1))  # the same poll again after a crash
    assert events == []
    restored, events = detect1(restored, observations, h(2))
    assert events == []
    # and the end is still seen after another restart mid-way through the clearing window
    for k in range(1, 100):
        restored, events = detect1(restored, [obs(AZERCELL, h(k), 6, 0)], h(k + 1))
        if k % 10 == 0:
            restored = BlockState.from_dict(json.loads(json.dumps(restored.to_dict())))
        if events:
            break
    assert [e.kind for e in events] == ["unblocked"]
    assert events[0].duration == HOUR


def test_empty_polls_are_safe():
    state, events = detect(None, [], h(0), country="AZ", platform="tiktok")
    assert events == [] and state.country == "AZ" and state.networks == {}
    with pytest.raises(ValueError):
        detect(None, [], h(0))
    state, _ = detect(state, [obs(AZERCELL, h(0), 10, 0)], h(1))
    before = state.to_dict()
    state, events = detect(state, [], h(2))
    assert events == [] and state.networks[AZERCELL].status == "ok"
    assert state.to_dict()["last_data"] == before["last_data"]


def test_observations_of_another_pair_are_refused():
    state, _ = detect(None, [obs(AZERCELL, h(0), 10, 0)], h(1))
    with pytest.raises(ValueError):
        detect(state, [obs(AZERCELL, h(1), 10, 0, platform="whatsapp")], h(2))


def test_buckets_not_yet_begun_are_ignored_and_old_ones_pruned():
    early = obs(AZERCELL, h(5), 10, 10, method="tls")
    state, events = detect1(None, [early], h(1))
    assert events == [] and state.networks == {}
    # it was not taken early: when its hour has passed it is new data, and a block
    state, events = detect1(state, [early], h(6))
    assert [e.kind for e in events] == ["blocked"] and events[0].since == h(5)
    # anomalies a window apart never add up: 3 of 3 now and 3 of 3 a day and an hour later stay apart
    state, events = detect1(None, [obs(DELTA, h(0), 3, 3)], h(1))
    state, events = detect1(state, [obs(DELTA, h(1) + DEFAULT.window, 3, 3)], h(2) + DEFAULT.window)
    assert events == [] and state.blocked_asns == ()
    # while 3 of 3 an hour apart do
    state, events = detect1(state, [obs(DELTA, h(2) + DEFAULT.window, 3, 3)], h(3) + DEFAULT.window)
    assert [e.kind for e in events] == ["blocked"]


def test_a_new_bucket_size_replaces_the_overlapping_old_buckets():
    # 3 hours of 3 measurements, 2 anomalous: 6 of 9 is below the bar (7 are needed)
    hourly = [obs(AZERCELL, h(k), 3, 2, method="tls") for k in range(3)]
    assert DEFAULT.needed(9) == 7
    state, events = detect1(None, hourly, h(3))
    assert events == []
    # the same data as one day bucket, still filling: it replaces the hours (added, 12 of 18 would block)
    state, events = detect1(state, [obs(AZERCELL, T0, 9, 6, hours=24, method="tls")], h(3) + QUARTER)
    assert events == []
    # a late hour before the day fills in beside it: 6 of 9 and 3 of 3 are 9 of 12 together, a block
    state, events = detect1(state, [obs(AZERCELL, T0 - HOUR, 3, 3, method="tls")], h(4))
    assert [e.kind for e in events] == ["blocked"] and events[0].since == T0 - HOUR


def test_networks_that_leave_the_window_are_forgotten_unless_blocked():
    state, _ = detect1(None, [obs(DELTA, h(0), 10, 0), obs(AZERCELL, h(0), 10, 10)], h(1))
    state, _ = detect1(state, [], h(60))
    assert set(state.networks) == {DELTA, AZERCELL}  # DELTA's last data is still recent
    state, _ = detect1(state, [], h(1) + DEFAULT.retention)
    assert set(state.networks) == {AZERCELL}
    assert state.blocked_asns == (AZERCELL,)


def test_stricter_thresholds_are_honoured():
    strict = Thresholds(min_valid=20, corroboration_gap=timedelta(0))
    state, events = detect(None, [obs(AZERCELL, h(0), 12, 10)], h(1), strict)
    assert events == []
    state, events = detect(state, [obs(AZERCELL, h(1), 12, 10)], h(2), strict)
    assert [e.kind for e in events] == ["blocked"]


# --- the event as JSON (the backtest's line) -----------------------------------------------------


def test_event_json_is_the_contract_line_then_extras():
    state, events = detect1(None, [obs(AZERCELL, datetime(2022, 9, 14, 11, tzinfo=UTC), 12, 10, method="tls",
                                      uids=("https://explorer.ooni.org/m/20220914T1100_a", "https://explorer.ooni.org/m/b", "https://explorer.ooni.org/m/c"))],
                           datetime(2022, 9, 14, 12, 0, 0, 123456, tzinfo=UTC))
    line = events[0].to_json()
    assert list(line)[:7] == ["time", "country", "platform", "kind", "asns", "method", "evidence"]
    assert line["time"] == "2022-09-14T12:00:00Z"
    assert line["country"] == "AZ" and line["platform"] == "tiktok" and line["kind"] == "blocked"
    assert line["asns"] == [29049] and line["method"] == "tls"
    assert line["evidence"][0] == "https://explorer.ooni.org/m/20220914T1100_a"
    assert line["since"] == "2022-09-14T11:00:00Z"
    assert line["anomalies"] == 10 and line["measurements"] == 12
    assert line["duration_seconds"] is None
    assert json.loads(json.dumps(line)) == line
    back = Event.from_json({"id": 7, **line})
    assert back.evidence == ("https://explorer.ooni.org/m/20220914T1100_a", "https://explorer.ooni.org/m/b", "https://explorer.ooni.org/m/c")
    assert back.asns == (29049,) and back.since == events[0].since


def test_unblocked_json_carries_the_duration():
    state, _ = detect1(None, [obs(AZERCELL, h(0), 12, 10, method="tls")], h(1))
    events = []
    for k in range(1, 80):
        state, events = detect1(state, [obs(AZERCELL, h(k), 6, 0)], h(k + 1))
        if events:
            break
    line = events[0].to_json()
    assert line["kind"] == "unblocked" and line["asns"] == [AZERCELL] and line["cleared"] == [AZERCELL]
    assert line["duration_seconds"] == 3600
    assert line["method"] == "tls"


def test_a_stray_anomaly_while_clearing_neither_holds_the_block_nor_moves_its_end():
    state, _ = detect1(None, [obs(AZERCELL, h(0), 12, 10, method="tls")], h(1))
    events = []
    for k in range(1, 80):
        stray = k == 10
        state, events = detect1(state, [obs(AZERCELL, h(k), 1 if stray else 6, 1 if stray else 0,
                                           uids=("stray",) if stray else ())], h(k + 1))
        if events:
            break
    assert [e.kind for e in events] == ["unblocked"]
    assert events[0].ended == h(1) and events[0].duration == HOUR
    # it bit at one hour only (00:00): the all-clear waits for that hour's clean data the next day, no more
    assert h(25) <= events[0].time <= h(25) + HOUR
    assert "stray" not in events[0].evidence and events[0].intermittent is False


def test_the_block_showing_again_while_clearing_restarts_the_clearing_window():
    state, _ = detect1(None, [obs(AZERCELL, h(0), 12, 10, method="tls")], h(1))
    events = []
    for k in range(1, 120):
        again = k == 10  # one probe run, mostly anomalous again
        state, events = detect1(state, [obs(AZERCELL, h(k), 6, 4 if again else 0)], h(k + 1))
        if events:
            break
    assert [e.kind for e in events] == ["unblocked"]
    assert events[0].ended == h(11)
    # it came back: intermittent, biting from 00:00 to 11:00; clean data must cover those hours the next day
    assert h(24 + 11) <= events[0].time <= h(24 + 12)
    assert events[0].intermittent is True


def test_changed_is_unset_only_when_the_state_stayed_exactly_as_it_was():
    """The poller writes only states whose `changed` is set, so an unset one must store exactly as before;
    and `to_json()` (each network's text kept until detect() changes it) always equals the full dump:
    checked on every call over a block's whole life (hourly buckets re-sent, the same poll twice, empty
    polls, networks forgotten) and over filling days polled every 15 minutes."""
    profile, state, unchanged = az_2022(), None, 0

    def checked(state, observations, now):
        nonlocal unchanged
        before = None if state is None else json.dumps(state.to_dict())
        state, _ = detect(state, observations, now, country="AZ", platform="tiktok")
        if not state.changed:
            unchanged += 1
            assert json.dumps(state.to_dict()) == before
        # the stored text, built from the networks' kept text, is never stale
        assert state.to_json() == json.dumps(state.to_dict(), separators=(",", ":"))
        return state

    for k in range(0, 240):
        observations = [obs(asn, h(hour), *counts[:2], method=counts[2])
                        for hour in (k - 1, k) for asn, f in profile.items() if (counts := f(hour))]
        for again in (observations, observations, []):
            state = checked(state, again, h(k + 1))
    state = checked(state, [], h(240) + DEFAULT.retention)  # every network forgotten
    assert state.changed and state.networks == {}
    assert unchanged > 200  # re-sent unchanged buckets and empty polls of an unblocked pair change nothing

    runs = runs_of(DELTA, D1, D1 + 2 * DAY, blocked_from=D1 + DAY + 6 * HOUR)
    state, now = None, D1 + QUARTER
    while now <= D1 + 2 * DAY:
        days = (-1, 0) if now.hour == 0 and now.minute < 15 else (0,)
        state = checked(state, filling_days(runs, now, days), now)
        state = checked(state, [], now)
        now += QUARTER
    assert state.blocked_asns == (DELTA,)


# --- issue 10: corroboration, fast all-clear, coalesced changes, the pattern ----------------------

SMALL_ISP = 197830  # one probe, one run


def quiet_weeks(first_hour, last_hour):
    return {AZERCELL: quiet, DELTA: quiet, BAKINTERNET: quiet}


def test_a_lone_probe_run_on_a_small_network_raises_nothing():
    # two quiet weeks on three networks; in the middle, a small ISP's only probe runs once: 7 of 8 anomalous
    lone_hour = 24 * 7 + 11
    profile = {**quiet_weeks(0, 24 * 14), SMALL_ISP: lambda hour: (8, 7, "tls") if hour == lone_hour else None}
    assert DEFAULT.needed(8) <= 7  # alone, the run passes the numbers' bar
    state, events = replay(profile, 0, 24 * 14)
    assert events == []
    assert state.blocked_asns == ()


def test_a_thin_network_is_corroborated_by_a_later_run_or_by_a_second_network():
    # the same run again three hours later: two runs speak for it
    profile = {DELTA: quiet, SMALL_ISP: lambda hour: (8, 7, "tls") if hour in (30, 33) else None}
    state, events = replay(profile, 0, 48)
    [(when, blocked)] = events
    assert when == h(34) and blocked.asns == (SMALL_ISP,) and blocked.since == h(30)
    # or a second network showing the block at the same time, each with one run
    profile = {DELTA: quiet, SMALL_ISP: lambda hour: (8, 7, "tls") if hour == 30 else None,
               AZERCELL: lambda hour: (6, 6, "tls") if hour == 30 else quiet(hour)}
    state, events = replay(profile, 0, 48)
    [(when, blocked)] = [(t, e) for t, e in events if e.kind == "blocked"]
    assert when == h(31) and blocked.asns == (AZERCELL, SMALL_ISP)


def continuous_block(start, end, valid=6):
    """One well-measured network: a run every hour; all anomalous in [start, end), clean otherwise."""
    return lambda hour: (valid, valid if start <= hour < end else 0, "tls")


def test_a_continuous_block_is_all_clear_within_hours_of_the_clean_data():
    state, events = replay({AZERCELL: continuous_block(24, 24 * 4)}, 0, 24 * 6)
    assert [e.kind for _, e in events] == ["blocked", "unblocked"]
    (t_blocked, blocked), (t_clear, unblocked) = events
    # raised by two runs two hours apart (18 of 18 over 3 h): cleared once clean data is as strong
    first_clean = h(24 * 4)  # the bucket's start; it arrives at the next poll
    assert first_clean + DEFAULT.clear_min_span <= t_clear <= first_clean + DEFAULT.clear_min_span + HOUR
    assert t_clear - first_clean <= DEFAULT.clear_within
    assert unblocked.ended == h(24 * 4) and unblocked.since == h(24) and unblocked.intermittent is False


def test_clean_data_that_keeps_coming_clears_within_twelve_hours_however_strong_the_block():
    # a day blocked, raised by a big sample (80 of 80 over 2 h), then 6 clean an hour: 12 h of them is enough
    profile = {AZERCELL: lambda hour: (40, 40, "tls") if 24 <= hour < 48 else ((6, 0, "tls") if hour >= 48 else None)}
    state, events = replay(profile, 0, 24 * 4)
    (t_blocked, _), (t_clear, unblocked) = events
    assert unblocked.kind == "unblocked" and state.networks[AZERCELL].raised_valid > 6 * 12
    assert h(48) + DEFAULT.clear_within <= t_clear <= h(48) + DEFAULT.clear_within + HOUR


def test_changes_within_six_hours_go_out_as_one_message_that_says_what_changed_and_when():
    profile = {
        AZERCELL: blocked_between(10, 200),  # blocked from 10:00
        BAKINTERNET: blocked_between(30, 200),  # joins at 30:00
        DELTA: blocked_between(32, 200),  # joins at 32:00
    }
    state, events = replay(profile, 0, 60)
    assert [(e.kind, e.asns) for _, e in events] == [
        ("blocked", (AZERCELL,)),
        ("changed", (AZERCELL, DELTA, BAKINTERNET)),
    ]
    (t_blocked, _), (t_changed, changed) = events
    # AS41997's first run at 30:00 is noticed at 31:00 (AS29049 corroborates it); AS31721's at 33:00; one
    # message six hours after the first change, each network with the time its block began
    assert t_changed == h(31) + DEFAULT.changed_every
    assert changed.changes == (Change(BAKINTERNET, "added", h(30)), Change(DELTA, "added", h(32)))
    assert changed.added == (BAKINTERNET, DELTA) and changed.cleared == ()
    line = changed.to_json()
    assert line["changes"] == [{"asn": BAKINTERNET, "change": "added", "time": "2022-09-11T06:00:00Z"},
                               {"asn": DELTA, "change": "added", "time": "2022-09-11T08:00:00Z"}]
    assert Event.from_json(line) == changed


def test_a_change_that_is_undone_within_six_hours_is_not_announced():
    state, events = replay({AZERCELL: blocked_between(10, 200), BAKINTERNET: blocked_between(10, 200)}, 0, 40)
    assert [e.kind for _, e in events] == ["blocked"]
    state.pending = [Change(BAKINTERNET, "cleared", h(38)), Change(BAKINTERNET, "added", h(39))]
    state.pending_since = h(39)
    state, events = detect(state, [], h(39) + DEFAULT.changed_every)
    assert events == [] and state.pending == []


def test_a_coalesced_change_survives_a_restart_and_is_sent_once():
    profile = {AZERCELL: blocked_between(10, 200), BAKINTERNET: blocked_between(30, 200)}
    kept, kept_events = replay(profile, 0, 34)
    assert [e.kind for _, e in kept_events] == ["blocked"] and kept.pending  # the change waits
    restored = BlockState.from_dict(json.loads(kept.to_json()))
    assert restored.pending == kept.pending and restored.pending_since == kept.pending_since
    _, after_restart = replay(profile, 34, 48, restored)
    _, without = replay(profile, 34, 48, kept)
    assert [e for _, e in after_restart] == [e for _, e in without]
    assert [e.kind for _, e in after_restart] == ["changed"]


def test_a_state_stored_by_the_previous_version_goes_on_mid_block_without_repeating_or_losing_it():
    """tests/fixtures/detector/state_v2_mid_block.json: the az_2022() replay to 100:00 stored by the
    detector before issue 10 (state version 2: AS29049 and AS41997 blocked, `blocked` and `changed` sent)."""
    stored = json.loads((Path(__file__).parent / "fixtures" / "detector" / "state_v2_mid_block.json").read_text())
    assert stored["version"] == 2 and "pending" not in stored
    state = BlockState.from_dict(stored)
    assert state.blocked_asns == (AZERCELL, BAKINTERNET) and state.blocked_since == h(72)
    # the restart goes on with the same block: no second `blocked`, its end is still seen, with its start
    state, events = replay(az_2022(), 100, 240, state)
    assert [e.kind for _, e in events] == ["unblocked"]
    (when, unblocked) = events[0]
    assert unblocked.since == h(72) and unblocked.ended == h(119) and unblocked.asns == (AZERCELL, BAKINTERNET)
    assert h(120) < when <= h(120) + DEFAULT.clear_within
    assert json.loads(state.to_json())["version"] == 3
