"""The seam between the measurement sources and the rest: what the poller and the backtest ask of a source.

A source turns one API into plain records for its detector — OONI (bot/sources/ooni/) into
`Observation`s for bot/detector.py, IODA (bot/sources/ioda/) into `OutageAlert`s for
bot/outage.py — and owns the links to its evidence (OONI Explorer, IODA's dashboard). Neither
the poller nor the backtest knows which API is behind it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Protocol, TypeVar, runtime_checkable

Record = TypeVar("Record", covariant=True)


class SourceError(Exception):
    """The source could not answer after its retries: the caller keeps its state (never an unblock)."""


@runtime_checkable
class Source(Protocol[Record]):
    """One API as a source: one HTTP session for its life (`async with`, or `close()`)."""

    name: str  # "OONI", "IODA": how logs and the poll's summary call it
    requests_made: int  # HTTP requests sent, retries included

    async def observe(self, country: str, platforms: Iterable[str], now: datetime) -> list[Record]:
        """The live poll of one country's platforms as of `now`; SourceError when it cannot be had."""
        ...

    async def snapshot(self, country: str, platforms: Iterable[str], now: datetime) -> list[Record]:
        """One look at a country as of `now` that leaves the live poll's memory alone (/status on demand)."""
        ...

    async def history(self, country: str, platforms: Iterable[str], since: date, until: date) -> list[Record]:
        """The records of [since, until) for the backtest, each stamped with when it became known."""
        ...

    async def close(self) -> None:
        ...


def country_code(country: str) -> str:
    """"AZ" from "az" or " AZ "; SourceError for anything that is not an ISO 3166-1 alpha-2 code."""
    cc = (country or "").strip().upper()
    if not (len(cc) == 2 and cc.isascii() and cc.isalpha()):
        raise SourceError(f"not an ISO 3166-1 alpha-2 country code: {country!r}")
    return cc
