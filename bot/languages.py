"""The languages the bot speaks, and which one a chat reads. Pure: the Jinja side (bot/render.py) and
the parsers (bot/parsing.py) both take them from here."""

from __future__ import annotations

LANGUAGES = {"en": "English", "az": "Azərbaycanca", "ru": "Русский"}
DEFAULT_LANGUAGE = "en"


def normalise_language(code: str | None) -> str:
    """Telegram's language_code (e.g. 'ru', 'az-AZ', 'en-GB') → one we have, else English."""
    base = (code or "").lower().replace("_", "-").split("-")[0]
    return base if base in LANGUAGES else DEFAULT_LANGUAGE
