"""The OONI source (real aiohttp client) against the fake OONI API over loopback, and the fake itself.

The fake answers from real fastpath rows (tests/fixtures/ooni/) with ooni/backend's counting rules;
its shapes are checked against bodies recorded from the live API. The source is checked for what
the detector needs (counts per platform and network, method, evidence), for its request budget,
and for its behaviour under every fault the API shows.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from datetime import date, datetime, timedelta, timezone

import aiohttp
import pytest

from bot import catalog
from bot.sources.ooni import OoniSource, SourceError
from tests.fakes.ooni import (
    AZ_BLOCKED_ASNS,
    AZ_OK_ASNS,
    FIXTURES,
    FakeOoni,
    az_tiktok_episode,
    az_whatsapp_rows,
    load_fastpath_background,
    redate,
)

UTC = timezone.utc
ALL_PLATFORMS = list(catalog.PLATFORMS)
IN_BLOCK = datetime(2022, 9, 15, 12, tzinfo=UTC)  # a day and a half into the episode's block


class Sleeps(list):
    """An injected sleep: records each backoff delay instead of waiting."""

    async def __call__(self, delay: float) -> None:
        self.append(delay)


def as_of(rows, now: datetime):
    """What the API holds at `now`: the measurements started before it."""
    cutoff = now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return [r for r in rows if r["measurement_start_time"] < cutoff]


def rows_by_link(rows):
    """Each row under its OONI Explorer page: the evidence the source hands the detector."""
    return {f"https://explorer.ooni.org/m/{row['measurement_uid']}": row for row in rows}


async def get_json(url: str, **params):
    async with aiohttp.ClientSession() as session:
        async with session.get(url, params=params) as resp:
            return resp.status, await resp.json(content_type=None)


@pytest.fixture(scope="module")
def episode():
    return az_tiktok_episode()


@pytest.fixture(scope="module")
def background():
    return load_fastpath_background()


# ---------------------------------------------------------------------------------------------
# The fake answers like the real API
# ---------------------------------------------------------------------------------------------


async def test_fake_aggregation_has_the_recorded_shape(background):
    recorded = json.loads((FIXTURES / "recorded_aggregation_web_connectivity_2022-03-01_day.json").read_text())
    async with FakeOoni(background) as fake:
        status, body = await get_json(
            fake.url + "/api/v1/aggregation", test_name="web_connectivity", since="2024-01-01",
            until="2024-01-04", axis_x="measurement_start_day", time_grain="day",
        )
    assert status == 200
    assert list(body) == list(recorded)  # v, dimension_count, db_stats, result
    assert set(body["db_stats"]) == set(recorded["db_stats"])
    assert body["dimension_count"] == recorded["dimension_count"] == 1
    assert list(body["result"][0]) == list(recorded["result"][0])
    started = Counter(r["measurement_start_time"][:10] for r in background if r["test_name"] == "web_connectivity")
    assert [(r["measurement_start_day"], r["measurement_count"]) for r in body["result"]] == [
        ("2024-01-01", started["2024-01-01"])]


async def test_fake_counts_partition_like_the_backend_and_until_is_exclusive(background):
    async with FakeOoni(background) as fake:
        _, day = await get_json(fake.url + "/api/v1/aggregation", probe_cc="RU", since="2024-01-01", until="2024-01-02")
        _, before = await get_json(fake.url + "/api/v1/aggregation", probe_cc="RU", since="2023-12-31",
                                   until="2024-01-01")
        _, per_asn = await get_json(
            fake.url + "/api/v1/aggregation", probe_cc="RU", since="2024-01-01", until="2024-01-02",
            axis_x="probe_asn", axis_y="blocking_type",
        )
    ru = [r for r in background if r["probe_cc"] == "RU" and r["measurement_start_time"].startswith("2024-01-01")]
    expected = Counter(
        "failure" if r["msm_failure"] == "t" else "confirmed" if r["confirmed"] == "t"
        else "anomaly" if r["anomaly"] == "t" else "ok"
        for r in ru
    )
    total = day["result"]
    assert day["dimension_count"] == 0 and isinstance(total, dict)
    assert total["measurement_count"] == len(ru)
    assert (total["failure_count"], total["confirmed_count"], total["anomaly_count"], total["ok_count"]) == (
        expected["failure"], expected["confirmed"], expected["anomaly"], expected["ok"])
    assert total["ok_count"] + total["anomaly_count"] + total["confirmed_count"] + total["failure_count"] == len(ru)
    assert before["result"]["measurement_count"] == 0  # rows at 2024-01-01 00:00:xx are not before `until`
    assert all(isinstance(r["probe_asn"], int) for r in per_asn["result"])
    assert sum(r["measurement_count"] for r in per_asn["result"]) == len(ru)
    assert {r["blocking_type"] for r in per_asn["result"]} >= {"", "http-failure"}


async def test_fake_refuses_hour_grain_beyond_seven_days_like_the_backend():
    async with FakeOoni() as fake:
        url = fake.url + "/api/v1/aggregation"
        status, body = await get_json(url, since="2022-09-01", until="2022-09-09", axis_x="measurement_start_day",
                                      time_grain="hour")
        ok_status, ok_body = await get_json(url, since="2022-09-01", until="2022-09-08",
                                            axis_x="measurement_start_day", time_grain="hour")
        same_status, same = await get_json(url, since="2022-09-01", until="2022-09-02", axis_x="domain",
                                           axis_y="domain")
        bad_date, _ = await get_json(url, since="2022-09-01T10:00:00", until="2022-09-02")
    assert status == 400
    assert body["msg"] == "Choose time_grain between day, week, auto for the given time range"
    assert ok_status == 200 and ok_body["result"] == []
    assert same_status == 200 and same == {"msg": "Axis X and Y cannot be the same", "v": 0}
    assert bad_date == 422  # since/until are dates


async def test_fake_measurements_have_the_recorded_shape(episode):
    recorded = json.loads((FIXTURES / "recorded_measurements_web_connectivity_limit-50.json").read_text())
    async with FakeOoni(episode) as fake:
        status, body = await get_json(fake.url + "/api/v1/measurements", probe_cc="AZ", probe_asn="AS29049",
                                      anomaly="true", since="2022-09-14", until="2022-09-15", limit="3")
    assert status == 200
    assert set(body["metadata"]) == set(recorded["metadata"])
    assert body["metadata"]["next_url"]  # a full page points at the next one
    assert [list(r) for r in body["results"]] == [list(recorded["results"][0])] * 3
    assert {r["probe_asn"] for r in body["results"]} == {"AS29049"}  # a string here, an int in aggregation
    assert all(r["anomaly"] is True and isinstance(r["scores"], dict) for r in body["results"])
    times = [r["measurement_start_time"] for r in body["results"]]
    assert times == sorted(times, reverse=True)


async def test_fake_aggregation_agrees_with_its_measurement_listing(episode):
    async with FakeOoni(episode) as fake:
        _, agg = await get_json(fake.url + "/api/v1/aggregation", probe_cc="AZ", since="2022-09-15",
                                until="2022-09-16", axis_x="probe_asn", axis_y="test_name")
        _, listed = await get_json(fake.url + "/api/v1/measurements", probe_cc="AZ", anomaly="true",
                                   since="2022-09-14T23:59:59", until="2022-09-15T23:59:59", limit="1000")
    anomalous = Counter(int(r["probe_asn"][2:]) for r in listed["results"])
    assert {r["probe_asn"]: r["anomaly_count"] for r in agg["result"]} == {
        asn: anomalous.get(asn, 0) for asn in (*AZ_BLOCKED_ASNS, *AZ_OK_ASNS)}


# ---------------------------------------------------------------------------------------------
# What the source tells the detector
# ---------------------------------------------------------------------------------------------


async def test_az_tiktok_episode_gives_tls_blocking_on_three_networks_with_evidence(episode):
    by_link = rows_by_link(episode)
    async with FakeOoni(as_of(episode, IN_BLOCK)) as fake, OoniSource(fake.url, sleep=Sleeps()) as source:
        observations = await source.observe("az", ["tiktok"], IN_BLOCK)
    by_asn = {o.asn: o for o in observations}
    assert set(by_asn) == {*AZ_BLOCKED_ASNS, *AZ_OK_ASNS}
    for o in observations:
        assert (o.country, o.platform) == ("AZ", "tiktok")
        assert o.start == datetime(2022, 9, 15, tzinfo=UTC) and o.end == o.start + timedelta(days=1)
        assert o.measurements == 24  # 12 hours so far × 2 an hour
    for asn in AZ_BLOCKED_ASNS:
        o = by_asn[asn]
        assert o.blocked_signs >= 0.8 * o.valid, o
        assert o.method == "tls"
        assert 1 <= len(o.evidence) <= 5
        for link in o.evidence:
            row = by_link[link]
            assert (row["probe_asn"], row["anomaly"]) == (asn, "t")
            assert row["measurement_start_time"].startswith("2022-09-15")
    for asn in AZ_OK_ASNS:
        o = by_asn[asn]
        assert (o.anomalies, o.confirmed, o.method, o.evidence) == (0, 0, None, ())
        assert o.valid == 24
    assert len(fake.requests) == 3


async def test_after_the_block_the_same_networks_are_ok(episode):
    async with FakeOoni(episode) as fake, OoniSource(fake.url) as source:
        observations = await source.observe("AZ", ["tiktok"], datetime(2022, 9, 17, 11, tzinfo=UTC))
    assert {o.asn for o in observations} == {*AZ_BLOCKED_ASNS, *AZ_OK_ASNS}
    assert all(o.anomalies == 0 and o.valid > 0 for o in observations if o.start.day == 17)


async def test_background_rows_give_many_platforms_and_few_anomalies(background):
    countries = Counter(r["probe_cc"] for r in background)
    now = datetime(2024, 1, 1, 0, 30, tzinfo=UTC)
    seen, valid, signs, worst = set(), 0, 0, 0
    async with FakeOoni(background) as fake, OoniSource(fake.url) as source:
        for cc, _ in countries.most_common(25):
            fake.requests.clear()
            observations = await source.observe(cc, ALL_PLATFORMS, now)
            assert len(fake.requests) <= 3, (cc, fake.paths())
            for o in observations:
                assert o.country == cc and o.platform in catalog.PLATFORMS and o.asn > 0
                assert o.measurements == o.valid + o.failures
                seen.add(o.platform)
                valid += o.valid
                signs += o.blocked_signs
                worst = max(worst, o.blocked_signs)
    assert len(seen) >= 8, seen
    assert valid >= 100
    assert signs / valid < 0.1  # one-off anomalies, scattered
    assert worst <= 2


async def test_unknown_country_is_no_data_and_nonsense_is_a_source_error():
    async with FakeOoni(load_fastpath_background()) as fake, OoniSource(fake.url) as source:
        assert await source.observe("XX", ALL_PLATFORMS, datetime(2024, 1, 1, 1, tzinfo=UTC)) == []
        assert {path for path, _ in fake.requests} == {"/api/v1/aggregation"}
        fake.requests.clear()
        with pytest.raises(SourceError):
            await source.observe("Azerbaijan!", ["tiktok"], datetime(2024, 1, 1, 1, tzinfo=UTC))
        assert fake.requests == []


async def test_every_poll_stays_within_three_requests_and_app_counts_are_not_starved(episode, background):
    rng = random.Random(7)
    apps = [r for r in background if r["test_name"] in ("whatsapp", "telegram", "signal")][:30]
    az_apps = [
        redate(r, cc="AZ", asn=rng.choice(AZ_OK_ASNS), rng=rng,
               when=datetime(2022, 9, 15, rng.randrange(12), rng.randrange(60)))
        for r in apps
    ]
    async with FakeOoni(episode + az_apps) as fake, OoniSource(fake.url) as source:
        platforms_per_poll = []
        for minutes in range(0, 15 * 8, 15):
            fake.requests.clear()
            observations = await source.observe("AZ", ALL_PLATFORMS, IN_BLOCK + timedelta(minutes=minutes))
            assert len(fake.requests) <= 3, fake.requests
            platforms_per_poll.append({o.platform for o in observations})
            if minutes == 0:
                tiktok = {o.asn: o for o in observations if o.platform == "tiktok"}
                assert all(tiktok[asn].method == "tls" and tiktok[asn].evidence for asn in AZ_BLOCKED_ASNS)
    # The first poll spends its budget on TikTok's evidence and method; the next brings the apps.
    assert "tiktok" in platforms_per_poll[0]
    assert {"whatsapp", "telegram", "signal"} <= platforms_per_poll[1]
    assert sum({"whatsapp", "telegram"} <= seen for seen in platforms_per_poll) >= 6


# ---------------------------------------------------------------------------------------------
# Re-sent day buckets: web and app counts of one platform, never a partial sum
# ---------------------------------------------------------------------------------------------


def kinds_of(platform: str, cc: str = "AZ") -> tuple[str, ...]:
    """The count requests a platform's day is made of: its web domains, its app tests, or both."""
    return (("web",) if catalog.platform_domains(platform, cc) else ()) + (
        ("apps",) if catalog.PLATFORMS[platform].tests else ())


