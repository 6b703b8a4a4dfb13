"""Events → deliveries: who gets what, rendered once per language, written to the outbox.

`queue_event` and `queue_text` are synchronous and run on the DB thread (`await store.run(...)`).
Each writes in ONE transaction — the event, its rendered messages and every delivery — so a crash
either loses nothing or queues nothing; the sender (bot/sender.py) takes it from there. Called
inside a caller's transaction (the poller saving the detector's state) they join it.

A message is rendered once per event and language, never per chat: 100,000 watchers of one
platform cost three renders and one INSERT … SELECT.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bot import catalog
from bot.clock import unix
from bot.detector import Event
from bot.outage import OutageEvent
from bot.render import DEFAULT_LANGUAGE, TELEGRAM_LIMIT, normalise_language, render, telegram_length, to_terminal
from bot.sources.links import chart_link
from storage import events as event_store
from storage import chat_settings, outbox, subscriptions
from storage.db import transaction

# how many networks and evidence links a message lists before "and N more": enough to act on,
# short enough to read on a phone; cut further only when a message would pass Telegram's limit
LIST_LIMITS = ((8, 3), (5, 3), (3, 2), (1, 1))
NAME_CHARS = 40  # a registered network name can be a paragraph; the ASN identifies it anyway


def alert_values(event: Event | OutageEvent) -> dict[str, Any]:
    """What the alert templates show for an event: names looked up, links built (no language yet)."""
    country = catalog.find_country(event.country) or catalog.Country(event.country, event.country)
    if isinstance(event, OutageEvent):
        return _outage_values(event, country)
    platform = catalog.PLATFORMS[event.platform]
    last = event.ended or event.time
    return {
        "kind": event.kind,
        "country": country,
        "platform": platform,
        "asns": _named(event.asns),
        "added": _named(event.added),
        "cleared": _named(event.cleared),
        "method": event.method,
        "since": event.since,
        "time": event.time,
        "ended": event.ended,
        "duration": event.duration,
        "anomalies": event.anomalies,
        "measurements": event.measurements,
        "confirmed": event.confirmed,
        "intermittent": event.intermittent,
        "pattern": event.pattern,
        "changes": [{"kind": c.kind, "network": _named([c.asn]), "time": c.time} for c in event.changes],
        "evidence": list(event.evidence),
        "chart": chart_link(event.country, event.platform, event.since, last),
    }


def _outage_values(event: OutageEvent, country: catalog.Country) -> dict[str, Any]:
    return {
        "kind": event.kind,
        "country": country,
        "platform": catalog.PLATFORMS[event.platform],
        "asns": _named(event.asns),
        "signals": list(event.signals),
        "since": event.since,
        "time": event.time,
        "ended": event.ended,
        "duration": event.duration,
        "evidence": list(event.evidence),
        "chart": chart_link(event.country, event.platform, event.since, event.ended or event.time),
    }


def _named(asns: Iterable[int]) -> list[tuple[int, str | None]]:
    named = []
    for asn in asns:
        name = catalog.network_name(asn)
        if name and len(name) > NAME_CHARS:
            name = name[: NAME_CHARS - 1].rstrip() + "…"
        named.append((asn, name))
    return named


def render_alert(event: Event | OutageEvent, lang: str = DEFAULT_LANGUAGE, zone: str | None = None) -> str:
    """The alert for an event in a language and a chat's time zone, in Telegram HTML, always within Telegram's 4096 characters."""
    values = alert_values(event)
    return render_fitting(f"alert_{event.kind}", lang, zone=zone, **values)


def render_fitting(template: str, lang: str, *, zone: str | None = None, **values: Any) -> str:
    """Render with the longest lists that fit Telegram's limit; lists are cut whole, never mid-tag."""
    for limit, evidence_limit in LIST_LIMITS:
        text = render(template, lang, zone=zone, limit=limit, evidence_limit=evidence_limit, **values)
        if telegram_length(text) <= TELEGRAM_LIMIT:
            return text
    raise ValueError(f"{template} does not fit in {TELEGRAM_LIMIT} characters even with the shortest lists")


