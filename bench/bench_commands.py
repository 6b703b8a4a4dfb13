"""Chat commands under load: 50 chats send commands at once through the real Application.

Run: python bench/bench_commands.py [--chats 50] [--rounds 5]

The real python-telegram-bot Application polls the fake Bot API over loopback HTTP, runs the
real handlers against a real SQLite file, and replies over HTTP. Each round, every chat sends one
command at the same moment (/watch, /status, /watches, /unwatch in turn); a reply's latency runs
from the moment the update was queued at the fake until the fake received the bot's sendMessage.

Goal (issue 2): p95 reply latency under 50 ms with 50 chats.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes.telegram import FakeTelegram  # noqa: E402
from tests.harness import running_bot  # noqa: E402

COMMANDS = ["/watch AZ tiktok whatsapp", "/status AZ", "/watches", "/unwatch AZ tiktok", "/watch Armenia"]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


async def main(chats: int, rounds: int) -> None:
    latencies: list[float] = []
    async with FakeTelegram() as fake:
        with tempfile.TemporaryDirectory() as folder:
            async with running_bot(fake, Path(folder) / "bench.db") as bot:
                await bot.say("/start", chat_id=1)  # warm up: first contact, templates compiled
                started = time.perf_counter()
                for round_number in range(rounds):
                    command = COMMANDS[round_number % len(COMMANDS)]
                    chat_ids = range(1000, 1000 + chats)
                    before = len(fake.calls("sendMessage"))
                    sent_at = {}
                    for chat in chat_ids:
                        fake.send_text(chat, chat, command)
                        sent_at[chat] = time.time()
                    # one wait for the whole round: waiting chat by chat would rescan every call each time
                    replies = (await fake.wait_for("sendMessage", count=before + chats, timeout=30))[before:]
                    assert sorted(r.chat_id for r in replies) == list(chat_ids), "a chat got no reply or two"
                    latencies.extend(r.time - sent_at[r.chat_id] for r in replies)
                elapsed = time.perf_counter() - started
    replies = chats * rounds
    print(f"{chats} chats x {rounds} rounds = {replies} commands, each round sent at once")
    print(f"replies per second: {replies / elapsed:.0f}  ({elapsed:.2f} s in all)")
    print(
        "reply latency ms: p50 {:.1f}  p95 {:.1f}  max {:.1f}  mean {:.1f}".format(
            1000 * percentile(latencies, 0.5), 1000 * percentile(latencies, 0.95),
            1000 * max(latencies), 1000 * statistics.mean(latencies),
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    asyncio.run(main(options.chats, options.rounds))
