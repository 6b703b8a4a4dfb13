"""GET JSON from a measurement API with retries: one aiohttp session for the source's life, backoff
with jitter, 429 honoured, an outage logged once and so is its end.

Faults (timeouts, 5xx, 408, 429, malformed JSON, a body its `check` refuses) are retried with
exponential backoff and jitter (429: four times longer, or the server's Retry-After); after
`retries` the call raises SourceError and the caller keeps its state. A 4xx other than 408/429
is a request the API will never accept: it fails at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from bot.sources.base import SourceError


class Fault(Exception):
    """One failed attempt worth retrying; a body `check` raises it for an answer it cannot use."""

    def __init__(self, reason: str, *, retry_after: float | None = None, quota: bool = False):
        super().__init__(reason)
        self.retry_after, self.quota = retry_after, quota


class JsonClient:
    """One API's HTTP side: `await client.get(path, params, check)`; counts requests and failed attempts."""

    def __init__(
        self,
        name: str,
        base_url: str,
        log: logging.Logger,
        *,
        session: aiohttp.ClientSession | None = None,
        user_agent: str = "blockwatch (internet censorship alerts bot)",
        timeout: float = 30,
        retries: int = 4,
        backoff: float = 1.0,
        sleep: Callable[[float], Any] = asyncio.sleep,
        max_retry_after: float = 120.0,
    ):
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.log = log
        self.user_agent = user_agent
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_retry_after = max_retry_after  # a longer Retry-After ends this call; later calls wait it out
        self._sleep = sleep
        self.session = session
        self._own_session = session is None
        self._outage_since: float | None = None
        self._outage_failures = 0
        self._quota_until = 0.0
        self.requests_made = 0  # HTTP requests sent, retries included
        self.errors = 0  # attempts that failed

    def open(self) -> aiohttp.ClientSession:
        if self.session is None:
            self.session = aiohttp.ClientSession(headers={"User-Agent": self.user_agent})
            self._own_session = True
        return self.session

    async def close(self) -> None:
        if self._own_session and self.session is not None:
            await self.session.close()
            self.session = None

    def _delay(self, attempt: int, fault: Fault) -> float:
        base = self.backoff * 2**attempt * (4 if fault.quota else 1)  # over quota: back off harder
        delay = base / 2 + random.uniform(0, base / 2)  # jitter: pollers of many bots don't retry in step
        if fault.retry_after is not None:
            delay = max(delay, fault.retry_after)
        return delay

    def _failed(self, path: str, reason: str) -> None:
        self.errors += 1
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            self._outage_failures = 1
            self.log.warning("%s API failing (%s: %s); retrying with backoff, logged once until it recovers", self.name, path, reason)
        else:
            self._outage_failures += 1
            self.log.debug("%s API still failing (%s: %s)", self.name, path, reason)

    def _answered(self) -> None:
        if self._outage_since is not None:
            self.log.info(
                "%s API recovered after %d failed attempts over %.0f s",
                self.name, self._outage_failures, time.monotonic() - self._outage_since,
            )
            self._outage_since = None
            self._outage_failures = 0

    async def get(self, path: str, params: dict[str, str], check: Callable[[Any], Any]) -> Any:
        """GET a JSON document and `check` it; retry faults; SourceError when retries run out."""
        if time.monotonic() < self._quota_until:
            raise SourceError(f"{self.name} API quota exceeded; waiting {self._quota_until - time.monotonic():.0f} s more")
        session = self.open()
        url = self.base_url + path
        for attempt in range(self.retries + 1):
            self.requests_made += 1
            try:
                async with session.get(url, params=params, timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                    raw = await resp.read()
                    text = raw[:200].decode("utf-8", "replace")
                    if resp.status == 429:
                        raise Fault("HTTP 429 quota exceeded", retry_after=retry_after(resp), quota=True)
                    if resp.status >= 500 or resp.status == 408:
                        raise Fault(f"HTTP {resp.status}")
                    if resp.status != 200:
                        # A 4xx is a request the API will never accept: retrying cannot help.
                        self._failed(path, f"HTTP {resp.status} {text}")
                        raise SourceError(f"{self.name} API refused {path}: HTTP {resp.status} {text}")
                    try:
                        body = json.loads(raw)
                    except ValueError:  # UnicodeDecodeError included
                        raise Fault("malformed JSON") from None
                    result = check(body)
            except Fault as fault:
                failure = fault
            except asyncio.TimeoutError:
                failure = Fault(f"no answer within {self.timeout:g} s")
            except aiohttp.ClientError as exc:
                failure = Fault(f"{type(exc).__name__}: {exc}")
            else:
                self._answered()
                return result
            self._failed(path, str(failure))
            if failure.quota and failure.retry_after is not None and failure.retry_after > self.max_retry_after:
                self._quota_until = time.monotonic() + failure.retry_after
                raise SourceError(f"{self.name} API quota exceeded; retry after {failure.retry_after:.0f} s")
            if attempt == self.retries:
                raise SourceError(f"{self.name} API {path} failed {attempt + 1} times, last: {failure}")
            await self._sleep(self._delay(attempt, failure))
        raise AssertionError("unreachable")


class HttpSource:
    """What every source over a JsonClient shares: its request counters and its one session's life (`async with`)."""

    client: JsonClient

    @property
    def requests_made(self) -> int:
        return self.client.requests_made

    @property
    def errors(self) -> int:
        return self.client.errors

    async def __aenter__(self):
        self.client.open()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        await self.client.close()


def retry_after(resp: aiohttp.ClientResponse) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date), if the server sent one."""
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError):
        return None