class Uploads:
    """Rows reaching the fake API as the clock moves: each at its upload time (its start, or later)."""

    def __init__(self, fake: FakeOoni, rows, late: timedelta = timedelta(0), late_from: datetime | None = None):
        def upload(row) -> datetime:
            start = datetime.fromisoformat(row["measurement_start_time"]).replace(tzinfo=UTC)
            return start + late if late_from is not None and start >= late_from else start

        self.fake = fake
        self.pending = sorted(rows, key=upload)
        self.upload = upload

    def until(self, now: datetime) -> None:
        n = 0
        while n < len(self.pending) and self.upload(self.pending[n]) < now:
            n += 1
        self.fake.add_rows(self.pending[:n])
        del self.pending[:n]


class Sightings:
    """What the detector is sent of each (platform, asn, day), checked against the fake's own totals.

    Every day count request the source makes is answered again here, per platform, straight from the
    fake: that part of the day is then known as of this cycle. Each Observation must be the sum of
    the last known web and app parts of its platform (both known: never a partial sum), and never
    below the previous sighting of the same bucket."""

    def __init__(self, fake: FakeOoni, platforms, cc: str = "AZ"):
        self.fake, self.cc, self.platforms = fake, cc, list(platforms)
        self.known: dict[tuple[str, date], dict[tuple[str, int], tuple[int, ...]]] = {}
        self.last: dict[tuple[str, int, datetime], tuple[int, ...]] = {}
        self.cycles: list[set[tuple[str, date]]] = []  # the parts each cycle refreshed

    async def _totals(self, kind: str, day: date) -> dict[tuple[str, int], tuple[int, ...]]:
        totals = {}
        for platform in self.platforms:
            if kind not in kinds_of(platform, self.cc):
                continue
            query = {"test_name": "web_connectivity", "domain": ",".join(catalog.platform_domains(platform, self.cc))}
            if kind == "apps":
                query = {"test_name": ",".join(catalog.PLATFORMS[platform].tests)}
            status, body = await get_json(
                self.fake.url + "/api/v1/aggregation", probe_cc=self.cc, since=day.isoformat(),
                until=(day + timedelta(days=1)).isoformat(), axis_x="probe_asn", **query,
            )
            assert status == 200
            for r in body["result"]:
                totals[(platform, r["probe_asn"])] = (
                    r["measurement_count"], r["anomaly_count"], r["confirmed_count"], r["failure_count"])
        return totals

    async def check(self, observations) -> int:
        """Check one cycle's observations against the fake; returns the requests the source made."""
        made = list(self.fake.requests)
        refreshed = set()
        for path, q in made:
            if path == "/api/v1/aggregation":
                kind = "web" if q["test_name"] == "web_connectivity" else "apps"
                refreshed.add((kind, date.fromisoformat(q["since"])))
        for kind, day in refreshed:
            self.known[(kind, day)] = await self._totals(kind, day)
        self.cycles.append(refreshed)
        for o in observations:
            parts = [self.known.get((kind, o.start.date())) for kind in kinds_of(o.platform, o.country)]
            assert None not in parts, f"{o.platform} AS{o.asn} {o.start:%m-%d} sent with a part never fetched"
            want = tuple(map(sum, zip(*(p.get((o.platform, o.asn), (0, 0, 0, 0)) for p in parts))))
            got = (o.measurements, o.anomalies, o.confirmed, o.failures)
            assert got == want, (o.platform, o.asn, o.start, got, want)
            before = self.last.get((o.platform, o.asn, o.start))
            assert before is None or all(g >= b for g, b in zip(got, before)), (o.platform, o.asn, before, got)
            self.last[(o.platform, o.asn, o.start)] = got
        self.fake.requests.clear()
        return len(made)


