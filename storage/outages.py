"""The outage detector's state per country: the `outage_states` table (storage/schema.py), one JSON document per row.

The poller loads a country's OutageState, runs bot/outage.py and saves it back in the same
transaction as the events it produced, as storage/states.py does for blocking.
"""

from __future__ import annotations

import json

import sqlite_utils

from bot.clock import now_unix
from bot.outage import OutageState


def load_outage(db: sqlite_utils.Database, country: str) -> OutageState | None:
    """The country's stored outage state, or None before IODA was first asked about it."""
    rows = list(db.query("select data from outage_states where country = ?", [country]))
    return OutageState.from_dict(json.loads(rows[0]["data"])) if rows else None


def save_outage(db: sqlite_utils.Database, state: OutageState) -> None:
    db.execute(
        "insert into outage_states (country, data, updated_at) values (?, ?, ?) "
        "on conflict(country) do update set data = excluded.data, updated_at = excluded.updated_at",
        [state.country, json.dumps(state.to_dict()), now_unix()],
    )
