"""What every handler and loop shares, built once by the app and handed in (never imported as globals)."""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Awaitable, Callable
from typing import Any

from bot.config import Settings
from storage.db import Store


@dataclass
class Services:
    settings: Settings
    store: Store
    # loops that live as long as the bot (the poller, the sender): started after start-up, cancelled at stop
    background: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # live objects other parts look at (/stats reads the poller's last result, /forgetme the reports' eraser)
    extras: dict[str, Any] = field(default_factory=dict)
