"""What admins and watchers are shown about a crowd signal: the crowd's numbers beside the
detector's evidence for the same pair, rendered once per language and time zone its readers read."""

from __future__ import annotations

from bot import catalog, notifier
from bot.clock import utc
from bot.crowd import Rules
from bot.status import load_statuses
from storage import reports


def signal_view(db, signal: dict, rules: Rules) -> dict:
    """What a signal's messages show: the crowd's numbers and the detector's evidence for the pair."""
    signal = {**signal, "first": utc(signal["first_at"]), "last": utc(signal["last_at"])}
    return {
        "signal": signal,
        "country": catalog.find_country(signal["country"]),
        "platform": catalog.PLATFORMS[signal["platform"]],
        "status": load_statuses(db, signal["country"], [signal["platform"]])[0],
        "notes": reports.recent_notes(db, signal["country"], signal["platform"], signal["first_at"] - 1),
        "window": rules.window,
    }


def pending_views(db, rules: Rules) -> tuple[list[dict], int]:
    """The pending signals' views for /signals, and how many are pending in all."""
    views = [signal_view(db, signal, rules) for signal in reports.signals(db, reports.PENDING)]
    return views, reports.count_signals(db, status=reports.PENDING)


def texts_for(db, chat_ids, template: str, **values) -> dict[tuple[str, str | None], str]:
    """The template rendered once in each (language, time zone) the chats read: times on their clocks."""
    return notifier.texts_by_clock(db, chat_ids, template, **values)