@pytest.mark.parametrize("restart", [False, True], ids=["running", "restarted-after-midnight"])
async def test_a_day_re_sent_across_midnight_always_sums_its_web_and_app_counts(restart):
    day = datetime(2022, 9, 20, tzinfo=UTC)
    midnight = day + timedelta(days=1)
    rows = az_whatsapp_rows(datetime(2022, 9, 20, 20), datetime(2022, 9, 21, 2))
    # Measurements of the day's last ten minutes are uploaded 5 minutes late: after 23:50's poll.
    cycles = [midnight + timedelta(minutes=m) for m in range(-55, 60, 15)]  # 23:05 … 00:50
    async with FakeOoni() as fake:
        uploads = Uploads(fake, rows, late=timedelta(minutes=5), late_from=midnight - timedelta(minutes=10))
        sightings = Sightings(fake, ["whatsapp"])
        source = OoniSource(fake.url)
        sent: dict[datetime, dict[int, int]] = {}  # when → yesterday's measurements per network
        try:
            for now in cycles:
                uploads.until(now)
                if restart and now == cycles[4]:  # the first poll after midnight, by a new process
                    await source.close()
                    source, sightings.known = OoniSource(fake.url), {}
                observations = await source.observe("AZ", ["whatsapp"], now)
                assert await sightings.check(observations) <= 3
                sent[now] = {o.asn: o.measurements for o in observations if o.start == day}
        finally:
            await source.close()

    assert {p for p, _, _ in sightings.last} == {"whatsapp"}
    # The final parts come in two cycles (budget: today's two counts first), each for every network.
    finals = [n for n, refreshed in enumerate(sightings.cycles) if refreshed & {("web", day.date()), ("apps", day.date())}]
    assert [sightings.cycles[n] & {("web", day.date()), ("apps", day.date())} for n in finals][-2:] == [
        {("web", day.date())}, {("apps", day.date())}]
    per_network = Counter(r["probe_asn"] for r in rows if r["measurement_start_time"].startswith("2022-09-20"))
    assert sent[cycles[3]] and all(sent[cycles[3]][asn] < per_network[asn] for asn in AZ_OK_ASNS)  # 23:50: late ones missing
    # After midnight the day is sent complete, or not at all until it can be.
    after = [sent[now] for now in cycles[4:] if sent[now]]
    assert after and after[-1] == dict(per_network)
    if restart:  # the new process knows yesterday's app part only from the app final
        assert sent[cycles[4]] == {}


