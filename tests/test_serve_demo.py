"""The README's hand trial, as a user runs it: `python -m tests.fakes.serve_demo` (fakes with the
block happening now) and `blockwatch run` against them; the demo's terminal shows the live alert."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys


async def read_until(stream, pattern: str, seen: list[str], timeout: float) -> str:
    """Lines of `stream` until one matches `pattern` (bounded: fails after `timeout` seconds)."""
    async def scan() -> str:
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise AssertionError("the demo ended early:\n" + "".join(seen))
            seen.append(line)
            if re.search(pattern, line):
                return line

    return await asyncio.wait_for(scan(), timeout)


async def test_the_demo_shows_a_live_alert_from_the_real_bot(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "OONI_", "DATABASE_", "POLL_", "LISTEN"))}
    demo = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fakes.serve_demo", "--ooni-port", "0", "--telegram-port", "0",
        "--database", str(tmp_path / "demo.db"), cwd=os.getcwd(), env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    bot = None
    seen: list[str] = []
    try:
        line = await read_until(demo.stdout, r"The bot, for real: ", seen, timeout=60)
        settings = dict(re.findall(r"(\w+)=(\S+)", line))
        assert settings["TELEGRAM_BOT_TOKEN"] == "123:demo"
        bot = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", cwd=tmp_path,
            env={**env, **settings, "POLL_INTERVAL": "1", "LISTEN": "127.0.0.1:0", "LOG_LEVEL": "WARNING"},
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        await read_until(demo.stdout, r"Watching Azerbaijan \(AZ\): TikTok", seen, timeout=60)  # its reply to chat 42's /watch
        await read_until(demo.stdout, r"TikTok — Azerbaijan \(AZ\): signs of blocking", seen, timeout=60)  # the live alert
        await read_until(demo.stdout, r"AS29049 Delta Telecom", seen, timeout=10)
    finally:
        for process in (bot, demo):
            if process is not None and process.returncode is None:
                process.send_signal(signal.SIGTERM)
                await asyncio.wait_for(process.wait(), 30)
