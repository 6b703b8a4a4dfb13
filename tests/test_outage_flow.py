"""Internet outages end to end: the real Application, the fake Bot API, the fake OONI and the fake IODA.

`/watch UG internet twitter` → IODA's signals drop (the Uganda 2026 shutdown) → one outage alert →
while it lasts, OONI's Twitter reads "no measurements: internet outage" → IODA's signals recover →
one restored alert → Twitter's own state again. The poll is driven by an injected clock that
publishes to both fakes what their APIs would hold by then. And /status for a country nobody
watches: fetched on demand, fifty chats asking at once cost one fetch.
"""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta

from bot.poller import Poller
from bot.sources.ioda import IodaSource
from bot.sources.ooni import OoniSource
from tests.fakes.ioda import FakeIoda, at, uganda_alerts
from tests.fakes.ooni import FakeOoni, PublishingClock, _templates, load_fastpath_background, no_sleep, redate
from tests.harness import running_bot

MTN = 20294
CHAT = 100


def uganda_twitter_rows(start: datetime, end: datetime) -> list[dict]:
    """Twitter measured on MTN Uganda every 10 minutes until the shutdown: real OK HTTPS rows re-dated (tests/fakes/ooni.redate)."""
    rng = random.Random(13)
    _, ok = _templates(load_fastpath_background())
    rows, slot = [], start
    while slot < end:
        rows.append(redate(rng.choice(ok), cc="UG", asn=MTN, when=slot + timedelta(seconds=rng.randrange(600)),
                           rng=rng, input="https://twitter.com/"))
        slot += timedelta(minutes=10)
    return sorted(rows, key=lambda r: r["measurement_start_time"])


class BothClock(PublishingClock):
    """Moving it publishes to the fake OONI the rows measured by then and to the fake IODA the alerts raised by then."""

    def __init__(self, ooni: FakeOoni, rows: list[dict], ioda: FakeIoda, now: datetime):
        self.ioda = ioda
        super().__init__(ooni, rows, now)

    def move(self, now: datetime) -> None:
        self.ioda.now = now
        super().move(now.replace(tzinfo=None))
        self.now = now


async def test_watch_internet_outage_alert_then_restored_and_ooni_reads_no_measurements(telegram, tmp_path):
    cc, alerts = uganda_alerts()
    rows = uganda_twitter_rows(datetime(2026, 1, 12), datetime(2026, 1, 13, 14, 50))
    async with FakeOoni() as ooni, FakeIoda({cc: alerts}) as ioda:
        clock = BothClock(ooni, rows, ioda, at("2026-01-13T12:00:00"))
        async with running_bot(telegram, tmp_path / "bw.db", sending=True) as bot:
            bot.services.clock = clock
            poller = Poller(bot.services, OoniSource(ooni.url, sleep=no_sleep), clock=clock,
                            outages=IodaSource(ioda.url, sleep=no_sleep))
            try:
                added = await bot.say(f"/watch UG internet twitter", chat_id=CHAT)
                assert "Watching Uganda (UG)" in added.text
                assert (await poller.poll_once()).errors == 0
                before = (await bot.say("/status UG", chat_id=CHAT)).result["text"]
                assert "Twitter/X: no signs of blocking" in before and "Internet: no outage" in before

                clock.move(at("2026-01-13T15:30:00"))  # IODA's signals are critical, but not yet for an hour
                assert (await poller.poll_once()).events == []
                clock.move(at("2026-01-13T16:15:00"))
                [outage] = (await poller.poll_once()).events
                assert outage.kind == "outage"
                [alert] = await telegram.wait_for(lambda c: c.text and "Internet outage" in c.text, chat_id=CHAT)
                text = alert.result["text"]  # what the reader sees
                assert text.startswith("🌐 Internet outage — ") and "Uganda (UG)" in text
                assert "Since: January 13, 2026" in text and "15:00" in text
                assert "active probing (networks that answer) 85% below normal" in text
                assert "network telescope (background traffic) 91% below normal" in text
                assert "BGP" not in text  # critical since 15:20: not yet an hour at 16:15
                assert "AS37075" in text and "AS20294" in text  # Airtel and MTN were down an hour by 16:15
                assert "https://ioda.inetintel.cc.gatech.edu/country/UG?from=" in alert.params["text"]

                during = (await bot.say("/status UG", chat_id=CHAT)).result["text"]
                assert "Twitter/X: no measurements: internet outage since January 13, 2026" in during
                assert "Internet: outage since January 13, 2026" in during
                assert "unknown" not in during and "no signs of blocking" not in during
                listed = (await bot.say("/watches", chat_id=CHAT)).result["text"]
                assert "Twitter/X: no measurements: internet outage since" in listed

                for day in (14, 15, 16):  # days of shutdown: no OONI data, IODA unchanged, nothing sent
                    clock.move(at(f"2026-01-{day}T12:00:00"))
                    assert (await poller.poll_once()).events == []
                clock.move(at("2026-01-17T22:00:00"))
                [restored] = (await poller.poll_once()).events
                assert restored.kind == "restored"
                [back] = await telegram.wait_for(lambda c: c.text and "Internet restored" in c.text, chat_id=CHAT)
                assert "It lasted 4 days, 6 hours" in back.result["text"] and "AS21491" in back.result["text"]
                assert "BGP (announced networks) 29% below normal" in back.result["text"]  # at its worst, every signal
                after = (await bot.say("/status UG twitter", chat_id=CHAT)).result["text"]
                assert "Twitter/X: no signs of blocking" in after  # its own state again

                clock.move(at("2026-01-18T12:00:00"))
                assert (await poller.poll_once()).events == []
                outage_alerts = [c for c in telegram.sent(CHAT) if c.text and ("Internet outage" in c.text or "Internet restored" in c.text)]
                assert len(outage_alerts) == 2  # each once
            finally:
                await poller.close()