async def test_a_day_re_sent_while_details_take_the_budget_keeps_its_app_counts(episode):
    # TikTok's block starts at 06:00 on every blocked network: its evidence and method take the budget
    # from the app counts, while WhatsApp is measured both ways on the same networks all morning.
    start = datetime(2022, 9, 14, 4, tzinfo=UTC)
    rows = episode + az_whatsapp_rows(datetime(2022, 9, 14, 3), datetime(2022, 9, 14, 10),
                                      asns=(*AZ_BLOCKED_ASNS, *AZ_OK_ASNS))
    async with FakeOoni() as fake, OoniSource(fake.url) as source:
        uploads = Uploads(fake, rows)
        sightings = Sightings(fake, ["tiktok", "whatsapp"])
        whatsapp_sent = []
        for minutes in range(5, 6 * 60, 15):
            now = start + timedelta(minutes=minutes)
            uploads.until(now)
            observations = await source.observe("AZ", ["tiktok", "whatsapp"], now)
            assert await sightings.check(observations) <= 3
            whatsapp_sent.append({o.asn for o in observations if o.platform == "whatsapp" and o.start.day == 14})
    today = date(2022, 9, 14)
    skipped = [n for n, refreshed in enumerate(sightings.cycles) if ("apps", today) not in refreshed]
    assert skipped and skipped[0] > 0, sightings.cycles  # details did take the app counts' place
    assert all(whatsapp_sent[n] == set(AZ_BLOCKED_ASNS + AZ_OK_ASNS) for n in skipped)  # sent, with both parts
    assert {asn for p, asn, _ in sightings.last if p == "tiktok"} == set(AZ_BLOCKED_ASNS + AZ_OK_ASNS)


