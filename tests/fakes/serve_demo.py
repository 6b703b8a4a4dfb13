"""Watch the whole journey by hand: the fake OONI API with the Azerbaijan TikTok block happening
NOW (re-dated real rows: blocked on AS29049, AS41997 and AS31721 since yesterday 00:00 UTC, still
on), and the fake Telegram Bot API, which prints every message the bot sends.

    python -m tests.fakes.serve_demo          # leave it running; it prints the lines below with its ports

Then, in another terminal, either
- the terminal only:  `blockwatch console` (type /watch AZ tiktok, then Ctrl-D) and
  `blockwatch poll --once` print the alert, or
- the real bot:       `blockwatch run` against the fake Bot API; a journalist (chat 42) has
  already sent /watch AZ tiktok, the first poll finds the block and the alert appears here.
Lines typed into this terminal are sent to the bot as that journalist's messages.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime, timedelta, timezone

from bot.render import to_terminal
from tests.fakes.ooni import FakeOoni, az_tiktok_episode
from tests.fakes.telegram import Call, FakeTelegram

JOURNALIST = 42
SHOWN = {"sendMessage": "", "editMessageText": " (edited)", "sendPhoto": " (photo)"}


class ShowingTelegram(FakeTelegram):
    """The fake Bot API, printing what the bot sends as the journalist would read it."""

    def _record(self, call: Call) -> None:
        super()._record(call)
        if call.method in SHOWN and call.ok:
            body = call.params.get("text") or call.params.get("caption") or ""
            print(f"\n── bot → chat {call.chat_id}{SHOWN[call.method]}:\n{to_terminal(str(body))}", flush=True)


def episode_now(now: datetime) -> list[dict]:
    yesterday = (now - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    return az_tiktok_episode(yesterday, yesterday + timedelta(days=4), after=timedelta(0))


async def serve(ooni_port: int, telegram_port: int, database: str) -> None:
    rows = [r for r in episode_now(datetime.now(timezone.utc))
            if r["measurement_start_time"] < (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%d %H")]
    async with FakeOoni(rows, port=ooni_port) as ooni, ShowingTelegram("123:demo", port=telegram_port) as telegram:
        telegram.send_text(JOURNALIST, JOURNALIST, "/watch AZ tiktok", first_name="Journalist")
        common = f"DATABASE_PATH={database} OONI_API_URL={ooni.url}"
        print(
            f"fake OONI API on {ooni.url} ({len(rows)} measurements: TikTok blocked in AZ since yesterday)\n"
            f"fake Telegram Bot API on {telegram.url} (token 123:demo)\n\n"
            f"In the terminal:   {common} blockwatch console     (/watch AZ tiktok, Ctrl-D)\n"
            f"                   {common} blockwatch poll --once\n"
            f"The bot, for real: {common} TELEGRAM_API_URL={telegram.url} TELEGRAM_BOT_TOKEN=123:demo "
            f"POLL_INTERVAL=10 blockwatch run\n\n"
            f"Chat 42 has sent /watch AZ tiktok; type here to send more as chat 42. Ctrl-C stops.",
            flush=True,
        )
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:  # no terminal (run in the background): just serve
                await asyncio.Event().wait()
            if line.strip():
                telegram.send_text(JOURNALIST, JOURNALIST, line.strip(), first_name="Journalist")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ooni-port", type=int, default=8765)
    parser.add_argument("--telegram-port", type=int, default=8766)
    parser.add_argument("--database", default="demo.db", help="the DATABASE_PATH the printed commands use")
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.ooni_port, args.telegram_port, args.database))
    except KeyboardInterrupt:
        pass
