"""Turning command arguments into requests — pure, so every odd input can be tested without Telegram.

A parse either returns a request or raises `BadInput(kind, **details)`; the handler renders the
`errors` template for that kind, which tells the user what to type instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot import catalog
from bot.languages import LANGUAGES

MAX_ARGUMENT_TEXT = 1000  # commands are short; anything longer is a paste or an attack
MAX_COUNTRY_WORDS = 4  # "Bosnia and Herzegovina", "United States of America"


class BadInput(Exception):
    def __init__(self, kind: str, **details):
        super().__init__(kind)
        self.kind = kind
        self.details = details


@dataclass(frozen=True)
class WatchRequest:
    country: catalog.Country
    platforms: tuple[str, ...]  # canonical names; all platforms when the user named none
    all_platforms: bool


def split_args(args: list[str]) -> list[str]:
    """Arguments as words, commas counting as spaces ("tiktok,whatsapp")."""
    words = []
    for arg in args:
        words.extend(part for part in arg.split(",") if part)
    return words


def check_length(text: str | None) -> None:
    if text is not None and len(text) > MAX_ARGUMENT_TEXT:
        raise BadInput("too_long", length=len(text), limit=MAX_ARGUMENT_TEXT)


def parse_country(words: list[str]) -> tuple[catalog.Country, list[str]]:
    """The longest run of leading words that names a country, and the words after it."""
    if not words:
        raise BadInput("no_country")
    for size in range(min(MAX_COUNTRY_WORDS, len(words)), 0, -1):
        country = catalog.find_country(" ".join(words[:size]))
        if country is not None:
            return country, words[size:]
    try:
        return catalog.country_named(words[0]), words[1:]
    except catalog.UnknownName as unknown:
        raise _bad(unknown) from None


def parse_platforms(words: list[str]) -> tuple[str, ...]:
    try:
        return catalog.platforms_named(words)
    except catalog.UnknownName as unknown:
        raise _bad(unknown) from None


def _bad(unknown: catalog.UnknownName) -> BadInput:
    suggestion = unknown.suggestion.name if unknown.suggestion else None
    return BadInput(f"unknown_{unknown.kind}", text=unknown.text, suggestion=suggestion)


def parse_watch(args: list[str]) -> WatchRequest:
    """`/watch CC [platform…]` and the country-and-platforms part of `/unwatch`."""
    words = split_args(args)
    if len(words) > MAX_COUNTRY_WORDS + len(catalog.PLATFORMS):
        raise BadInput("too_many_arguments", count=len(words))
    country, rest = parse_country(words)
    if not rest:
        return WatchRequest(country, tuple(catalog.PLATFORMS), all_platforms=True)
    return WatchRequest(country, parse_platforms(rest), all_platforms=False)


def parse_status(args: list[str]) -> WatchRequest:
    """`/status CC [platform…]`: the same words as /watch."""
    return parse_watch(args)


def parse_language(args: list[str]) -> str:
    if not args:
        raise BadInput("no_language")
    if len(args) > 1:
        raise BadInput("too_many_arguments", count=len(args))
    code = args[0].lower()
    for known, name in LANGUAGES.items():
        if code in (known, name.lower()):
            return known
    raise BadInput("unknown_language", text=args[0])


@dataclass(frozen=True)
class MuteRequest:
    country: catalog.Country | None  # None: every watch of the chat
    platform: str | None  # None: every platform of the country
    words_of_duration: str


def parse_mute(args: list[str]) -> MuteRequest:
    """`/mute [CC [platform]] DURATION`: the duration is the last word (checked by bot/chat_clock.py)."""
    words = split_args(args)
    if not words:
        raise BadInput("no_duration")
    if len(words) > MAX_COUNTRY_WORDS + 2:
        raise BadInput("too_many_arguments", count=len(words))
    *place, duration = words
    if not place:
        return MuteRequest(None, None, duration)
    country, rest = parse_country(place)
    platforms = parse_platforms(rest)
    if len(platforms) > 1:
        raise BadInput("too_many_arguments", count=len(words))
    return MuteRequest(country, platforms[0] if platforms else None, duration)
