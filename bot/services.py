"""What every handler and loop shares, built once by `app.build_services` and handed in (never imported as globals)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.clock import Clock, system_clock
from bot.config import Settings
from bot.pseudonym import Pseudonyms
from storage.db import Store

if TYPE_CHECKING:  # the poller and the sender import this module
    from bot.chart_maker import ChartMaker
    from bot.chat_jobs import ChatJobs
    from bot.on_demand import StatusLookup
    from bot.poller import Poller
    from bot.sender import Sender


@dataclass
class Services:
    settings: Settings
    store: Store
    pseudonyms: Pseudonyms  # reporters' keyed pseudonyms and the report form's signatures (secret beside the database)
    sender: Sender | None = None  # drains the outbox; None where nothing sends queued messages (console, poll --once)
    poller: Poller | None = None  # polls the sources; /stats shows its last cycle
    chat_jobs: ChatJobs | None = None  # mute summaries and daily digests; /unmute ends mutes through it
    status_lookup: StatusLookup | None = None  # /status of what the poller does not fetch, on demand (with the poller's sources)
    charts: ChartMaker | None = None  # the PNG charts of /status and blocked alerts, once per pair and hour
    # loops that live as long as the bot (the poller, the sender, the reports' upkeep): started after start-up, cancelled at stop
    background: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # what handlers and the crowd workflow read as "now" (tests set it instead of rewriting stored times)
    clock: Clock = system_clock

    async def wake_sender(self) -> None:
        """Deliveries were queued: the sender looks now rather than at its next idle check."""
        if self.sender is not None:
            await self.sender.wake()
