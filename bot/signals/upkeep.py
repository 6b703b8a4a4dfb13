"""The crowd data's upkeep loop (app.build_services starts it): signals no report raised (a lowered
threshold, a restart) are opened, and raw reports past REPORT_RETENTION_DAYS are deleted."""

from __future__ import annotations

import asyncio
import logging

from bot.clock import unix
from bot.services import Services
from bot.signals import workflow
from bot.signals.service import opened, rules_of
from storage import reports

log = logging.getLogger(__name__)

PURGE_EVERY = 3600  # seconds between retention purges
SWEEP_EVERY = 600  # seconds between looks for signals no report raised


async def upkeep_loop(svc: Services, every: float = SWEEP_EVERY) -> None:
    """From start-up on: every `every` seconds sweep for signals no report raised, and every
    PURGE_EVERY seconds delete raw reports past REPORT_RETENTION_DAYS."""
    last_purge = None
    while True:
        now = unix(svc.clock())
        try:
            await opened(svc, await svc.store.run(workflow.sweep, now, rules_of(svc), svc.settings.admin_ids))
            if last_purge is None or now - last_purge >= PURGE_EVERY:
                removed = await svc.store.run(reports.purge, now, svc.settings.report_retention_days)
                last_purge = now
                if removed:
                    log.info("deleted %s crowd reports older than %s days", removed, svc.settings.report_retention_days)
        except asyncio.CancelledError:
            raise
        except Exception:  # a busy or failing database: try again next time, the loop must not die
            log.exception("the crowd reports' upkeep failed")
        await asyncio.sleep(every)
