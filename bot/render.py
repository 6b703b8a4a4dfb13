"""The one Jinja environment: Telegram-HTML templates from templates/, translated per chat language.

Autoescape is on for every template (measurement fields and user text are outside values) and
StrictUndefined turns a missing variable into an error in tests instead of an empty hole in a
message. Words are marked with `_()` / `{% trans %}` and looked up in locales/<lang>/messages.po
(read with Babel at start, so no compiled files are kept in the repository).
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

import jinja2
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
LOCALES = ROOT / "locales"
LANGUAGES = {"en": "English", "az": "Azərbaycanca", "ru": "Русский"}
DEFAULT_LANGUAGE = "en"
TELEGRAM_LIMIT = 4096


def normalise_language(code: str | None) -> str:
    """Telegram's language_code (e.g. 'ru', 'az-AZ', 'en-GB') → one we have, else English."""
    base = (code or "").lower().replace("_", "-").split("-")[0]
    return base if base in LANGUAGES else DEFAULT_LANGUAGE


@cache
def translations(language: str) -> NullTranslations:
    po = LOCALES / language / "LC_MESSAGES" / "messages.po"
    if language == DEFAULT_LANGUAGE or not po.is_file():
        return NullTranslations()
    with po.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(fp=buffer)


@jinja2.pass_context
def _gettext(context: jinja2.runtime.Context, message: str) -> str:
    # Jinja's newstyle wrapper escapes and fills in the %(name)s variables afterwards
    return translations(context.get("lang", DEFAULT_LANGUAGE)).gettext(message)


@jinja2.pass_context
def _ngettext(context: jinja2.runtime.Context, singular: str, plural: str, n: int) -> str:
    return translations(context.get("lang", DEFAULT_LANGUAGE)).ngettext(singular, plural, n)


def format_time(value: datetime | str | None) -> str:
    if value is None:
        return "?"
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.strftime("%Y-%m-%d %H:%M UTC")


def format_duration(value: timedelta | float | None) -> str:
    if value is None:
        return "?"
    seconds = int(value.total_seconds() if isinstance(value, timedelta) else value)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{days}d"] if days else []
    if hours:
        parts.append(f"{hours}h")
    if minutes and not days:
        parts.append(f"{minutes}m")
    return " ".join(parts) or "<1m"


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_callables(_gettext, _ngettext, newstyle=True)
    env.filters["time"] = format_time
    env.filters["duration"] = format_duration
    return env


def render(template: str, lang: str = DEFAULT_LANGUAGE, **values) -> str:
    """Render templates/<template>.html in `lang`; surrounding blank lines trimmed."""
    text = environment().get_template(f"{template}.html").render(lang=normalise_language(lang), **values)
    return "\n".join(line.rstrip() for line in text.strip().splitlines())
