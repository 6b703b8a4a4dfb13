"""Tests for bot/catalog.py: countries, platforms (aliases, OONI tests, domains) and networks.

Pure and fast: everything runs against the package's own data files (bot/data/).
"""

from __future__ import annotations

import csv
import io
from importlib import resources
from urllib.parse import urlsplit

import pytest

from bot import catalog
from bot.catalog import (
    PLATFORMS,
    Country,
    Network,
    country_networks,
    find_country,
    find_network,
    find_platform,
    network_name,
    parse_asn,
    platform_domains,
    platform_of,
    suggest_country,
    suggest_platform,
)

CONTRACT_ORDER = ["tiktok", "whatsapp", "telegram", "signal", "facebook", "instagram", "youtube", "twitter", "tor", "psiphon", "internet"]
BYTEDANCE_CDNS = {"tiktokcdn.com", "tiktokcdn-us.com", "ttwstatic.com", "byteoversea.com", "ibytedtos.com", "bytedapm.com"}


def _package_csv(name: str) -> list[dict[str, str]]:
    text = resources.files("bot").joinpath("data").joinpath(name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def _az_tiktok_endpoints() -> set[str]:
    """Hostnames of the TikTok rows OONI added to the Azerbaijan list on 2022-09-14."""
    return {urlsplit(row["url"]).hostname for row in _package_csv("az.csv") if "TikTok" in row["notes"]}


# --- platforms -------------------------------------------------------------------------------


def test_platforms_are_the_contracts_ten_in_its_order():
    assert list(PLATFORMS) == CONTRACT_ORDER
    assert isinstance(PLATFORMS, dict)
    assert all(key == platform.name for key, platform in PLATFORMS.items())


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        *[(name, name) for name in CONTRACT_ORDER],
        ("fb", "facebook"),
        ("messenger", "facebook"),
        ("ig", "instagram"),
        ("yt", "youtube"),
        ("x", "twitter"),
        ("X", "twitter"),
        ("TikTok", "tiktok"),
        (" WhatsApp ", "whatsapp"),
        ("YT", "youtube"),
        ("Tik Tok", "tiktok"),
    ],
)
def test_find_platform_knows_every_name_and_contract_alias(typed, expected):
    assert find_platform(typed).name == expected


@pytest.mark.parametrize("typed", ["", "   ", "myspace", "tiktokk2000", "facebook.com"])
def test_find_platform_unknown_is_none(typed):
    assert find_platform(typed) is None


def test_platform_aliases_and_tests_match_the_contract_and_ooni():
    assert PLATFORMS["facebook"].aliases == ("fb", "messenger")
    assert PLATFORMS["instagram"].aliases == ("ig",)
    assert PLATFORMS["youtube"].aliases == ("yt",)
    assert PLATFORMS["twitter"].aliases == ("x",)
    assert PLATFORMS["whatsapp"].tests == ("whatsapp",)
    assert PLATFORMS["facebook"].tests == ("facebook_messenger",)
    assert PLATFORMS["tor"].tests == ("tor", "vanilla_tor", "torsf")
    assert PLATFORMS["psiphon"].tests == ("psiphon",)
    for web_only in ("tiktok", "instagram", "youtube", "twitter"):
        assert PLATFORMS[web_only].tests == ()


@pytest.mark.parametrize(
    ("typo", "expected"),
    [("tiktk", "tiktok"), ("whatsap", "whatsapp"), ("telegarm", "telegram"), ("instagarm", "instagram"),
     ("youtub", "youtube"), ("facebok", "facebook"), ("twiter", "twitter"), ("psifon", "psiphon"), ("signall", "signal")],
)
def test_suggest_platform_corrects_typos(typo, expected):
    assert find_platform(typo) is None
    assert suggest_platform(typo).name == expected


@pytest.mark.parametrize("typed", ["", "q", "zzzzzz", "weather forecast"])
def test_suggest_platform_gives_nothing_when_nothing_is_close(typed):
    assert suggest_platform(typed) is None


# --- platform domains ---------------------------------------------------------------------------


def test_az_tiktok_domains_hold_the_countrys_endpoints_and_the_cdns():
    endpoints = _az_tiktok_endpoints()
    assert len(endpoints) == 24  # OONI's 2022-09-14 addition to the AZ list (citizenlab/test-lists#1111)
    domains = platform_domains("tiktok", "AZ")
    assert endpoints <= set(domains)
    assert BYTEDANCE_CDNS <= set(domains)
    assert {"tiktok.com", "www.tiktok.com", "m.tiktok.com", "v16-webapp.tiktok.com", "vmweb-va.byteoversea.com"} <= set(domains)
    assert list(domains) == sorted(set(domains))
    assert platform_domains("tiktok", "az") == domains
    assert platform_domains("TikTok", " AZ ") == domains


