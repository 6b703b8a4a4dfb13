"""The crowd's rules, pure: people not reports, networks and volume as weight, never one person, the throttle;
and the pseudonyms and button signatures they rest on."""

from __future__ import annotations

import os
import stat

import pytest

from bot import crowd
from bot.crowd import Report, Rules
from bot.pseudonym import Pseudonyms, load_or_create_secret, secret_path

NOW = 1_663_150_000  # 2022-09-14, during the AZ TikTok block
RULES = Rules(min_reporters=5, window=7200)
AZERCELL, DELTA, AZTELEKOM = 31721, 29049, 28787


def person(n: int) -> bytes:
    return n.to_bytes(16, "big")


def report(who: int, ago: int = 60, *, asn: int | None = None, symptom: str = "blocked", platform: str = "tiktok",
           country: str = "AZ") -> Report:
    return Report(person(who), country, platform, symptom, NOW - ago, asn)


def test_distinct_people_not_reports_make_a_signal():
    four = [report(i) for i in range(4)]
    assert crowd.assess(four, now=NOW, rules=RULES).reporters == 4
    assert not crowd.assess(four, now=NOW, rules=Rules(min_reporters=5, window=7200, volume_weight=0)).is_signal
    five = four + [report(4)]
    assessment = crowd.assess(five, now=NOW, rules=RULES)
    assert assessment.is_signal and assessment.reporters == 5


def test_one_person_never_makes_a_signal_however_often_or_on_however_many_networks():
    spam = [report(1, ago=i, asn=asn) for i in range(500) for asn in (AZERCELL, DELTA, AZTELEKOM)]
    for min_reporters in (2, 3, 5):
        assessment = crowd.assess(spam, now=NOW, rules=Rules(min_reporters=min_reporters, window=7200))
        assert assessment.reporters == 1
        assert not assessment.is_signal
    assert crowd.find_signals([crowd.tally(spam, now=NOW, window=7200)], rules=Rules(min_reporters=2, window=7200)) == []


def test_two_people_is_the_floor_even_with_every_bonus():
    rules = Rules(min_reporters=2, window=7200, network_weight=5, volume_weight=5)
    assert not crowd.assess([report(1, asn=AZERCELL)], now=NOW, rules=rules).is_signal
    assert crowd.assess([report(1, asn=AZERCELL), report(2, asn=DELTA)], now=NOW, rules=rules).is_signal


def test_different_networks_and_volume_above_usual_make_it_sooner():
    on_one_network = [report(i, asn=AZERCELL) for i in range(3)]
    on_three_networks = [report(0, asn=AZERCELL), report(1, asn=DELTA), report(2, asn=AZTELEKOM)]
    quiet_pair, busy_pair = 0.2, 10.0  # reporters per window, usually
    assert not crowd.assess(on_one_network, now=NOW, rules=RULES, usual=busy_pair).is_signal
    assert not crowd.assess(on_three_networks, now=NOW, rules=RULES, usual=busy_pair).is_signal  # 3 + 1
    assert not crowd.assess(on_one_network, now=NOW, rules=RULES, usual=quiet_pair).is_signal  # 3 + 1
    signal = crowd.assess(on_three_networks, now=NOW, rules=RULES, usual=quiet_pair)  # 3 + 1 + 1
    assert signal.is_signal and signal.above_usual and signal.known_networks == 3
    # where people report every day, five is the bar and volume brings nothing
    assert not crowd.assess(on_three_networks, now=NOW, rules=RULES, usual=1.5).above_usual
    # and a pair with no history has no usual level to be above
    assert not crowd.assess(on_three_networks, now=NOW, rules=RULES, usual=0.0).is_signal


def test_the_network_bonus_cannot_outgrow_the_people():
    # two people naming networks must not weigh like three
    two = [report(0, asn=AZERCELL), report(1, asn=DELTA)]
    assessment = crowd.assess(two, now=NOW, rules=Rules(min_reporters=5, window=7200, network_weight=10, volume_weight=0))
    assert assessment.score == 2 + 10 * 1


