"""The outage detector (bot/outage.py), pure: IODA's alerts in, outage/restored events out.

The alerts are the Uganda 2026 rows the fake IODA serves (tests/fixtures/ioda/), turned into
OutageAlerts as the IODA source turns them, so these tests and the end-to-end ones share one story.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from bot.outage import OutageAlert, OutageState, detect_outage
from tests.fakes.ioda import at, uganda_alerts

UTC = timezone.utc
ONSET, BACK = at("2026-01-13T15:00:00"), at("2026-01-17T21:30:00")


def alerts() -> list[OutageAlert]:
    cc, rows = uganda_alerts()
    return [
        OutageAlert(cc, r["entity"]["type"], r["entity"]["code"], r["datasource"],
                    datetime.fromtimestamp(r["time"], UTC), r["level"], r["value"], r["historyValue"], link=f"L{i}")
        for i, r in enumerate(rows)
    ]


def poll(every: timedelta, start: datetime, end: datetime, state=None):
    """Every event of a live poller seeing, at each tick, the alerts published by then."""
    events, now = [], start
    everything = alerts()
    while now <= end:
        state, new = detect_outage(state, [a for a in everything if a.time <= now], now, country="UG")
        events += new
        now += every
    return state, events


def test_the_shutdown_gives_one_outage_and_one_restored_with_signals_networks_and_duration():
    state, events = poll(timedelta(minutes=15), at("2026-01-09T00:00:00"), at("2026-01-19T00:00:00"))
    assert [e.kind for e in events] == ["outage", "restored"]
    outage, restored = events
    assert outage.since == ONSET and outage.time == ONSET + timedelta(hours=1)  # the hold: an hour of critical
    assert restored.since == ONSET and restored.ended == BACK and restored.duration == BACK - ONSET
    assert restored.time == BACK  # the first poll that saw the last signal recover
    names = dict(restored.signals)
    assert list(names) == ["bgp", "ping-slash24", "merit-nt"]  # the country's own three signals
    assert round(names["ping-slash24"], 2) == 0.85 and round(names["merit-nt"], 2) == 0.91 and round(names["bgp"], 2) == 0.29
    assert restored.asns == (20294, 21491, 37075)  # every network IODA saw down during it
    assert outage.evidence and all(link.startswith("L") for link in outage.evidence)
    assert not state.on


def test_a_dip_ioda_closes_within_the_hour_is_no_outage():
    state, events = poll(timedelta(minutes=5), at("2026-01-10T02:00:00"), at("2026-01-10T06:00:00"))
    assert events == [] and not state.on
    assert state.signals["country/UG/ping-slash24"].level == "normal"


def test_google_traffic_alone_is_no_outage():
    _, events = poll(timedelta(minutes=30), at("2026-01-11T08:00:00"), at("2026-01-11T14:00:00"))
    assert events == []


def test_an_outage_seen_only_after_it_ended_gives_both_events_in_order():
    _, events = detect_outage(None, alerts(), at("2026-01-19T00:00:00"), country="UG")
    assert [(e.kind, e.since) for e in events] == [("outage", ONSET), ("restored", ONSET)]
    assert events[1].ended == BACK


def test_nothing_new_or_an_empty_answer_never_restores():
    state, events = poll(timedelta(hours=1), at("2026-01-13T12:00:00"), at("2026-01-14T12:00:00"))
    assert [e.kind for e in events] == ["outage"] and state.on
    for hours in range(1, 48):  # IODA answers nothing new for two days: the outage stays
        state, new = detect_outage(state, [], at("2026-01-14T12:00:00") + timedelta(hours=hours), country="UG")
        assert new == [] and state.on
    # the same alerts again (each poll's window overlaps the last) change nothing either
    state, new = detect_outage(state, [a for a in alerts() if a.time <= at("2026-01-14T00:00:00")],
                               at("2026-01-16T12:00:00"), country="UG")
    assert new == [] and state.on and state.since == ONSET


def test_state_round_trips_through_json_mid_outage():
    state, _ = poll(timedelta(hours=1), at("2026-01-13T12:00:00"), at("2026-01-14T12:00:00"))
    back = OutageState.from_dict(state.to_dict())
    assert back == state
    _, events = detect_outage(back, alerts(), at("2026-01-18T00:00:00"), country="UG")
    assert [e.kind for e in events] == ["restored"]


def test_event_json_is_the_contract_line():
    _, events = detect_outage(None, alerts(), at("2026-01-19T00:00:00"), country="UG")
    line = events[1].to_json()
    assert list(line)[:7] == ["time", "country", "platform", "kind", "asns", "method", "evidence"]
    assert (line["country"], line["platform"], line["kind"], line["method"]) == ("UG", "internet", "restored", None)
    assert line["time"] == "2026-01-19T00:00:00Z" and line["since"] == "2026-01-13T15:00:00Z"
    assert line["duration_seconds"] == int((BACK - ONSET).total_seconds())