def test_country_without_its_own_endpoints_gets_the_global_domains():
    global_only = PLATFORMS["tiktok"].domains
    assert platform_domains("tiktok", "RU") == global_only  # no RU list in the package
    assert platform_domains("tiktok", "AM") == global_only  # today's AM list has no TikTok rows
    assert not _az_tiktok_endpoints() <= set(global_only)


def test_platform_domains_follow_the_ooni_rules():
    assert {"www.whatsapp.com", "web.whatsapp.com", "mmg.whatsapp.net", "pps.whatsapp.net"} <= set(platform_domains("whatsapp", "AZ"))
    assert {"telegram.org", "t.me", "web.telegram.org"} <= set(platform_domains("telegram", "AZ"))
    assert "signal.org" in platform_domains("signal", "AZ")
    assert {"www.facebook.com", "facebook.com", "static.xx.fbcdn.net", "www.messenger.com", "messenger.com"} <= set(platform_domains("facebook", "AZ"))
    assert {"www.instagram.com", "i.instagram.com"} <= set(platform_domains("instagram", "AZ"))
    assert {"youtube.com", "www.youtube.com", "youtu.be"} <= set(platform_domains("youtube", "AZ"))
    assert {"twitter.com", "x.com", "t.co"} <= set(platform_domains("twitter", "AZ"))
    assert "torproject.org" in platform_domains("tor", "AZ")
    assert platform_domains("psiphon", "AZ") == ("psiphon.ca",)
    assert "googlevideo.com" not in platform_domains("youtube", "AZ")  # not on any list we have


def test_every_platform_domain_maps_back_to_its_platform_and_to_no_other():
    seen: dict[str, str] = {}
    for name in CONTRACT_ORDER:
        for domain in platform_domains(name, "AZ"):
            assert platform_of("AZ", test_name="web_connectivity", domain=domain) == name, domain
            assert seen.setdefault(domain, name) == name, f"{domain} claimed twice"


def test_platform_domains_rejects_an_unknown_platform():
    with pytest.raises(KeyError):
        platform_domains("myspace", "AZ")


# --- attributing OONI rows ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("test_name", "expected"),
    [("whatsapp", "whatsapp"), ("telegram", "telegram"), ("signal", "signal"), ("facebook_messenger", "facebook"),
     ("tor", "tor"), ("vanilla_tor", "tor"), ("torsf", "tor"), ("psiphon", "psiphon")],
)
def test_platform_of_app_tests(test_name, expected):
    assert platform_of("AZ", test_name=test_name) == expected
    assert platform_of("AZ", test_name=test_name, domain="") == expected


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("e1.whatsapp.net", "whatsapp"),
        ("web.whatsapp.com", "whatsapp"),
        ("p16-sign-va.tiktokcdn.com", "tiktok"),
        ("lf16-tiktok-web.neutral.ttwstatic.com", "tiktok"),
        ("www.tiktok.com", "tiktok"),
        ("WWW.TikTok.com.", "tiktok"),
        ("https://www.tiktok.com/@user", "tiktok"),
        ("www.tiktok.com:443", "tiktok"),
        ("web.telegram.org", "telegram"),
        ("chat.signal.org", "signal"),
        ("cdn2.signal.org", "signal"),
        ("scontent.xx.fbcdn.net", "facebook"),
        ("edge-mqtt.facebook.com", "facebook"),
        ("i.instagram.com", "instagram"),
        ("video.cdninstagram.com", "instagram"),
        ("rr3---sn-abc.googlevideo.com", "youtube"),
        ("abs.twimg.com", "twitter"),
        ("bridges.torproject.org", "tor"),
        ("psiphon.ca", "psiphon"),
    ],
)
def test_platform_of_web_connectivity_domains(domain, expected):
    assert platform_of("AZ", test_name="web_connectivity", domain=domain) == expected
    assert platform_of("RU", domain=domain) == expected


@pytest.mark.parametrize(
    "domain",
    ["imgur.com", "nottiktok.com", "tiktok.com.evil.example", "faketelegram.org", "signal.org.ua",
     "thunder.free-signal.com", "mytwitter.com", "box.com", "lh3.ggpht.com", "dns.google", "", "   "],
)
def test_platform_of_unrelated_domains_is_none(domain):
    assert platform_of("AZ", test_name="web_connectivity", domain=domain) is None


def test_platform_of_without_a_platform_signal_is_none():
    assert platform_of("AZ") is None
    assert platform_of("AZ", test_name="web_connectivity") is None
    assert platform_of("AZ", test_name="dnscheck", domain="dns.google") is None
    assert platform_of("AZ", test_name="riseupvpn") is None


# --- countries ------------------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["AZ", "az", " Az ", "Azerbaijan", "azerbaijan", "  AZERBAIJAN ", "Azərbaycan", "Азербайджан"])
def test_find_country_azerbaijan_every_way(typed):
    assert find_country(typed) == Country("AZ", "Azerbaijan")


