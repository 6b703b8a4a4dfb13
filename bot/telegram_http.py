"""python-telegram-bot's HTTP layer on aiohttp instead of httpx.

Measured (bench/bench_commands.py): httpx's connection pool bookkeeping was the largest cost of
a reply; aiohttp, which the project already uses for OONI, does the same request for less.
Only what the bot sends is supported: form fields, and files as multipart.

It tells apart the two ways a call can fail without an answer (bot/flood.py acts on it): `NotSent`
when the request surely never reached Telegram (no connection, a connect timeout, a 5xx answer),
PTB's `TimedOut` / `NetworkError` when it went out and its fate is unknown. Answers may take tens of
seconds under load, so a call waits ANSWER_TIMEOUT for one before its fate becomes unknown.
"""

from __future__ import annotations

import asyncio

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData


ANSWER_TIMEOUT = 60.0  # seconds; a shorter wait turns a slow Telegram into duplicates


class NotSent(NetworkError):
    """The request did not reach Telegram, or Telegram said it failed (5xx): sending it again cannot duplicate it."""


class AiohttpRequest(BaseRequest):
    def __init__(self, *, read_timeout: float | None = ANSWER_TIMEOUT, connect_timeout: float = 5.0, pool_size: int = 256):
        self._read_timeout = read_timeout
        self._connect_timeout = connect_timeout
        self._pool_size = pool_size
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._pool_size, limit_per_host=self._pool_size)
            self._session = aiohttp.ClientSession(connector=connector, headers={"User-Agent": self.USER_AGENT})

    async def shutdown(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout=BaseRequest.DEFAULT_NONE,
        write_timeout=BaseRequest.DEFAULT_NONE,
        connect_timeout=BaseRequest.DEFAULT_NONE,
        pool_timeout=BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None:
            raise RuntimeError("AiohttpRequest is not initialized")
        read = self._read_timeout if read_timeout is BaseRequest.DEFAULT_NONE else read_timeout
        connect = self._connect_timeout if connect_timeout is BaseRequest.DEFAULT_NONE else connect_timeout
        # a long poll's read timeout is the poll time plus read_timeout, as PTB passes it
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=read)
        data: aiohttp.FormData | dict[str, str] | None = None
        if request_data is not None:
            files = request_data.multipart_data
            if files:
                data = aiohttp.FormData()
                for name, value in request_data.json_parameters.items():
                    data.add_field(name, value)
                for name, (filename, content, mime) in ((k, v[:3]) for k, v in files.items()):
                    data.add_field(name, content, filename=filename, content_type=mime)
            else:
                data = request_data.json_parameters
        try:
            async with self._session.request(method, url, data=data, timeout=timeout) as response:
                body = await response.read()
                if response.status >= 500:
                    raise NotSent(f"Telegram answered {response.status}: {body[:200].decode(errors='replace')}")
                return response.status, body
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as error:
            raise NotSent(f"aiohttp.{error.__class__.__name__}: {error}") from error
        except asyncio.TimeoutError as error:
            raise TimedOut from error
        except aiohttp.ClientError as error:
            raise NetworkError(f"aiohttp.{error.__class__.__name__}: {error}") from error