# ---------------------------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", [503, 502, 429, 200, "malformed", "timeout"])
async def test_each_fault_is_retried_then_answered(episode, fault):
    sleeps = Sleeps()
    async with FakeOoni(episode) as fake, OoniSource(fake.url, sleep=sleeps, timeout=0.3) as source:
        fake.fail_next(2, status=fault)
        observations = await source.observe("AZ", ["tiktok"], IN_BLOCK)
        assert {o.asn for o in observations if o.method == "tls"} == set(AZ_BLOCKED_ASNS)
        assert len(sleeps) == 2
        assert len(fake.requests) == 3 + 2
        assert (source.errors, source.requests_made) == (2, 5)


@pytest.mark.parametrize("fault", [503, 429, 200, "malformed", "timeout"])
async def test_a_fault_that_outlasts_the_retries_raises_source_error(episode, fault):
    sleeps = Sleeps()
    async with FakeOoni(episode) as fake, OoniSource(fake.url, sleep=sleeps, timeout=0.3, retries=4) as source:
        fake.fail_next(5, status=fault)
        with pytest.raises(SourceError):
            await source.observe("AZ", ["tiktok"], IN_BLOCK)
        assert len(fake.requests) == 5 and len(sleeps) == 4
        assert await source.observe("AZ", ["tiktok"], IN_BLOCK)  # and the next poll works