def test_only_the_window_counts_and_each_person_by_their_first_report():
    old = [report(i, ago=7300) for i in range(10)]
    assert crowd.assess(old, now=NOW, rules=RULES) is None
    mixed = old + [report(1, ago=100, symptom="slow"), report(1, ago=50, symptom="down"), report(2, ago=10)]
    assessment = crowd.assess(mixed, now=NOW, rules=RULES)
    assert assessment.reporters == 2
    assert dict(assessment.symptoms) == {"slow": 1, "blocked": 1}
    assert assessment.first_at == NOW - 100 and assessment.last_at == NOW - 10


def test_symptom_and_networks_are_summarised_without_anyone():
    reports = [report(0, asn=AZERCELL, symptom="slow"), report(1, asn=AZERCELL, symptom="slow"),
               report(2, symptom="blocked"), report(3, asn=DELTA, symptom="slow")]
    assessment = crowd.assess(reports, now=NOW, rules=RULES)
    assert assessment.symptom == "slow"
    assert assessment.networks == ((AZERCELL, "Azercell Telecom Ltd", 2), (DELTA, "Delta Telecom Ltd", 1), (None, None, 1))
    assert not any(isinstance(value, bytes) for value in vars(assessment).values())


def test_find_signals_keeps_pairs_apart():
    reports = [report(i, platform="tiktok") for i in range(5)] + [report(i, platform="whatsapp") for i in range(3)]
    reports += [report(i, country="AM") for i in range(2)]
    pairs = {}
    for r in reports:
        pairs.setdefault((r.country, r.platform), []).append(r)
    tallies = [crowd.tally(group, now=NOW, window=7200) for group in pairs.values()]
    found = crowd.find_signals(tallies, rules=Rules(min_reporters=5, window=7200, volume_weight=0))
    assert [(a.country, a.platform, a.reporters) for a in found] == [("AZ", "tiktok", 5)]
    found = crowd.find_signals(tallies, rules=Rules(min_reporters=4, window=7200), usual={("AZ", "whatsapp"): 0.1, ("AM", "tiktok"): 0.1})
    assert [(a.platform, a.country, a.score) for a in found] == [("tiktok", "AZ", 5), ("whatsapp", "AZ", 4)]


def test_usual_level_is_reports_per_window():
    four_weeks_of_windows = 28 * 86400 / 7200
    assert crowd.usual_level(28, window=7200) == pytest.approx(28 / four_weeks_of_windows)
    assert crowd.usual_level(0, window=7200) == 0


def test_could_signal_leaves_out_only_what_no_usual_level_could_lift():
    rules = Rules(min_reporters=5, window=7200)
    for count in range(1, 7):
        counted = crowd.tally([report(i) for i in range(count)], now=NOW, window=7200)
        lifted = crowd.judge(counted, rules=rules, usual=0.01).is_signal
        assert crowd.could_signal(counted, rules) == (lifted or counted.reporters >= 5)
        assert crowd.could_signal(counted, rules) == (count >= 4)


def test_best_score_bounds_what_any_reports_could_weigh():
    for count in range(1, 8):
        people = [report(i, asn=asn) for i, asn in zip(range(count), range(100, 100 + count))]
        assert crowd.assess(people, now=NOW, rules=RULES, usual=0.01).score <= RULES.best_score(count)


def test_throttle_counts_a_pair_once_and_stops_a_burst():
    rules = Rules(window=7200, burst_limit=3, burst_period=3600)
    mine = [report(1, ago=600, platform="tiktok")]
    assert crowd.throttle(mine, country="AZ", platform="tiktok", now=NOW, rules=rules) == crowd.DUPLICATE
    assert crowd.throttle(mine, country="AZ", platform="whatsapp", now=NOW, rules=rules) == crowd.ACCEPT
    assert crowd.throttle(mine, country="AM", platform="tiktok", now=NOW, rules=rules) == crowd.ACCEPT
    burst = [report(1, ago=60 * i, platform=p) for i, p in enumerate(("tiktok", "whatsapp", "telegram"))]
    assert crowd.throttle(burst, country="AZ", platform="signal", now=NOW, rules=rules) == crowd.TOO_MANY
    later = NOW + 7200 + 1
    assert crowd.throttle(burst, country="AZ", platform="tiktok", now=later, rules=rules) == crowd.ACCEPT


