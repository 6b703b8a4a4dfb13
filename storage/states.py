"""The detector's state per (country, platform): the `states` table, one JSON document per row.

The poller loads a pair's BlockState, runs the detector and saves it back in the same transaction
as the events it produced, so a restart neither repeats nor misses an event.
"""

from __future__ import annotations

import json
import sqlite_utils

from bot.clock import now_unix
from bot.detector import BlockState

def load_state(db: sqlite_utils.Database, country: str, platform: str) -> BlockState | None:
    """The stored state of a pair, or None before its first poll."""
    rows = list(db.query("select data from states where country = ? and platform = ?", [country, platform]))
    return BlockState.from_dict(json.loads(rows[0]["data"])) if rows else None


def save_state(db: sqlite_utils.Database, state: BlockState) -> None:
    """Insert or replace the pair's state."""
    db.execute(
        "insert into states (country, platform, data, updated_at) values (?, ?, ?, ?) "
        "on conflict(country, platform) do update set data = excluded.data, updated_at = excluded.updated_at",
        # to_json: the same text as json.dumps(to_dict()), unchanged networks not serialised again
        [state.country, state.platform, state.to_json(), now_unix()],
    )


def all_states(db: sqlite_utils.Database, country: str | None = None) -> list[BlockState]:
    """Every stored state (of one country if given), ordered by country and platform."""
    if country is None:
        rows = db.query("select data from states order by country, platform")
    else:
        rows = db.query("select data from states where country = ? order by platform", [country])
    return [BlockState.from_dict(json.loads(row["data"])) for row in rows]
