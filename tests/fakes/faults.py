"""The faults the fake APIs answer with (fail_next): a hung answer, an HTTP error, a 429 with Retry-After."""

from __future__ import annotations

import asyncio
from http import HTTPStatus

from aiohttp import web


async def fault_response(fault: int | str, retry_after: float | None, release: asyncio.Event, hang: float,
                         quota: web.Response) -> web.Response:
    """"timeout": hold the client until released or `hang` seconds pass, then 504; 429: `quota` with
    the Retry-After header if given; any other status: that status and its phrase."""
    if fault == "timeout":
        try:
            await asyncio.wait_for(release.wait(), hang)
        except asyncio.TimeoutError:
            pass
        return web.Response(status=504, text="Gateway Timeout")
    if fault == 429:
        if retry_after is not None:
            quota.headers["Retry-After"] = str(retry_after)
        return quota
    return web.Response(status=int(fault), text=HTTPStatus(int(fault)).phrase)