async def test_backoff_grows_exponentially_with_jitter(episode):
    sleeps = Sleeps()
    async with FakeOoni(episode) as fake, OoniSource(fake.url, sleep=sleeps, backoff=1.0, retries=4) as source:
        fake.fail_next(4, status=503)
        await source.observe("AZ", ["tiktok"], IN_BLOCK)
    assert len(sleeps) == 4
    for attempt, delay in enumerate(sleeps):
        assert 2**attempt / 2 <= delay <= 2**attempt  # half fixed, half random
    assert sleeps == sorted(sleeps)
    assert any(delay not in (2**k / 2, 2**k) for k, delay in enumerate(sleeps))  # jitter, not a fixed schedule


async def test_quota_exceeded_backs_off_longer_and_honours_retry_after(episode):
    sleeps = Sleeps()
    async with FakeOoni(episode) as fake, OoniSource(fake.url, sleep=sleeps, backoff=1.0) as source:
        fake.fail_next(1, status=429)
        await source.observe("AZ", ["tiktok"], IN_BLOCK)
        fake.fail_next(1, status=429, retry_after=7)
        await source.observe("AZ", ["tiktok"], IN_BLOCK + timedelta(hours=2))
        assert sleeps[0] >= 2.0  # four times the first 503 backoff (0.5–1 s)
        assert sleeps[1] >= 7.0

        # A Retry-After longer than a poll can wait: give up now and send nothing until it passes.
        fake.requests.clear()
        fake.fail_next(1, status=429, retry_after=3600)
        with pytest.raises(SourceError):
            await source.observe("AZ", ["tiktok"], IN_BLOCK + timedelta(hours=4))
        with pytest.raises(SourceError):
            await source.observe("AZ", ["tiktok"], IN_BLOCK + timedelta(hours=4))
        assert len(fake.requests) == 1


async def test_a_client_error_is_not_retried(episode):
    sleeps = Sleeps()
    async with FakeOoni(episode) as fake, OoniSource(fake.url, sleep=sleeps) as source:
        fake.fail_next(1, status=400)
        with pytest.raises(SourceError):
            await source.observe("AZ", ["tiktok"], IN_BLOCK)
    assert len(fake.requests) == 1 and sleeps == []


