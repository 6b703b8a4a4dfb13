"""What a chat asked to get at a time of its own: the summary when a mute ends (/mute) and the daily
digest (/digest). A loop looks every EVERY seconds (`ChatJobs.tick`, with an injectable clock) and
queues what is due through the outbox, like an alert.

Each summary or digest is queued in ONE transaction with the mark that it was queued (the mute row
deleted, the digest's local day stored), and its outbox ref (`mute:…`, `digest:<chat>:<day>`) makes
a second queueing a no-op: a restart neither loses one (a digest missed while the bot was down is
due as soon as it is up again) nor sends one twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import date, datetime, timedelta

from bot import catalog, chat_clock, notifier, recap
from bot.clock import unix, utc
from bot.services import Services
from storage import chat_settings, events, findings, reports, subscriptions
from storage.db import transaction

log = logging.getLogger(__name__)

EVERY = 30.0  # seconds between looks: a digest at 09:00 goes out by 09:00:30
DIGEST_SPAN = timedelta(hours=24)
SUMMARY_EVENTS = 200  # events read for one summary (a week-long mute of many watches stays one message)


def _watched(db, chat_id: int, country: str = "", platform: str = "") -> set[tuple[str, str]]:
    return {(cc, p) for cc, p in subscriptions.chat_watches(db, chat_id)
            if country in ("", cc) and platform in ("", p)}


def _chat(db, chat_id: int) -> tuple[str, str | None] | None:
    """(language, zone) of a chat the bot may send to; None when it is gone or paused."""
    row = subscriptions.get_chat(db, chat_id)
    if row is None or row["paused"]:
        return None
    return row["language"] or "en", chat_settings.get(db, chat_id).zone


def queue_mute_summary(db, mute: chat_settings.Mute, now: datetime) -> int:
    """The mute is over: one message with what happened meanwhile (or that nothing did). Deliveries queued."""
    with transaction(db):
        if not chat_settings.remove_mute(db, mute):
            return 0  # another process summed it up already
        chat = _chat(db, mute.chat_id)
        if chat is None:
            return 0
        lang, zone = chat
        since = utc(mute.since)
        found = events.recent_events(db, since=since, limit=SUMMARY_EVENTS)
        watched = _watched(db, mute.chat_id, mute.country, mute.platform)
        text = notifier.render_fitting(
            "chat_recap", lang, zone=zone, kind="mute", since=since, until=min(now, utc(mute.until)),
            lines=recap.lines(found, watched), findings=[], signals=[],
            country=catalog.find_country(mute.country) if mute.country else None,
            platform=catalog.PLATFORMS.get(mute.platform),
        )
        return notifier.queue_text(db, [mute.chat_id], text, kind="mute_summary",
                                   ref=f"mute:{mute.chat_id}:{mute.country}:{mute.platform}:{mute.since}")


def queue_digest(db, chat_id: int, day: date, now: datetime) -> int:
    """The chat's digest of the last 24 h, queued and marked for its local `day`. Deliveries queued."""
    with transaction(db):
        chat = _chat(db, chat_id)
        if chat is None:
            return 0
        lang, zone = chat
        since = now - DIGEST_SPAN
        watched = _watched(db, chat_id)
        countries = sorted({cc for cc, _ in watched})
        shown_findings = [
            f for cc in countries for f in findings.recent_findings(db, cc, None, since, limit=5)
            if f["platform"] is None or (cc, f["platform"]) in watched
        ]
        open_signals = [s for s in reports.signals(db) if (s["country"], s["platform"]) in watched]
        text = notifier.render_fitting(
            "chat_recap", lang, zone=zone, kind="digest", since=since, until=now,
            lines=recap.lines(events.recent_events(db, since=since, limit=SUMMARY_EVENTS), watched),
            findings=shown_findings,
            signals=[(catalog.find_country(s["country"]), catalog.PLATFORMS[s["platform"]], s["reporters"])
                     for s in open_signals if s["platform"] in catalog.PLATFORMS],
            watches=len(watched), country=None, platform=None,
        )
        queued = notifier.queue_text(db, [chat_id], text, kind="digest", ref=f"digest:{chat_id}:{day.isoformat()}")
        chat_settings.mark_digest(db, chat_id, day.isoformat())
        return queued


def queue_due(db, now: datetime) -> int:
    """Every mute summary and digest due at `now`, queued (DB thread). Deliveries queued."""
    queued = 0
    for mute in chat_settings.ended_mutes(db, unix(now)):
        queued += queue_mute_summary(db, mute, now)
    for chat_id, settings in chat_settings.with_digest(db):
        day = chat_clock.digest_due(now, settings.zone, settings.digest_at, settings.digest_day)
        if day is not None:
            queued += queue_digest(db, chat_id, day, now)
    return queued


class ChatJobs:
    """The loop behind mute summaries and digests; `tick()` is one look (tests drive it with their clock)."""

    def __init__(self, services: Services, clock: Callable[[], datetime] | None = None, every: float = EVERY):
        self.services = services
        self.clock = clock or services.clock
        self.every = every

    async def tick(self) -> int:
        queued = await self.services.store.run(queue_due, self.clock())
        if queued:
            await self.services.wake_sender()
        return queued

    async def unmute(self, chat_id: int) -> int:
        """/unmute: every mute of the chat ends now, each with its summary."""
        now = self.clock()

        def end_all(db) -> int:
            return sum(queue_mute_summary(db, mute, now) for mute in chat_settings.mutes_of(db, chat_id))

        queued = await self.services.store.run(end_all)
        await self.services.wake_sender()
        return queued

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # the database busy, a bug: the next look tries again, nothing is marked done
                log.exception("queueing mute summaries and digests failed; trying again in %.0fs", self.every)
            await asyncio.sleep(self.every)