def test_rules_from_settings_never_go_below_two_people():
    class Settings:
        signal_min_reporters = 1
        signal_window = 600.0

    rules = Rules.from_settings(Settings())
    assert rules.min_reporters == 2 and rules.window == 600


# -- pseudonyms --------------------------------------------------------------------------------


def test_pseudonyms_are_stable_keyed_and_reveal_no_id(tmp_path):
    database = tmp_path / "data" / "blockwatch.db"
    first = Pseudonyms.for_database(database)
    again = Pseudonyms.for_database(database)
    user = 5_550_001_234
    assert first.reporter(user) == again.reporter(user)
    assert first.reporter(user) != first.reporter(user + 1)
    assert len(first.reporter(user)) == 16
    assert str(user).encode() not in first.reporter(user)
    other_install = Pseudonyms.for_database(tmp_path / "elsewhere" / "blockwatch.db")
    assert other_install.reporter(user) != first.reporter(user)


def test_the_secret_lives_beside_the_database_readable_by_the_owner_only(tmp_path):
    database = tmp_path / "blockwatch.db"
    path = secret_path(database)
    assert path == tmp_path / "blockwatch.db.secret"
    secret = load_or_create_secret(path)
    assert len(secret) == 32 and path.read_bytes() == secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    os.chmod(path, 0o644)
    assert load_or_create_secret(path) == secret  # never replaced …
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # … and closed again
    path.write_bytes(b"short")
    with pytest.raises(RuntimeError, match="shorter"):
        load_or_create_secret(path)
    assert secret_path(":memory:") is None


def test_signatures_bind_their_text():
    signer = Pseudonyms(b"k" * 32)
    signature = signer.sign("100:200:AZ:0:b:-:abc")
    assert signer.verify("100:200:AZ:0:b:-:abc", signature)
    assert not signer.verify("100:201:AZ:0:b:-:abc", signature)
    assert not Pseudonyms(b"j" * 32).verify("100:200:AZ:0:b:-:abc", signature)
    assert len(signature) == 12


# -- bursts of new accounts (issue 12) ---------------------------------------------------------


def pace(arrivals: list[int], rules: Rules = RULES) -> list[bool]:
    """Which of a pair's new reporters, arriving at these times, count as people."""
    tokens, last, admitted = None, None, []
    for at in arrivals:
        counted, tokens = crowd.admit_fresh(tokens, last, at, rules)
        last = at
        admitted.append(counted)
    return admitted


def test_new_reporters_at_a_human_pace_all_count():
    assert all(pace([NOW + 2 * i for i in range(50)]))  # one every 2 s, for as long as it goes on
    assert all(pace([NOW + i for i in range(5)]))  # five people one second apart: SIGNAL_MIN_REPORTERS
    assert all(pace([NOW, NOW, NOW]))  # three at the very same second still count


def test_a_burst_of_new_accounts_counts_three_then_one_every_two_seconds():
    assert pace([NOW] * 100).count(True) == 3
    assert pace([NOW] * 50 + [NOW + 1] * 50).count(True) == 3  # half a token is no token
    assert pace([NOW] * 50 + [NOW + 2] * 50).count(True) == 4
    assert pace([NOW] * 100 + [NOW + 60] * 5).count(True) == 6  # refilled after a minute: full again, not more


def test_held_accounts_are_a_burst_never_people_and_bring_no_volume_bonus():
    fresh = [Report(person(i), "UG", "whatsapp", "slow", NOW, fresh=True, held=i >= 3) for i in range(100)]
    assessment = crowd.assess(fresh, now=NOW, rules=RULES, usual=0.01)  # far above a tiny usual level
    assert assessment.reporters == 3 and not assessment.above_usual and assessment.score == 3
    assert not assessment.is_signal
    assert (assessment.burst_accounts, assessment.burst_held, assessment.burst_seconds) == (100, 97, 0)
    assert assessment.worth_review  # the admins are told: as a burst
    people = [Report(person(i), "UG", "whatsapp", "slow", NOW - 10 * i, fresh=True) for i in range(5)]
    human = crowd.assess(people, now=NOW, rules=RULES)
    assert human.is_signal and human.reporters == 5 and human.burst_accounts == 0
