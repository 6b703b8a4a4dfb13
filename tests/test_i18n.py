"""Translations: every word the templates mark is in the az and ru catalogs (extracted at test time),
placeholders survive translation, every template renders valid Telegram HTML in every language,
and dates, numbers and durations are written each language's way."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone

import pytest
from babel.messages.pofile import read_po, write_po

from bot import catalog, i18n, recap
from bot.detector import Event
from bot.outage import OutageEvent
from bot.notifier import render_alert
from bot.render import LANGUAGES, format_duration, format_number, format_time, render, telegram_length
from bot.status import PlatformStatus
from tests.fakes.telegram import parse_html

T0 = datetime(2022, 9, 14, 6, tzinfo=timezone.utc)
AZ = catalog.find_country("AZ")


def test_every_message_in_the_templates_is_translated_in_every_catalog():
    source = i18n.extract()
    assert len(source) > 50  # the extraction found the templates
    problems = [problem for lang in i18n.translated_languages() for problem in i18n.problems(lang, source)]
    assert problems == [], "run `python -m bot.i18n extract`, then translate:\n" + "\n".join(problems)


def test_catalogs_hold_only_messages_the_templates_use():
    used = {message.id for message in i18n.extract() if message.id}
    for lang in i18n.translated_languages():
        stale = [message.id for message in i18n.load(lang) if message.id and message.id not in used]
        assert stale == [], f"{lang}: no template uses {stale}; run `python -m bot.i18n extract`"


def test_the_check_catches_a_missing_message_and_a_lost_placeholder(tmp_path, monkeypatch):
    ru = tmp_path / "ru" / "LC_MESSAGES" / "messages.po"
    ru.parent.mkdir(parents=True)
    shutil.copy(i18n.po_path("ru"), ru)
    with ru.open("rb") as handle:
        broken = read_po(handle, locale="ru")
    del broken["Now:"]
    broken["Watching %(country)s:"].string = "Подписка оформлена:"  # %(country)s lost
    with ru.open("wb") as handle:
        write_po(handle, broken)
    monkeypatch.setattr(i18n, "LOCALES", tmp_path)
    found = i18n.problems("ru")
    assert "ru: missing 'Now:'" in found
    assert any("placeholders" in problem and "Подписка оформлена:" in problem for problem in found)


def event(kind: str, **extra) -> Event:
    values = dict(
        asns=(29049, 41997, 31721), method="tls", since=T0, anomalies=31, measurements=38,
        evidence=("20220914T061502Z_webconnectivity_AZ_29049_n1_aaa", "20220914T062000Z_webconnectivity_AZ_31721_n1_bbb"),
    )
    if kind == "unblocked":
        values.update(cleared=values["asns"], duration=timedelta(days=2, hours=6), ended=T0 + timedelta(days=2, hours=6))
    if kind == "changed":
        values.update(asns=(29049, 31721), added=(31721,), cleared=(41997,), intermittent=True)
    values.update(extra)
    return Event(kind, "AZ", "tiktok", T0 + timedelta(hours=3), **values)


def statuses() -> list[PlatformStatus]:
    tiktok, whatsapp, signal = (catalog.PLATFORMS[name] for name in ("tiktok", "whatsapp", "signal"))
    return [
        PlatformStatus(AZ, tiktok, "blocked", networks=((29049, "Delta Telecom Ltd"), (31721, None)), since=T0, method="tls",
                       anomalies=31, measurements=38, evidence=("https://explorer.ooni.org/m/x",), checked=T0,
                       chart="https://explorer.ooni.org/chart/mat?probe_cc=AZ&test_name=web_connectivity"),
        PlatformStatus(AZ, whatsapp, "ok", checked=T0),
        PlatformStatus(AZ, signal, "unknown"),
        PlatformStatus(AZ, catalog.PLATFORMS["internet"], "outage", networks=((29049, "Delta Telecom Ltd"),), since=T0,
                       checked=T0, signals=(("bgp", 0.29), ("ping-slash24", 0.85), ("merit-nt", None)),
                       chart="https://ioda.inetintel.cc.gatech.edu/country/AZ?from=1&until=2"),
        PlatformStatus(AZ, catalog.PLATFORMS["telegram"], "no_measurements", since=T0),
        PlatformStatus(AZ, catalog.PLATFORMS["internet"], "ok", checked=T0),
    ]


def outage_event(kind: str) -> OutageEvent:
    return OutageEvent(kind, "AZ", T0 + timedelta(hours=2), T0, asns=(29049, 41997),
                       signals=(("bgp", 0.29), ("ping-slash24", 0.85), ("merit-nt", 0.913)),
                       evidence=("https://ioda.inetintel.cc.gatech.edu/asn/29049?from=1&until=2",),
                       ended=T0 + timedelta(days=2, hours=6) if kind == "restored" else None)


# every template a user can get, with values that exercise its branches
SAMPLES = {
    "status": [dict(country=AZ, statuses=statuses(), findings=[])],
    "watches": [dict(groups=[(AZ, statuses())]), dict(groups=[])],
    "watch_added": [dict(country=AZ, added=[catalog.PLATFORMS["tiktok"]], already=[catalog.PLATFORMS["signal"]],
                         statuses=statuses(), all_platforms=False, share="https://t.me/blockwatch_bot?start=watch_AZ_tiktok")],
    "help": [dict(platforms=list(catalog.PLATFORMS.values()), admin=False), dict(platforms=list(catalog.PLATFORMS.values()), admin=True)],
    "language": [dict(name="Русский")],
    "unwatched": [dict(removed=[(AZ, catalog.PLATFORMS["tiktok"])], everything=False, country=AZ),
                  dict(removed=[], everything=True, country=None), dict(removed=[], everything=False, country=AZ)],
    "forgotten": [dict(chat_forgotten=True, watches=2, reports=1, notes=1, messages=2, group=False),
                  dict(chat_forgotten=False, watches=0, reports=0, notes=0, messages=0, group=True)],
    "watch_form": [dict(kind=kind, country=AZ, minutes=10, count=2)
                   for kind in ("country", "platforms", "expired", "cancelled", "button_all", "button_done", "choose_one", "x")],
    "confirm": [dict(kind=kind, chat_forgotten=forgotten, watches=3, minutes=10)
                for kind in ("forget", "unwatch_all", "forget_button", "cancel", "expired", "x") for forgotten in (True, False)],
    "chat_clock": [dict(kind=kind, zone_name="Asia/Baku", now=T0, window=window, text="Mars", at=window and "09:00",
                        until=T0, country=AZ if window else None, platform=catalog.PLATFORMS["tiktok"], count=1 if window else 0)
                   for kind in ("zone_set", "zone_now", "unknown_zone", "quiet_set", "quiet_now", "bad_window", "muted",
                                "unmuted", "bad_duration", "digest_set", "digest_now", "bad_digest")
                   for window in ("23:00-07:00", None)],
    "chat_recap": [dict(kind=kind, since=T0, until=T0, watches=3, limit=8, country=AZ, platform=None,
                        lines=recap.lines([event(k).to_json() for k in ("blocked", "changed", "unblocked")], {("AZ", "tiktok")}),
                        findings=[{"created_at": "2022-09-14T06:00:00Z", "platform": "tiktok", "text": "<b>x</b>"}],
                        signals=[(AZ, catalog.PLATFORMS["whatsapp"], 5)]) for kind in ("mute", "digest")]
                   + [dict(kind="digest", since=T0, until=T0, watches=0, limit=8, country=None, platform=None, lines=[], findings=[], signals=[])],
    "history": [dict(country=AZ, blocks=recap.blocks([event(k).to_json() for k in ("blocked", "unblocked")], T0 + timedelta(days=3))
                     + recap.blocks([event("blocked").to_json()], T0 + timedelta(days=3)),
                     limit=10, days=90, since=T0, platforms=[catalog.PLATFORMS["tiktok"]]),
                dict(country=AZ, blocks=[], limit=10, days=90, since=T0, platforms=[])],
}
ERROR_KINDS = [
    dict(kind="no_country", all_allowed=True), dict(kind="no_country"),
    dict(kind="unknown_country", text="Azerbajan", suggestion="Azerbaijan"),
    dict(kind="unknown_platform", text="tiktk", suggestion="tiktok"), dict(kind="too_many_arguments"),
    dict(kind="too_long", length=5000, limit=300), dict(kind="no_language"), dict(kind="unknown_language", text="xx"),
    dict(kind="group_admins_only"), dict(kind="admins_only"), dict(kind="unknown_command"),
    dict(kind="not_a_command"), dict(kind="no_duration"), dict(kind="broadcast_usage"), dict(kind="not_text"), dict(kind="edited"), dict(kind="channel"), dict(kind="internal"),
]


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_reply_and_alert_is_valid_telegram_html_in_every_language(lang):
    rendered = []
    for template, cases in SAMPLES.items():
        rendered += [(template, render(template, lang, **values)) for values in cases]
    rendered += [("errors", render("errors", lang, command="watch", **values)) for values in ERROR_KINDS]
    rendered += [(f"alert_{kind}", render_alert(event(kind), lang)) for kind in ("blocked", "unblocked", "changed")]
    rendered += [(f"alert_{kind}", render_alert(outage_event(kind), lang)) for kind in ("outage", "restored")]
    for template, text in rendered:
        visible, _ = parse_html(text)  # raises on what Telegram would refuse
        assert visible.strip(), template
        assert telegram_length(text) <= 4096


def test_words_dates_numbers_and_durations_are_the_languages_own():
    texts = {lang: render_alert(event("unblocked"), lang) for lang in LANGUAGES}
    assert "no more signs of blocking" in texts["en"] and "It lasted 2 days, 6 hours" in texts["en"]
    assert "признаков блокировки больше нет" in texts["ru"] and "2 дня 6 часов" in texts["ru"]
    assert "14 сентября 2022\u202fг., 06:00 UTC" in texts["ru"] and "Азербайджан (AZ)" in texts["ru"]
    assert "bloklanma əlamətləri artıq yoxdur" in texts["az"] and "2 gün, 6 saat" in texts["az"]
    assert "14 sentyabr 2022 06:00 UTC" in texts["az"] and "Azərbaycan (AZ)" in texts["az"]
    assert format_time(T0, "en") == "September 14, 2022, 06:00 UTC"
    assert [format_number(12345, lang) for lang in ("en", "az", "ru")] == ["12,345", "12.345", "12\xa0345"]
    assert format_duration(timedelta(minutes=90), "ru") == "1 час 30 минут"
    assert format_duration(timedelta(seconds=20), "en") == "1 minute"


def test_russian_plurals_follow_the_number():
    def numbers(measurements, networks):
        asns = tuple(range(1, networks + 1))
        return render_alert(event("blocked", asns=asns, anomalies=1, measurements=measurements), "ru")

    assert "аномальных 1 из 21 измерения в 1 сети" in numbers(21, 1)
    assert "аномальных 1 из 38 измерений в 3 сетях" in numbers(38, 3)
    assert "в 5 сетях" in numbers(40, 5)


def test_shared_pieces_are_translated_even_where_a_template_imports_them_without_context():
    # unwatched.html imports country_name without context; the render's language still reaches it
    text = render("unwatched", "ru", removed=[], everything=False, country=AZ)
    assert "Азербайджан (AZ)" in text and "Подписки чата" in text


def test_outage_alerts_speak_each_language_with_its_own_percentages():
    texts = {lang: render_alert(outage_event("outage"), lang) for lang in LANGUAGES}
    assert "Internet outage" in texts["en"] and "85% below normal" in texts["en"]
    assert "Отключение интернета" in texts["ru"] and "на 85\xa0% ниже нормы" in texts["ru"]
    assert "İnternet kəsintisi" in texts["az"] and "normadan" in texts["az"] and "85" in texts["az"]
    restored = render_alert(outage_event("restored"), "ru")
    assert "Интернет восстановлен" in restored and "2 дня 6 часов" in restored
