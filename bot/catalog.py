"""The one place that knows countries, platforms and networks.

- Countries: Citizen Lab's country legend, plus the current ISO 3166-1 codes it lacks, with a
  few everyday names ("Russia", "UK", "Türkiye") so users can type what they say.
- Platforms: the contract's ten platforms with their aliases, the OONI app tests that stand for
  them, and their web domains. Which hostname belongs to which platform is decided by OONI's
  curated hostname → service map plus a few known extras (TikTok's ByteDance CDNs, psiphon.ca),
  matched on whole DNS labels; the hostnames themselves come from the Citizen Lab test lists
  (the global list, and a country's own list when we have it).
- Networks: the main access networks of the countries we watch most (bot/data/networks.csv).

Pure: it only reads the package's data files (bot/data/, origins in bot/data/README.md), each
parsed once and cached. No network, no database, no clock.
"""

from __future__ import annotations

import csv
import difflib
import functools
import io
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from urllib.parse import urlsplit

__all__ = [
    "Country",
    "Platform",
    "Network",
    "PLATFORMS",
    "find_country",
    "suggest_country",
    "all_countries",
    "find_platform",
    "suggest_platform",
    "platform_domains",
    "platform_of",
    "country_networks",
    "network_name",
    "find_network",
    "parse_asn",
]


@dataclass(frozen=True)
class Country:
    code: str  # ISO 3166-1 alpha-2, upper case: "AZ"
    name: str  # "Azerbaijan"


@dataclass(frozen=True)
class Platform:
    name: str  # canonical, lower case: "tiktok"
    title: str  # "TikTok"
    aliases: tuple[str, ...]  # ("fb", "messenger") for facebook
    tests: tuple[str, ...]  # OONI app tests standing for it; () for web-only platforms
    domains: tuple[str, ...]  # web hostnames from the global test list and known extras, sorted
    source: str = "ooni"  # who measures it: "ooni" (blocking) or "ioda" (internet outages)


@dataclass(frozen=True)
class Network:
    country: str  # ISO code of the country it serves
    asn: int
    name: str  # as registered (RIR / ipverse)


# ---------------------------------------------------------------------------------------------
# Reading the package data
# ---------------------------------------------------------------------------------------------


def _data_text(filename: str) -> str | None:
    path = resources.files("bot").joinpath("data").joinpath(filename)
    if not path.is_file():
        return None
    return path.read_text(encoding="utf-8")


def _rows(filename: str) -> list[dict[str, str]]:
    text = _data_text(filename)
    if text is None:
        return []
    return list(csv.DictReader(io.StringIO(text)))


