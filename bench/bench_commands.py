"""Chat commands under load: 50 chats send commands at once through the real Application.

Run: python bench/bench_commands.py [--chats 50] [--rounds 5]

The real python-telegram-bot Application polls the fake Bot API over loopback HTTP, runs the
real handlers against a real SQLite file, and replies over HTTP. Each round, every chat sends one
command at the same moment (/watch, /status, /watches, /unwatch in turn); a reply's latency runs
from the moment the update was queued at the fake until the fake received the bot's sendMessage.
Measured twice: the fake in the bot's own process (its HTML checks share the bot's core), and the
fake in a process of its own, as Telegram is.

Goal (issue 2): p95 reply latency under 50 ms with 50 chats.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.telegram import FakeTelegram  # noqa: E402
from tests.harness import running_bot  # noqa: E402

COMMANDS = ["/watch AZ tiktok whatsapp", "/status AZ", "/watches", "/unwatch AZ tiktok", "/watch Armenia"]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


async def burst(fake: FakeTelegram, chats: int, command: str) -> list[float]:
    """Every chat sends `command` at once; the latency of each chat's reply, in seconds."""
    chat_ids = range(1000, 1000 + chats)
    before = len(fake.calls("sendMessage"))
    sent_at = {}
    for chat in chat_ids:
        fake.send_text(chat, chat, command)
        sent_at[chat] = time.time()
    # one wait for the whole round: waiting chat by chat would rescan every call each time
    replies = (await fake.wait_for("sendMessage", count=before + chats, timeout=30))[before:]
    assert sorted(r.chat_id for r in replies) == list(chat_ids), "a chat got no reply or two"
    return [r.time - sent_at[r.chat_id] for r in replies]


async def serve_fake() -> None:
    """The child process: a fake Bot API that runs the bursts the parent asks for on stdin."""
    async with FakeTelegram() as fake:
        print(json.dumps([fake.url, fake.token]), flush=True)
        loop = asyncio.get_running_loop()
        while line := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
            chats, command = line.split(" ", 1)
            print(json.dumps(await burst(fake, int(chats), command)), flush=True)


async def measure(chats: int, rounds: int, separate: bool) -> tuple[list[float], float]:
    latencies: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        if separate:
            child = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--serve-fake", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
            )
            url, token = json.loads(await child.stdout.readline())

            async def run_burst(command: str) -> list[float]:
                child.stdin.write(f"{chats} {command}\n".encode())
                await child.stdin.drain()
                return json.loads(await child.stdout.readline())

            fake = SimpleNamespace(url=url, token=token)
        else:
            fake = await FakeTelegram().start()

            async def run_burst(command: str) -> list[float]:
                return await burst(fake, chats, command)

        try:
            async with running_bot(fake, Path(folder) / "bench.db"):
                await run_burst("/start")  # warm up: first contact, templates compiled
                started = time.perf_counter()
                for round_number in range(rounds):
                    latencies += await run_burst(COMMANDS[round_number % len(COMMANDS)])
                elapsed = time.perf_counter() - started
        finally:
            if separate:
                child.stdin.close()
                await child.wait()
            else:
                await fake.stop()
    return latencies, elapsed


async def main(chats: int, rounds: int) -> None:
    print(f"{chats} chats x {rounds} rounds = {chats * rounds} commands, each round sent at once")
    for separate in (False, True):
        latencies, elapsed = await measure(chats, rounds, separate)
        where = "fake in its own process" if separate else "fake in the bot's process"
        print(
            f"{where:26} replies/s {chats * rounds / elapsed:4.0f}   latency ms: p50 {1000 * percentile(latencies, 0.5):5.1f}"
            f"  p95 {1000 * percentile(latencies, 0.95):5.1f}  max {1000 * max(latencies):5.1f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    asyncio.run(serve_fake() if options.serve_fake else main(options.chats, options.rounds))
