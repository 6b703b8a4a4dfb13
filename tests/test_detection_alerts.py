"""What the detector's new facts look like to a journalist: the intermittent pattern named in the blocked
alert and /status (en, az, ru), and a `changed` alert that says what changed and when."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from bot.detection.event import Change
from bot.detector import Event, detect
from bot.notifier import render_alert
from bot.observations import Observation
from bot.render import render
from bot.status import platform_status

UTC = timezone.utc
HOUR = timedelta(hours=1)
T0 = datetime(2022, 9, 10, tzinfo=UTC)  # a Saturday
DELTA, AZERCELL = 29049, 31721


@pytest.fixture(scope="module")
def state():
    # to Saturday 17 Sep 10:00 UTC: five weekdays blocked, a clean weekend morning
    return _until(datetime(2022, 9, 17, 10, tzinfo=UTC))


def _until(end: datetime):
    """Two networks measured hourly: anomalous 04:00–13:00 UTC (08:00–17:00 in Baku) on weekdays, clean otherwise."""
    state = None
    k = 0
    while T0 + (k + 1) * HOUR <= end:
        start = T0 + k * HOUR
        on = start.weekday() < 5 and 4 <= start.hour < 13
        observations = [Observation("AZ", "tiktok", asn, start, start + HOUR, 4, 4 if on else 0, method="tls")
                        for asn in (DELTA, AZERCELL)]
        state, _ = detect(state, observations, start + HOUR)
        k += 1
    return state


EXPECTED = {
    "en": ("Intermittent: daytime only (about 08:00–17:00 local time), off on weekends.",
           "Last blocked measurement: September 16, 2022, 13:00 UTC · last clean one: September 17, 2022, 10:00 UTC"),
    "az": ("Fasilələrlə: yalnız gündüz (yerli vaxtla təxminən 08:00–17:00), həftəsonları yoxdur.",
           "Son bloklanmış ölçmə:"),
    "ru": ("С перерывами: только днём (примерно 08:00–17:00 по местному времени), в выходные нет.",
           "Последнее измерение с блокировкой:"),
}


def test_the_detector_sees_a_weekday_daytime_block_in_local_time(state):
    assert state.blocked_asns == (DELTA, AZERCELL) and state.intermittent
    p = state.pattern
    assert (p.zone, p.start_hour, p.end_hour, p.daily, p.weekends_off) == ("Asia/Baku", 8, 17, True, True)
    assert p.last_blocked == datetime(2022, 9, 16, 13, tzinfo=UTC)  # Friday's last blocked hour ends 13:00 UTC
    assert p.last_clean == datetime(2022, 9, 17, 10, tzinfo=UTC)


@pytest.mark.parametrize("lang", ["en", "az", "ru"])
def test_the_blocked_alert_names_the_pattern(state, lang):
    event = Event("blocked", "AZ", "tiktok", datetime(2022, 9, 17, 10, tzinfo=UTC), state.blocked_asns,
                  method="tls", since=state.blocked_since, anomalies=state.anomalies, measurements=state.measurements,
                  intermittent=True, pattern=state.pattern)
    text = render_alert(event, lang)
    pattern, last = EXPECTED[lang]
    assert pattern in text and last in text
    # without a pattern the alert says only that access comes and goes
    assert pattern not in render_alert(replace(event, pattern=None), lang)


@pytest.mark.parametrize("lang", ["en", "az", "ru"])
def test_status_names_the_pattern(state, lang):
    status = platform_status("AZ", "tiktok", state)
    assert status.pattern == state.pattern
    text = render("status", lang, country=status.country, statuses=[status], findings=[])
    pattern, last = EXPECTED[lang]
    assert pattern in text and last in text


def test_a_changed_alert_says_what_changed_and_when():
    event = Event(
        "changed", "AZ", "tiktok", datetime(2022, 9, 14, 16, tzinfo=UTC), (DELTA, AZERCELL, 41997),
        added=(41997,), cleared=(28787,), method="tls", since=datetime(2022, 9, 14, 6, tzinfo=UTC),
        anomalies=90, measurements=100,
        changes=(Change(41997, "added", datetime(2022, 9, 14, 7, tzinfo=UTC)),
                 Change(28787, "cleared", datetime(2022, 9, 14, 9, tzinfo=UTC))),
    )
    text = render_alert(event, "en")
    assert "AS41997 Connect CJSC: blocked since September 14, 2022, 07:00 UTC" in text
    assert "AS28787 Aztelekom LLC: no longer blocked since September 14, 2022, 09:00 UTC" in text
    assert text.index("AS41997 Connect CJSC: blocked") < text.index("AS28787 Aztelekom LLC: no longer")
    ru = render_alert(event, "ru")
    assert "AS41997 Connect CJSC: заблокирован с" in ru and "AS28787 Aztelekom LLC: больше не заблокирован с" in ru