async def test_an_outage_is_logged_once_and_so_is_the_recovery(episode, caplog):
    caplog.set_level(logging.DEBUG, logger="bot.sources.ooni")
    async with FakeOoni(episode) as fake, OoniSource(fake.url, sleep=Sleeps(), retries=4) as source:
        fake.outage(True)
        for _ in range(3):
            with pytest.raises(SourceError):
                await source.observe("AZ", ["tiktok"], IN_BLOCK)
        assert len(fake.requests) == 15
        fake.outage(False)
        await source.observe("AZ", ["tiktok"], IN_BLOCK)
        await source.observe("AZ", ["tiktok"], IN_BLOCK + timedelta(minutes=15))
    records = [r for r in caplog.records if r.name == "bot.sources.ooni"]
    warnings = [r for r in records if r.levelno >= logging.WARNING]
    recoveries = [r for r in records if "recovered" in r.getMessage()]
    assert len(warnings) == 1 and "503" in warnings[0].getMessage()
    assert len(recoveries) == 1 and "15 failed attempts" in recoveries[0].getMessage()
    assert source.errors == 15


async def test_a_five_failure_outage_gives_one_warning(episode, caplog):
    caplog.set_level(logging.INFO, logger="bot.sources.ooni")
    async with FakeOoni(episode) as fake, OoniSource(fake.url, sleep=Sleeps(), retries=6) as source:
        fake.fail_next(5, status=503)
        await source.observe("AZ", ["tiktok"], IN_BLOCK)
    records = [r for r in caplog.records if r.name == "bot.sources.ooni"]
    assert [r.levelname for r in records] == ["WARNING", "INFO"]
    assert "recovered after 5 failed attempts" in records[1].getMessage()


# ---------------------------------------------------------------------------------------------
# History for the backtest
# ---------------------------------------------------------------------------------------------


async def test_history_chunks_into_hourly_requests_of_at_most_seven_days(episode):
    by_link = rows_by_link(episode)
    since, until = date(2022, 9, 12), date(2022, 9, 22)
    async with FakeOoni(episode) as fake, OoniSource(fake.url) as source:
        observations = await source.history("AZ", ["tiktok"], since, until)
    aggregations = [q for path, q in fake.requests if path == "/api/v1/aggregation"]
    assert [(q["since"], q["until"]) for q in aggregations] == [
        ("2022-09-12", "2022-09-19"), ("2022-09-19", "2022-09-22")]
    assert all(q["time_grain"] == "hour" and q["axis_x"] == "measurement_start_day" for q in aggregations)

    assert observations and all(o.end - o.start == timedelta(hours=1) for o in observations)
    assert all(datetime(2022, 9, 12, tzinfo=UTC) <= o.start < datetime(2022, 9, 22, tzinfo=UTC) for o in observations)
    assert sum(o.measurements for o in observations) == len(episode)
    blocked = [o for o in observations if o.asn in AZ_BLOCKED_ASNS and o.start < datetime(2022, 9, 16, 12, tzinfo=UTC)]
    assert sum(o.blocked_signs for o in blocked) >= 0.8 * sum(o.valid for o in blocked)
    for o in observations:
        if o.blocked_signs:
            assert o.method == "tls" and o.evidence
        else:
            assert o.evidence == ()
        for link in o.evidence:  # only its own hour's measurements
            started = datetime.fromisoformat(by_link[link]["measurement_start_time"]).replace(tzinfo=UTC)
            assert o.start <= started < o.end and by_link[link]["probe_asn"] == o.asn
    assert not any(o.blocked_signs for o in observations if o.start >= datetime(2022, 9, 16, 12, tzinfo=UTC))


async def test_history_falls_back_to_fastpath_blocking_type_without_the_analysis_pipeline(episode):
    # Without the pipeline's rows the method comes from fastpath: HTTPS "http-failure" is the TLS handshake.
    plain = [{k: v for k, v in row.items() if k != "_analysis"} for row in episode]
    async with FakeOoni(plain) as fake, OoniSource(fake.url) as source:
        observations = await source.history("AZ", ["tiktok"], date(2022, 9, 14), date(2022, 9, 15))
    assert {o.method for o in observations if o.blocked_signs} == {"tls"}
    assert "/api/v1/aggregation/analysis" in fake.paths()