@pytest.mark.parametrize(
    ("typed", "code"),
    [("Russia", "RU"), ("russian federation", "RU"), ("Россия", "RU"), ("Iran", "IR"), ("Islamic Republic of Iran", "IR"),
     ("Turkey", "TR"), ("Türkiye", "TR"), ("turkiye", "TR"), ("UK", "GB"), ("United Kingdom", "GB"), ("USA", "US"),
     ("Armenia", "AM"), ("am", "AM"), ("Georgia", "GE"), ("Belarus", "BY"), ("Kazakhstan", "KZ"), ("Ukraine", "UA"),
     ("China", "CN"), ("South Korea", "KR"), ("Burma", "MM"), ("Côte d'Ivoire", "CI"), ("cote d'ivoire", "CI"),
     ("Antigua and Barbuda", "AG"), ("RS", "RS"), ("Serbia", "RS"), ("XK", "XK"), ("North Macedonia", "MK")],
)
def test_find_country_common_names_and_codes(typed, code):
    assert find_country(typed).code == code


def test_countries_have_everyday_names():
    assert find_country("RU").name == "Russia"
    assert find_country("IR").name == "Iran"
    assert find_country("GB").name == "United Kingdom"


def test_every_legend_code_is_a_country():
    for row in _package_csv("00-LEGEND-country_codes.csv"):
        assert find_country(row["CountryCode"]).code == row["CountryCode"]
    assert len(catalog.all_countries()) >= len(_package_csv("00-LEGEND-country_codes.csv"))


@pytest.mark.parametrize("typed", ["", "   ", "ZZ", "Atlantis", "A", "Azerbajan", "Kazakstan"])
def test_find_country_unknown_is_none(typed):
    assert find_country(typed) is None


@pytest.mark.parametrize(("typo", "code"), [("Azerbajan", "AZ"), ("Azerbaidjan", "AZ"), ("Kazakstan", "KZ"), ("Rusia", "RU"), ("Armnia", "AM"), ("Ukrain", "UA")])
def test_suggest_country_corrects_typos(typo, code):
    assert suggest_country(typo).code == code


@pytest.mark.parametrize("typed", ["", "qwertyuiop", "ukr", "zz"])
def test_suggest_country_gives_nothing_when_nothing_is_close(typed):
    assert suggest_country(typed) is None


# --- networks --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "asn"),
    [("Azercell", 31721), ("azercell", 31721), (" AZERCELL ", 31721), ("Azercell Telecom Ltd", 31721),
     ("AS28787", 28787), ("28787", 28787), ("as 29049", 29049), ("Delta", 29049), ("Delta Telecom", 29049),
     ("Bakcell", 197830), ("Nar", 42779), ("Azerfon", 42779), ("Aztelekom", 28787), ("AS41997", 41997)],
)
def test_find_network_by_name_or_asn(typed, asn):
    assert find_network("AZ", typed).asn == asn
    assert find_network("az", typed).country == "AZ"


@pytest.mark.parametrize("typed", ["", "AS12389", "Vodafone", "Kyivstar", "Telecom", "AS0", "not a network"])
def test_find_network_unknown_in_that_country_is_none(typed):
    assert find_network("AZ", typed) is None


def test_find_network_drops_legal_forms_and_stays_in_its_country():
    assert find_network("UA", "Kyivstar").asn == 15895
    assert find_network("RU", "Rostelecom").asn == 12389
    assert find_network("RU", "MTS").asn == 8359
    assert find_network("BY", "MTS").asn == 25106
    assert find_network("AM", "MTS Armenia").asn == 43733
    assert find_network("ZZ", "Azercell") is None


def test_the_2022_tiktok_networks_are_known_with_their_registered_names():
    az = {network.asn: network for network in country_networks("AZ")}
    assert {29049, 41997, 31721} <= set(az)
    assert az[29049] == Network("AZ", 29049, "Delta Telecom Ltd")
    assert network_name(31721) == "Azercell Telecom Ltd"
    assert network_name(44395) == "Ucom CJSC"
    assert network_name(1) is None


def test_network_table_is_sound():
    rows = _package_csv("networks.csv")
    assert len({row["asn"] for row in rows}) == len(rows)
    for code in ("AZ", "AM", "RU", "IR", "TR", "BY", "KZ", "GE", "UA", "CN"):
        assert len(country_networks(code)) >= 3, code
    for row in rows:
        assert find_country(row["country"]) is not None
        assert find_network(row["country"], f"AS{row['asn']}").name == row["name"]


@pytest.mark.parametrize(("text", "asn"), [("AS29049", 29049), ("as29049", 29049), (" 29049 ", 29049), ("AS 1", 1), ("x29049", None), ("AS", None), ("0", None), ("", None)])
def test_parse_asn(text, asn):
    assert parse_asn(text) == asn


def test_internet_is_a_platform_measured_by_ioda_with_its_aliases():
    internet = PLATFORMS["internet"]
    assert internet.source == "ioda" and internet.tests == () and internet.domains == ()
    assert find_platform("shutdown") is internet and find_platform("Outage") is internet
    assert all(p.source == "ooni" for name, p in PLATFORMS.items() if name != "internet")
