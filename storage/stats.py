"""The figures /stats shows, read in one go on the DB thread from every table family."""

from __future__ import annotations

from datetime import datetime, timedelta

from storage import events, outbox, reports, subscriptions


def figures(db, now: datetime) -> dict:
    chats, paused = subscriptions.chat_counts(db)
    watches = subscriptions.watch_counts(db)
    return {
        "chats": chats,
        "paused": paused,
        "watch_count": sum(row["chats"] for row in watches),
        "watches": watches,
        "events_week": events.count_events(db, now - timedelta(days=7)),
        "reports_day": reports.count_reports(db, now - timedelta(days=1)),
        "signals_day": reports.count_signals(db, now - timedelta(days=1)),
        "outbox": outbox.counts(db),
    }