def _norm(text: str) -> str:
    """Lookup key: case, accents, punctuation and spacing don't matter ("Côte d'Ivoire" ~ "cote d ivoire")."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    bare = bare.replace("&", " and ")
    return " ".join("".join(ch if ch.isalnum() else " " for ch in bare).split())


# ---------------------------------------------------------------------------------------------
# Countries
# ---------------------------------------------------------------------------------------------

# The legend's names are formal or dated; these are the names people read and write today.
_DISPLAY_NAMES = {
    "BN": "Brunei",
    "BS": "Bahamas",
    "CI": "Côte d'Ivoire",
    "CK": "Cook Islands",
    "GB": "United Kingdom",
    "IR": "Iran",
    "KP": "North Korea",
    "KR": "South Korea",
    "LA": "Laos",
    "LY": "Libya",
    "MD": "Moldova",
    "MS": "Montserrat",
    "RU": "Russia",
    "SY": "Syria",
    "TW": "Taiwan",
    "TZ": "Tanzania",
    "US": "United States",
    "VA": "Vatican City",
    "VN": "Vietnam",
}

# Other names people type, including the languages of our first users (az, ru).
_ALTERNATIVE_NAMES = {
    "UK": "GB", "Great Britain": "GB", "Britain": "GB", "England": "GB", "Scotland": "GB", "Wales": "GB",
    "USA": "US", "United States of America": "US", "America": "US",
    "UAE": "AE", "Emirates": "AE",
    "Russian Federation": "RU", "Россия": "RU", "Rusiya": "RU",
    "Iran": "IR", "Persia": "IR", "Иран": "IR", "İran": "IR",
    "Turkey": "TR", "Türkiye": "TR", "Turkiye": "TR", "Турция": "TR", "Türkiyə": "TR",
    "Azərbaycan": "AZ", "Azerbaycan": "AZ", "Азербайджан": "AZ",
    "Armenia": "AM", "Армения": "AM", "Ermənistan": "AM", "Հայաստան": "AM", "Hayastan": "AM",
    "Georgia": "GE", "Грузия": "GE", "Gürcüstan": "GE", "Sakartvelo": "GE", "საქართველო": "GE",
    "Belarus": "BY", "Беларусь": "BY", "Belorussia": "BY", "Byelorussia": "BY",
    "Kazakhstan": "KZ", "Казахстан": "KZ", "Qazaqstan": "KZ", "Qazaxıstan": "KZ",
    "Ukraine": "UA", "Украина": "UA", "Україна": "UA", "Ukrayna": "UA",
    "China": "CN", "Китай": "CN", "PRC": "CN", "Çin": "CN",
    "Korea": "KR", "South Korea": "KR", "North Korea": "KP", "DPRK": "KP",
    "Syria": "SY", "Vietnam": "VN", "Laos": "LA", "Moldova": "MD", "Tanzania": "TZ",
    "Taiwan": "TW", "Libya": "LY", "Brunei": "BN", "Bahamas": "BS", "Macao": "MO",
    "Burma": "MM", "Ivory Coast": "CI", "Czechia": "CZ", "Cabo Verde": "CV",
    "Eswatini": "SZ", "East Timor": "TL", "Holy See": "VA", "Vatican": "VA",
    "Macedonia": "MK", "DR Congo": "CD", "DRC": "CD", "Congo-Kinshasa": "CD",
    "Congo-Brazzaville": "CG", "Palestinian Territories": "PS", "Kyrgyz Republic": "KG",
    "Kirghizia": "KG", "Turkmenia": "TM", "Uzbekistan": "UZ", "Tajikistan": "TJ",
}


@functools.cache
def _countries() -> dict[str, Country]:
    countries: dict[str, Country] = {}
    for row in _rows("00-LEGEND-country_codes.csv"):
        code = row["CountryCode"].strip().upper()
        countries[code] = Country(code, _DISPLAY_NAMES.get(code, row["CountryName"].strip()))
    # Current codes OONI reports (RS, MK, XK, ...) that the old legend predates.
    for row in _rows("countries_extra.csv"):
        code = row["code"].strip().upper()
        countries.setdefault(code, Country(code, row["name"].strip()))
    return countries


@functools.cache
def _country_names() -> dict[str, str]:
    """Normalized name → ISO code, over legend names, display names and alternative names."""
    countries = _countries()
    names: dict[str, str] = {}
    for row in _rows("00-LEGEND-country_codes.csv"):
        names[_norm(row["CountryName"])] = row["CountryCode"].strip().upper()
    for code, country in countries.items():
        names[_norm(country.name)] = code
    for name, code in _ALTERNATIVE_NAMES.items():
        if code in countries:
            names[_norm(name)] = code
    names.pop("", None)
    return names


def all_countries() -> tuple[Country, ...]:
    """Every known country, sorted by code."""
    return tuple(sorted(_countries().values(), key=lambda c: c.code))


REGIONAL_A = 0x1F1E6  # a flag emoji is two "regional indicator" letters: 🇦🇿 is A Z


def _flag_letters(text: str) -> str:
    """🇦🇿 → "AZ" (a flag emoji, maybe with a variation selector); any other text unchanged."""
    letters = text.replace("\ufe0f", "")
    if len(letters) == 2 and all(REGIONAL_A <= ord(c) < REGIONAL_A + 26 for c in letters):
        return "".join(chr(ord("A") + ord(c) - REGIONAL_A) for c in letters)
    return text


def find_country(text: str) -> Country | None:
    """An ISO code or a country name, forgiving of case, spaces and accents; None if unknown."""
    if not text or not text.strip():
        return None
    stripped = _flag_letters(text.strip())
    countries = _countries()
    if len(stripped) == 2 and stripped.isascii() and stripped.isalpha():
        country = countries.get(stripped.upper())
        if country is not None:
            return country
    code = _country_names().get(_norm(stripped))
    return countries.get(code) if code else None


def suggest_country(text: str) -> Country | None:
    """The closest country name for a typo ("Azerbajan" → Azerbaijan); None if nothing is close."""
    found = find_country(text)
    if found is not None:
        return found
    key = _norm(text or "")
    if len(key) < 3:
        return None
    names = _country_names()
    # Short keys ("uk", "uae") would swallow unrelated short typos, so only suggest real names.
    candidates = [name for name in names if len(name) >= 4]
    match = difflib.get_close_matches(key, candidates, n=1, cutoff=0.8)
    return _countries()[names[match[0]]] if match else None


# ---------------------------------------------------------------------------------------------
# Platforms
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PlatformSpec:
    name: str
    title: str
    aliases: tuple[str, ...]
    tests: tuple[str, ...]
    services: tuple[str, ...]  # OONI seed services (target_id prefixes) that belong to it
    extra_domains: tuple[str, ...]  # matched with their subdomains and listed as domains themselves
    extra_hosts: tuple[str, ...]  # listed as domains even when no test list has them
    source: str = "ooni"


# In the contract's order.
_SPECS = (
    _PlatformSpec(
        "tiktok", "TikTok", (), (), ("tiktok",),
        # ByteDance CDNs the TikTok app and site load from (the AZ/AM 2022 endpoint lists use them).
        ("tiktokcdn.com", "tiktokcdn-us.com", "ttwstatic.com", "byteoversea.com", "ibytedtos.com", "bytedapm.com"),
        ("tiktok.com", "www.tiktok.com", "m.tiktok.com"),
    ),
    _PlatformSpec("whatsapp", "WhatsApp", (), ("whatsapp",), ("whatsapp",), (), ("www.whatsapp.com", "web.whatsapp.com")),
    _PlatformSpec("telegram", "Telegram", (), ("telegram",), ("telegram",), (), ("telegram.org", "t.me", "web.telegram.org")),
    _PlatformSpec("signal", "Signal", (), ("signal",), ("signal",), (), ("signal.org",)),
    _PlatformSpec(
        "facebook", "Facebook", ("fb", "messenger"), ("facebook_messenger",), ("facebook", "facebook_messenger"), (),
        ("facebook.com", "www.facebook.com", "messenger.com", "www.messenger.com"),
    ),
    _PlatformSpec("instagram", "Instagram", ("ig",), (), ("instagram",), (), ("instagram.com", "www.instagram.com")),
    _PlatformSpec("youtube", "YouTube", ("yt",), (), ("youtube",), (), ("youtube.com", "www.youtube.com", "youtu.be")),
    _PlatformSpec("twitter", "Twitter/X", ("x",), (), ("twitter",), (), ("twitter.com", "x.com", "t.co")),
    _PlatformSpec("tor", "Tor", (), ("tor", "vanilla_tor", "torsf"), ("tor",), (), ("torproject.org", "www.torproject.org")),
    _PlatformSpec("psiphon", "Psiphon", (), ("psiphon",), (), ("psiphon.ca",), ()),
    # not a service OONI measures: IODA's outage signals for the whole country and its networks
    _PlatformSpec("internet", "Internet", ("shutdown", "outage"), (), (), (), (), source="ioda"),
)

_TEST_PLATFORM = {test: spec.name for spec in _SPECS for test in spec.tests}


@dataclass(frozen=True)
class _Matchers:
    exact: dict[str, str]  # hostname → platform
    patterns: tuple[tuple[re.Pattern[str], str], ...]
    domains: dict[str, str]  # registrable domain → platform, matching it and its subdomains


@functools.cache
def _matchers() -> _Matchers:
    service_platform = {service: spec.name for spec in _SPECS for service in spec.services}
    exact: dict[str, str] = {}
    patterns: list[tuple[re.Pattern[str], str]] = []
    domains: dict[str, str] = {}
    for row in _rows("target_hostnames_seed.csv"):
        platform = service_platform.get(row["target_id"].split("/", 1)[0])
        if platform is None:
            continue
        kind, matcher = row["matcher_kind"], row["matcher"].strip().lower()
        if kind == "exact":
            exact[matcher] = platform
        elif kind == "pattern":
            patterns.append((re.compile(matcher), platform))
        elif kind == "domain":
            domains[matcher] = platform
    for spec in _SPECS:
        for domain in spec.extra_domains:
            domains.setdefault(domain, spec.name)
    return _Matchers(exact, tuple(patterns), domains)


def _hostname(text: str) -> str:
    """A bare lower-case hostname from a hostname, "host:port" or a URL."""
    text = text.strip()
    if "://" in text:
        return (urlsplit(text).hostname or "").rstrip(".")
    host = text.split("/", 1)[0]
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.strip().rstrip(".").lower()


@functools.lru_cache(maxsize=8192)
def _platform_of_host(host: str) -> str | None:
    """The platform a hostname belongs to: exact names first, then patterns, then the longest domain."""
    if not host:
        return None
    matchers = _matchers()
    if host in matchers.exact:
        return matchers.exact[host]
    for pattern, platform in matchers.patterns:
        if pattern.fullmatch(host):
            return platform
    labels = host.split(".")
    # Whole labels only: "nottiktok.com" is not under "tiktok.com".
    for start in range(len(labels)):
        platform = matchers.domains.get(".".join(labels[start:]))
        if platform is not None:
            return platform
    return None


def _list_hostnames(filename: str) -> tuple[str, ...]:
    hosts = {_hostname(row["url"]) for row in _rows(filename) if row.get("url")}
    hosts.discard("")
    return tuple(sorted(hosts))


@functools.cache
def _global_hostnames() -> tuple[str, ...]:
    return _list_hostnames("global.csv")


@functools.cache
def _country_hostnames(country: str) -> tuple[str, ...]:
    if not (len(country) == 2 and country.isascii() and country.isalpha()):
        return ()
    return _list_hostnames(f"{country.lower()}.csv")


def _hosts_of(platform: str, hosts: Iterable[str]) -> set[str]:
    return {host for host in hosts if _platform_of_host(host) == platform}


def _build_platform(spec: _PlatformSpec) -> Platform:
    domains = _hosts_of(spec.name, _global_hostnames()) | set(spec.extra_domains) | set(spec.extra_hosts)
    return Platform(spec.name, spec.title, spec.aliases, spec.tests, tuple(sorted(domains)), spec.source)


@functools.cache
def _platforms() -> dict[str, Platform]:
    return {spec.name: _build_platform(spec) for spec in _SPECS}


# The platforms in the contract's order, as a plain dict (built at import: ~20 ms of reading the test lists).
PLATFORMS: dict[str, Platform] = _platforms()


@functools.cache
def _platform_names() -> dict[str, str]:
    """Lookup key (name, alias or title, spaces ignored) → canonical platform name."""
    names: dict[str, str] = {}
    for platform in _platforms().values():
        for word in (platform.name, platform.title, *platform.aliases):
            names[_norm(word).replace(" ", "")] = platform.name
    names["twitterx"] = "twitter"  # "Twitter/X" and "twitter x"
    return names


def find_platform(text: str) -> Platform | None:
    """A platform by its name or an alias, case-insensitive ("X" → twitter, "ig" → instagram)."""
    if not text:
        return None
    name = _platform_names().get(_norm(text).replace(" ", ""))
    return _platforms()[name] if name else None


def suggest_platform(text: str) -> Platform | None:
    """The closest platform for a typo ("tiktk" → tiktok); None if nothing is close."""
    found = find_platform(text)
    if found is not None:
        return found
    key = _norm(text or "").replace(" ", "")
    if len(key) < 2:
        return None
    names = _platform_names()
    match = difflib.get_close_matches(key, [n for n in names if len(n) >= 3], n=1, cutoff=0.6)
    return _platforms()[names[match[0]]] if match else None


class UnknownName(ValueError):
    """A country or platform name the catalog does not know, with the closest known one if any."""

    def __init__(self, kind: str, text: str, suggestion: Country | Platform | None):
        super().__init__(f"unknown {kind} {text!r}")
        self.kind, self.text, self.suggestion = kind, text, suggestion


def country_named(text: str) -> Country:
    """The country a code or name stands for; UnknownName (with a suggestion) when none does."""
    country = find_country(text)
    if country is None:
        raise UnknownName("country", text, suggest_country(text))
    return country


def platforms_named(words: Iterable[str]) -> tuple[str, ...]:
    """The canonical names of the platforms the words name, each once, in order; UnknownName at the
    first word that names none."""
    names: list[str] = []
    for word in words:
        platform = find_platform(word)
        if platform is None:
            raise UnknownName("platform", word, suggest_platform(word))
        if platform.name not in names:
            names.append(platform.name)
    return tuple(names)


def _require_platform(platform: str) -> Platform:
    found = find_platform(platform)
    if found is None:
        raise KeyError(f"unknown platform {platform!r}")
    return found


@functools.cache
def _platform_domains(platform: str, country: str) -> tuple[str, ...]:
    hosts = set(_platforms()[platform].domains) | _hosts_of(platform, _country_hostnames(country))
    return tuple(sorted(hosts))


def platform_domains(platform: str, country: str) -> tuple[str, ...]:
    """The hostnames to measure for a platform in a country, sorted and unique.

    The platform's global-list domains and extras, plus the hostnames of that country's test
    list that belong to the platform (for AZ TikTok: the 24 ByteDance endpoints of 2022).
    Raises KeyError for an unknown platform.
    """
    return _platform_domains(_require_platform(platform).name, (country or "").strip().upper())


def platform_of(country: str, *, test_name: str | None = None, domain: str | None = None) -> str | None:
    """Which platform an OONI row is about: by its app test, else by its domain; None if none.

    "whatsapp" → whatsapp, "facebook_messenger" → facebook, "vanilla_tor" → tor; a
    web_connectivity row for "e1.whatsapp.net" → whatsapp, "p16-sign-va.tiktokcdn.com" → tiktok.
    Every hostname in platform_domains(p, country) maps back to p.
    """
    if test_name:
        platform = _TEST_PLATFORM.get(test_name.strip().lower())
        if platform is not None:
            return platform
    if domain:
        return _platform_of_host(_hostname(domain))
    return None


# ---------------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------------

# Legal forms dropped when matching a typed name against a registered one ("Kyivstar" ~ "Kyivstar PJSC").
_LEGAL_FORMS = frozenset(
    {"llc", "ltd", "jsc", "cjsc", "pjsc", "ojsc", "prjsc", "jllc", "plc", "mmc", "pjs", "co", "inc", "limited", "company"}
)

_ASN_RE = re.compile(r"^\s*(?:as\s*)?(\d{1,10})\s*$", re.IGNORECASE)


def _name_keys(name: str) -> set[str]:
    key = _norm(name)
    words = key.split()
    while words and words[-1] in _LEGAL_FORMS:
        words.pop()
    while words and words[0] in _LEGAL_FORMS:
        words.pop(0)
    keys = {key, " ".join(words)}
    keys |= {k.replace(" ", "") for k in keys}
    keys.discard("")
    return keys


@functools.cache
def _networks() -> tuple[tuple[Network, frozenset[str]], ...]:
    """Each network with the lookup keys of its registered name and its common names."""
    networks = []
    for row in _rows("networks.csv"):
        network = Network(row["country"].strip().upper(), int(row["asn"]), row["name"].strip())
        keys = _name_keys(network.name)
        for alias in (row.get("aliases") or "").split(";"):
            if alias.strip():
                keys |= _name_keys(alias)
        networks.append((network, frozenset(keys)))
    return tuple(networks)


def parse_asn(text: str) -> int | None:
    """An ASN typed as "AS29049", "as 29049" or "29049" → 29049; None if it is not one."""
    match = _ASN_RE.match(text or "")
    if not match:
        return None
    asn = int(match.group(1))
    return asn if 0 < asn < 2**32 else None


def country_networks(country: str) -> tuple[Network, ...]:
    """The known main networks of a country, most prominent first."""
    code = (country or "").strip().upper()
    return tuple(network for network, _ in _networks() if network.country == code)


def network_name(asn: int) -> str | None:
    """The registered name of a known network."""
    for network, _ in _networks():
        if network.asn == asn:
            return network.name
    return None


def find_network(country: str, text: str) -> Network | None:
    """A known network of that country by ASN ("AS28787", "28787") or name ("Azercell", "nar")."""
    if not text or not text.strip():
        return None
    candidates = country_networks(country)
    asn = parse_asn(text)
    if asn is not None:
        return next((network for network in candidates if network.asn == asn), None)
    wanted = _name_keys(text)
    code = (country or "").strip().upper()
    return next((network for network, keys in _networks() if network.country == code and wanted & keys), None)
