"""A crowd report before it is stored, pure: the draft, `/report`'s words parsed into one, and the
stateless button form that fills in what is missing.

The button form keeps no state: each button carries the form so far — country, platform, symptom,
network — with an expiry time and a signature over it, the chat and the user
(`rp:AZ:3:b:28787:<expiry>:<signature>`, under 64 bytes). A forged button, another person's, or
one from an old form is refused without touching anything.

No Telegram objects, no database, no clock: callers pass `now`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace

from bot import buttons, catalog
from bot.parsing import BadInput, parse_country, split_args
from bot.pseudonym import Pseudonyms

CALLBACK_PREFIX = "rp"
FORM_TTL = 600  # seconds a form's buttons stay valid after its last step
MAX_NOTE = 300  # characters of free text kept with a report
FORM_COUNTRIES = 12  # country buttons on the form's first step

# What people type for a symptom, in the bot's three languages
SYMPTOM_WORDS = {
    "blocked": "blocked", "block": "blocked", "blocking": "blocked", "banned": "blocked", "censored": "blocked",
    "bloklanib": "blocked", "bloklanıb": "blocked", "blok": "blocked", "bağlanıb": "blocked", "baglanib": "blocked",
    "заблокирован": "blocked", "заблокировано": "blocked", "заблокирована": "blocked", "блок": "blocked",
    "blokirovka": "blocked", "блокировка": "blocked",
    "slow": "slow", "slowly": "slow", "throttled": "slow", "lag": "slow", "laggy": "slow",
    "yavaş": "slow", "yavas": "slow", "zəif": "slow", "zeif": "slow",
    "медленно": "slow", "медленный": "slow", "медленная": "slow", "тормозит": "slow", "тормозят": "slow",
    "down": "down", "outage": "down", "offline": "down", "broken": "down", "dead": "down",
    "işləmir": "down", "islemir": "down", "açılmır": "down", "acilmir": "down",
    "лежит": "down", "недоступен": "down", "недоступна": "down", "упал": "down", "нет": "down",
}
SYMPTOM_CODES = {"blocked": "b", "slow": "s", "down": "d"}
CODE_SYMPTOMS = {code: name for name, code in SYMPTOM_CODES.items()}
NO_NETWORK = 0  # the form's "I don't know / another network"
CANCEL = "x"  # the cancel button's payload


# -- what a report is, parsed ------------------------------------------------------------------


@dataclass(frozen=True)
class ReportDraft:
    """A report as far as it is known; the form asks for what is missing."""

    country: str | None = None
    platform: str | None = None
    symptom: str | None = None
    asn: int | None = None
    network: str | None = None  # the network's registered name when the ASN is a known one
    network_asked: bool = False  # the form asked for the network (an answer may be "don't know")
    note: str | None = None

    @property
    def complete(self) -> bool:
        return self.country is not None and self.platform is not None and self.symptom is not None


def find_symptom(word: str) -> str | None:
    return SYMPTOM_WORDS.get(word.casefold().strip(".,!?:;"))


def clean_note(words: list[str]) -> str | None:
    """Free words as a short single-line note; control characters dropped (they are shown to admins)."""
    text = " ".join(words)
    text = "".join(ch for ch in text if ch.isprintable()).strip()
    return text[:MAX_NOTE] or None


def _network(country: str, words: list[str]) -> tuple[int | None, str | None, list[str]]:
    """A network named by the leading words (an ASN, or a known operator's name), and the words left."""
    if not words:
        return None, None, words
    for size in range(min(3, len(words)), 0, -1):
        found = catalog.find_network(country, " ".join(words[:size]))
        if found is not None:
            return found.asn, found.name, words[size:]
    asn = catalog.parse_asn(words[0])
    if asn is not None:  # an ASN we do not know for that country: kept as typed
        return asn, catalog.network_name(asn), words[1:]
    return None, None, words


def parse_report(args: list[str], default_country: str | None = None) -> ReportDraft:
    """`/report [CC] platform symptom [network] [words…]` → what is known; raises BadInput.

    The country may be left out when the chat has one (`default_country`). Leaving out the
    platform or the symptom is not an error: the form then asks for them."""
    words = split_args(args)
    if not words:
        return ReportDraft(country=None)
    country: str | None = None
    # "yt slow" is YouTube, not Mayotte: a leading platform followed by a symptom (or nothing) names no country
    if catalog.find_platform(words[0]) is not None and (len(words) == 1 or find_symptom(words[1])):
        rest = words
    else:
        try:
            found, rest = parse_country(words)
        except BadInput:
            if catalog.find_platform(words[0]) is not None:
                rest = words
            else:
                raise
        else:
            country = found.code
    country = country or default_country
    if not rest:
        return ReportDraft(country=country)
    platform = catalog.find_platform(rest[0])
    if platform is None:
        suggestion = catalog.suggest_platform(rest[0])
        raise BadInput("unknown_platform", text=rest[0], suggestion=suggestion.name if suggestion else None)
    if len(rest) == 1:
        return ReportDraft(country=country, platform=platform.name)
    symptom = find_symptom(rest[1])
    if symptom is None:
        raise BadInput("unknown_symptom", text=rest[1][:40])
    asn, network, note_words = _network(country, rest[2:]) if country else (None, None, rest[2:])
    return ReportDraft(country, platform.name, symptom, asn, network, network_asked=asn is not None, note=clean_note(note_words))


# -- which step comes next, and what it offers -------------------------------------------------


def next_step(draft: ReportDraft) -> str | None:
    if draft.country is None:
        return "country"
    if draft.platform is None:
        return "platform"
    if draft.symptom is None:
        return "symptom"
    if not draft.network_asked and catalog.country_networks(draft.country):
        return "network"
    return None


def form_countries(chat_countries: list[str]) -> list[catalog.Country]:
    """The chat's own countries first, then those whose networks we know."""
    codes = list(dict.fromkeys([*chat_countries, *_network_countries()]))[:FORM_COUNTRIES]
    return [country for country in map(catalog.find_country, codes) if country is not None]


@functools.cache
def _network_countries() -> tuple[str, ...]:
    return tuple(country.code for country in catalog.all_countries() if catalog.country_networks(country.code))


# -- the buttons' payload, signed ----------------------------------------------------------------

_PLATFORM_NAMES = tuple(catalog.PLATFORMS)


def encode(draft: ReportDraft) -> str:
    """The form so far as a button's payload (`AZ:3:b:28787`; `-` for what is not known yet)."""
    platform = str(_PLATFORM_NAMES.index(draft.platform)) if draft.platform else "-"
    symptom = SYMPTOM_CODES[draft.symptom] if draft.symptom else "-"
    network = "-" if not draft.network_asked else str(draft.asn or NO_NETWORK)
    return f"{draft.country or '-'}:{platform}:{symptom}:{network}"


def decode(payload: str) -> ReportDraft | None:
    """The draft a payload carries, or None when it is not one the form could have made."""
    parts = payload.split(":")
    if len(parts) != 4:
        return None
    country, platform, symptom, network = parts
    draft = ReportDraft()
    if country != "-":
        found = catalog.find_country(country) if len(country) == 2 else None
        if found is None:
            return None
        draft = replace(draft, country=found.code)
    if platform != "-":
        if not (platform.isdigit() and int(platform) < len(_PLATFORM_NAMES)):
            return None
        draft = replace(draft, platform=_PLATFORM_NAMES[int(platform)])
    if symptom != "-":
        if symptom not in CODE_SYMPTOMS:
            return None
        draft = replace(draft, symptom=CODE_SYMPTOMS[symptom])
    if network != "-":
        if not network.isdigit() or len(network) > 10:
            return None
        asn = int(network)
        if asn != NO_NETWORK:
            known = catalog.find_network(draft.country or "", str(asn))
            if known is None:  # the form only offers the country's known networks
                return None
            draft = replace(draft, asn=asn, network=known.name)
        draft = replace(draft, network_asked=True)
    return draft


def button_data(pseudonyms: Pseudonyms, chat_id: int, user_id: int, payload: str, expires: int) -> str:
    """A button's callback data (bot/buttons.py): the payload, its expiry and a signature."""
    return buttons.sign(pseudonyms, CALLBACK_PREFIX, chat_id, user_id, payload, expires)


def signer(pseudonyms: Pseudonyms, chat_id: int, user_id: int, now: int) -> Callable[[str], str]:
    """`sign(payload)` → callback data for one form's buttons, valid FORM_TTL seconds from `now`."""
    expires = now + FORM_TTL
    return lambda payload: button_data(pseudonyms, chat_id, user_id, payload, expires)


def read_button(pseudonyms: Pseudonyms, chat_id: int, user_id: int, data: str, now: int) -> tuple[str, str | ReportDraft]:
    """What a pressed button means: ("ok", draft) | ("cancel", "") | ("expired", "") | ("invalid", reason)."""
    meaning, payload = buttons.read(pseudonyms, CALLBACK_PREFIX, chat_id, user_id, data, now)
    if meaning != "ok":
        return meaning, payload
    if payload == CANCEL:
        return "cancel", ""
    draft = decode(payload)
    if draft is None:
        return "invalid", "malformed"
    return "ok", draft
