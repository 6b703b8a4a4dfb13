"""The one Jinja environment: Telegram-HTML templates from templates/, translated per chat language.

Autoescape is on for every template (measurement fields and user text are outside values) and
StrictUndefined turns a missing variable into an error in tests instead of an empty hole in a
message. Words are marked with `_()` / `{% trans %}` and looked up in locales/<lang>/messages.po
(read with Babel at start, so no compiled files are kept in the repository; bot/i18n.py says how
to update them). Dates, numbers, durations and country names are written the language's way
(CLDR data through Babel) by the filters `time`, `day`, `number`, `duration` and `country`.
"""

from __future__ import annotations

import contextvars
import html
import io
import re
import sys
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path

import babel.dates
import babel.lists
import babel.numbers
import babel.units
import jinja2
from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

from bot import chat_clock
from bot.languages import DEFAULT_LANGUAGE, LANGUAGES, normalise_language

ROOT = Path(__file__).resolve().parent.parent
if not (ROOT / "templates").is_dir():  # a non-editable install: pyproject's data-files put them here
    ROOT = Path(sys.prefix) / "share" / "blockwatch"
TEMPLATES = ROOT / "templates"
LOCALES = ROOT / "locales"
TELEGRAM_LIMIT = 4096


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


# the language of the render in progress: macros imported without context see no `lang` variable
_RENDERING = contextvars.ContextVar("rendering_language", default=DEFAULT_LANGUAGE)
# the chat's time zone (a stored name, None = UTC) for the render in progress: the `time` and `day` filters read it
_ZONE: contextvars.ContextVar[str | None] = contextvars.ContextVar("rendering_zone", default=None)


def _language_of(context: jinja2.runtime.Context) -> str:
    return context.get("lang") or _RENDERING.get()


@jinja2.pass_context
def _gettext(context: jinja2.runtime.Context, message: str) -> str:
    # Jinja's newstyle wrapper escapes and fills in the %(name)s variables afterwards
    return translations(_language_of(context)).gettext(message)


@jinja2.pass_context
def _ngettext(context: jinja2.runtime.Context, singular: str, plural: str, n: int) -> str:
    return translations(_language_of(context)).ngettext(singular, plural, n)


def _aware(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def format_time(value: datetime | str | None, lang: str = DEFAULT_LANGUAGE, zone_name: str | None = None) -> str:
    """A moment on the chat's clock (UTC unless /timezone set one) as the language writes dates, with the
    offset: "September 14, 2022, 06:00 UTC", "14 сентября 2022 г., 10:00 UTC+4"."""
    if value is None:
        return "?"
    locale = Locale.parse(normalise_language(lang))
    moment = _aware(value).astimezone(chat_clock.zone(zone_name))
    date = babel.dates.format_date(moment, locale.datetime_skeletons["yMMMMd"].pattern, locale=locale)
    time = moment.strftime("%H:%M")
    return locale.datetime_formats["medium"].format(time, date) + " " + chat_clock.offset_label(moment)


def format_day(value: datetime | str | None, lang: str = DEFAULT_LANGUAGE, zone_name: str | None = None) -> str:
    """A date alone, on the chat's clock: "September 14, 2022"."""
    if value is None:
        return "?"
    locale = Locale.parse(normalise_language(lang))
    moment = _aware(value).astimezone(chat_clock.zone(zone_name))
    return babel.dates.format_date(moment, locale.datetime_skeletons["yMMMMd"].pattern, locale=locale)


def format_duration(value: timedelta | float | None, lang: str = DEFAULT_LANGUAGE) -> str:
    """A length of time in at most two units, as the language says it: "2 days, 6 hours", "2 дня 6 часов"."""
    if value is None:
        return "?"
    lang = normalise_language(lang)
    seconds = int(value.total_seconds() if isinstance(value, timedelta) else value)
    days, rest = divmod(max(seconds, 0), 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        units = [(days, "day"), (hours, "hour")]
    elif hours:
        units = [(hours, "hour"), (minutes, "minute")]
    else:
        units = [(max(minutes, 1), "minute")]  # under a minute reads as "1 minute"
    parts = [babel.units.format_unit(n, f"duration-{unit}", length="long", locale=lang) for n, unit in units if n]
    return babel.lists.format_list(parts, style="unit", locale=lang)


def format_number(value: int | float | None, lang: str = DEFAULT_LANGUAGE) -> str:
    """12345 → "12,345" / "12.345" / "12 345"."""
    if value is None:
        return "?"
    return babel.numbers.format_decimal(value, locale=normalise_language(lang))


def country_title(country, lang: str = DEFAULT_LANGUAGE) -> str:
    """The country's name in the language (CLDR), else the catalog's English name."""
    lang = normalise_language(lang)
    if lang != DEFAULT_LANGUAGE:
        name = Locale.parse(lang).territories.get(country.code)
        if name:
            return name
    return country.name


def telegram_length(text: str) -> int:
    """What Telegram counts against its 4096 limit: the visible text (tags gone, entities decoded) in UTF-16 units."""
    visible = html.unescape(re.sub(r"<[^>]*>", "", text)).strip()
    return len(visible.encode("utf-16-le")) // 2


# filters that write for the chat's language read it from the template's context
@jinja2.pass_context
def _time_filter(context, value):
    return format_time(value, _language_of(context), _ZONE.get())


@jinja2.pass_context
def _day_filter(context, value):
    return format_day(value, _language_of(context), _ZONE.get())


@jinja2.pass_context
def _duration_filter(context, value):
    return format_duration(value, _language_of(context))


@jinja2.pass_context
def _number_filter(context, value):
    return format_number(value, _language_of(context))


@jinja2.pass_context
def _percent_filter(context, value):
    """0.85 → "85%" / "85 %" (IODA's drops below normal); "?" when IODA gave no numbers."""
    return "?" if value is None else babel.numbers.format_percent(value, locale=normalise_language(_language_of(context)))


@jinja2.pass_context
def _country_filter(context, country):
    return country_title(country, _language_of(context))


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
        auto_reload=False,  # templates do not change while the bot runs: no stat() per message
    )
    env.install_gettext_callables(_gettext, _ngettext, newstyle=True)
    env.filters["time"] = _time_filter
    env.filters["day"] = _day_filter
    env.filters["duration"] = _duration_filter
    env.filters["number"] = _number_filter
    env.filters["country"] = _country_filter
    env.filters["percent"] = _percent_filter
    return env


def render(template: str, lang: str = DEFAULT_LANGUAGE, *, zone: str | None = None, **values) -> str:
    """Render templates/<template>.html in `lang`, times on the clock of `zone` (UTC by default);
    surrounding blank lines trimmed."""
    lang = normalise_language(lang)
    token = _RENDERING.set(lang)
    zone_token = _ZONE.set(zone)
    try:
        text = environment().get_template(f"{template}.html").render(lang=lang, **values)
    finally:
        _ZONE.reset(zone_token)
        _RENDERING.reset(token)
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


_LINK = re.compile(r'<a href="([^"]*)">(.*?)</a>', re.S)
_TAG = re.compile(r"<[^>]+>")


def to_terminal(text: str) -> str:
    """Telegram HTML → plain text: tags go, entities are decoded, each link is followed by its address."""
    text = _LINK.sub(lambda m: f"{m.group(2)} ({html.unescape(m.group(1))})", text)
    return html.unescape(_TAG.sub("", text))


def render_plain(template: str, lang: str = DEFAULT_LANGUAGE, **values) -> str:
    """For places Telegram shows as plain text (button labels, callback notices): no tags, no entities."""
    return to_terminal(render(template, lang, **values))