def queue_event(db, event: Event | OutageEvent) -> int:
    """Record the event and queue its alert for every active chat watching its country and platform.

    One transaction: the event row, one rendered message per (language, time zone) the watchers
    read, one delivery per watching, non-paused chat (the sender follows a `blocked` alert with its
    chart, bot/chart_maker.py). Returns the number of deliveries queued.
    """
    with transaction(db):
        [event_id] = event_store.record_events(db, [event])
        groups: dict[tuple[str, str], tuple[set[str | None], set[str | None]]] = {}
        for stored_language, zone in outbox.watcher_groups(db, event.country, event.platform):
            # chats whose times read the same share one render: UTC written any way is UTC
            key = (normalise_language(stored_language), zone or "")
            languages, zones = groups.setdefault(key, (set(), set()))
            languages.add(stored_language)
            zones.add(zone)
        queued = 0
        for (lang, zone), (stored_languages, stored_zones) in sorted(groups.items()):
            text = render_alert(event, lang, zone or None)
            message_id = outbox.add_message(db, f"alert_{event.kind}", lang, text, ref=f"event:{event_id}")
            # a chat that muted the pair gets nothing now: its summary, when the mute ends, tells it (bot/chat_jobs.py)
            queued += outbox.deliver_to_watchers(db, message_id, event.country, event.platform, stored_languages, stored_zones,
                                                 unmuted_at=unix(event.time))
    return queued


def queue_text(db, chat_ids: Iterable[int], texts: str | Mapping, *, kind: str, ref: str | None = None) -> int:
    """Queue ready-made Telegram-HTML text for chats (admins' broadcasts, confirmed crowd findings).

    `texts` is one text for everyone, {language: text}, or {(language, zone): text} for text with
    times in it (`texts_by_clock`); a chat whose key has no text gets English, else the first given.
    Paused chats are skipped; with a `ref`, so are chats that already got a message with that ref
    (queueing the same finding twice sends it once). Returns the number of deliveries queued.
    """
    chat_ids = list(dict.fromkeys(chat_ids))
    if isinstance(texts, str):
        texts = {DEFAULT_LANGUAGE: texts}
    if not texts:
        raise ValueError("queue_text needs at least one text")
    for text in texts.values():
        if telegram_length(text) > TELEGRAM_LIMIT:
            raise ValueError(f"a {kind} text is longer than Telegram's {TELEGRAM_LIMIT} characters")
    by_clock = any(isinstance(key, tuple) for key in texts)
    default = (DEFAULT_LANGUAGE, None) if by_clock else DEFAULT_LANGUAGE
    fallback = default if default in texts else next(iter(texts))
    with transaction(db):
        skip = outbox.chats_with_ref(db, ref) if ref is not None else set()
        known = subscriptions.chat_languages(db, chat_ids)
        zones = chat_settings.zones_of(db, chat_ids) if by_clock else {}
        by_text: dict = {}
        for chat_id in chat_ids:
            if chat_id in skip or known.get(chat_id, (None, False))[1]:  # already has it, or paused
                continue
            lang = normalise_language(known.get(chat_id, (None, False))[0])
            key = (lang, zones[chat_id].zone if chat_id in zones else None) if by_clock else lang
            if key not in texts and by_clock and (lang, None) in texts:
                key = (lang, None)
            by_text.setdefault(key if key in texts else fallback, []).append(chat_id)
        queued = 0
        for key, recipients in sorted(by_text.items(), key=lambda item: str(item[0])):
            message_id = outbox.add_message(db, kind, key[0] if by_clock else key, texts[key], ref=ref)
            queued += outbox.deliver_to_chats(db, message_id, recipients)
    return queued


def texts_by_clock(db, chat_ids: Iterable[int], template: str, **values) -> dict[tuple[str, str | None], str]:
    """The template rendered once per (language, time zone) the chats read: times on each chat's clock."""
    chat_ids = list(chat_ids)
    languages = languages_of(db, chat_ids)
    zones = chat_settings.zones_of(db, chat_ids)
    clocks = {(languages[chat_id], zones[chat_id].zone if chat_id in zones else None) for chat_id in chat_ids}
    return {(lang, zone): render(template, lang, zone=zone, **values) for lang, zone in clocks}


def languages_of(db, chat_ids: list[int]) -> dict[int, str]:
    """chat id → the language its messages are rendered in (English for a chat the bot does not know)."""
    known = subscriptions.chat_languages(db, chat_ids)
    return {chat_id: normalise_language(known.get(chat_id, (None, False))[0]) for chat_id in chat_ids}


def event_text(event: Event | OutageEvent, lang: str = "en") -> str:
    """The alert the bot would send for an event, as a terminal shows it (poll --once, backtest)."""
    return to_terminal(render_alert(event, lang))