async def test_status_of_an_unwatched_country_is_fetched_once_for_fifty_chats(telegram, tmp_path):
    cc, alerts = uganda_alerts()
    async with FakeOoni() as ooni, FakeIoda({cc: alerts}) as ioda:
        async with running_bot(telegram, tmp_path / "bw.db", polling=True, poll_interval=3600,
                               ooni_api_url=ooni.url, ioda_api_url=ioda.url) as bot:
            chats = range(1000, 1050)
            for chat in chats:
                telegram.send_text(chat, chat, "/status UG")
            replies = [(await telegram.wait_sent(chat))[0] for chat in chats]
            assert all("Uganda (UG)" in r.result["text"] for r in replies)
            # one on-demand fetch: OONI's budget for a country (at most 3) and IODA's two, for fifty chats
            assert bot.services.status_lookup.fetches == 1
            assert 1 <= len(ooni.requests) <= 3 and len(ioda.requests) == 2
            # the real clock is long past the shutdown: IODA's last word on UG is "normal"
            assert all("Internet: no outage" in r.result["text"] for r in replies)
            again = await bot.say("/status UG internet", chat_id=1000)  # cached for a poll interval
            assert "Internet: no outage" in again.result["text"]
            assert len(ioda.requests) == 2 and bot.services.status_lookup.fetches == 1


async def test_status_on_demand_stays_within_its_budget_of_countries(telegram, tmp_path):
    async with FakeOoni() as ooni, FakeIoda() as ioda:
        async with running_bot(telegram, tmp_path / "bw.db", polling=True, poll_interval=3600,
                               ooni_api_url=ooni.url, ioda_api_url=ioda.url) as bot:
            lookup = bot.services.status_lookup
            countries = ["KE", "TZ", "RW", "ET", "SD", "NG", "GH", "CM", "SN", "ML", "NE", "TD"]
            replies = await asyncio.gather(*(bot.say(f"/status {c}", chat_id=2000 + i) for i, c in enumerate(countries)))
            assert all(r.text for r in replies)
            assert lookup.fetches == lookup.countries_per_interval == 10  # the other two read "not known yet"
            assert sum("not known yet" in r.text for r in replies) >= 2
            assert len(ooni.requests) <= 3 * 10 and len(ioda.requests) == 2 * 10


async def test_iodas_faults_during_an_outage_keep_it_on_and_send_nothing(telegram, tmp_path):
    cc, alerts = uganda_alerts()
    async with FakeOoni() as ooni, FakeIoda({cc: alerts}) as ioda:
        clock = BothClock(ooni, [], ioda, at("2026-01-13T16:30:00"))
        async with running_bot(telegram, tmp_path / "bw.db", sending=True) as bot:
            bot.services.clock = clock
            poller = Poller(bot.services, OoniSource(ooni.url, sleep=no_sleep), clock=clock,
                            outages=IodaSource(ioda.url, sleep=no_sleep, retries=2, timeout=0.3))
            try:
                await bot.say("/watch UG internet", chat_id=CHAT)
                assert [e.kind for e in (await poller.poll_once()).events] == ["outage"]
                await telegram.wait_for(lambda c: c.text and "Internet outage" in c.text, chat_id=CHAT)
                for hour, fault in enumerate((503, 429, "malformed", "empty", "timeout"), start=1):
                    ioda.fail_next(3, status=fault)  # more than the retries: this cycle has no IODA data
                    clock.move(at("2026-01-13T16:30:00") + timedelta(hours=hour))
                    result = await poller.poll_once()
                    assert (result.events, result.failed) == ([], ["UG"])
                    shown = (await bot.say("/status UG internet", chat_id=CHAT)).result["text"]
                    assert "Internet: outage since January 13, 2026" in shown  # never "no outage", never unknown
                clock.move(at("2026-01-14T00:00:00"))  # IODA answers again, the outage still on: nothing new
                assert (await poller.poll_once()).events == []
                sent = [c for c in telegram.sent(CHAT) if c.text and ("Internet outage" in c.text or "Internet restored" in c.text)]
                assert len(sent) == 1  # the one outage alert; no restored
            finally:
                await poller.close()
