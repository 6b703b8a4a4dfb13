"""`blockwatch console`: the real handlers and database, typed in a terminal, without a token."""

import asyncio
import os
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from storage import subscriptions
from tests.fakes.ioda import FakeIoda
from tests.fakes.ooni import FakeOoni
from tests.fakes.serve_demo import episode_now
from storage.db import connect


# no OONI or IODA here: /status's on-demand fetch finds a closed port at once (no retries reach the internet)
CLOSED = {"OONI_API_URL": "http://127.0.0.1:9", "IODA_API_URL": "http://127.0.0.1:9/v2"}


def run_console(tmp_path, lines: str, *args: str, env: dict[str, str] | None = None) -> str:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_"))}, **CLOSED, **(env or {})}
    env["DATABASE_PATH"] = str(tmp_path / "console.db")
    done = subprocess.run(
        [sys.executable, "-m", "bot", "console", *args], input=lines, env=env, cwd=tmp_path,
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


def test_a_user_without_a_token_watches_and_reads_status(tmp_path):
    out = run_console(tmp_path, "/watch az tiktk\n/watch Azerbaijan tiktok\n/status AZ tiktok\nhello\n")
    assert "Did you mean tiktok?" in out
    assert "Watching Azerbaijan (AZ): TikTok" in out
    assert "not known yet" in out
    assert "commands only" in out
    assert "<b>" not in out and "&lt;" not in out  # the terminal shows text, not Telegram HTML
    db = connect(tmp_path / "console.db")
    assert subscriptions.chat_watches(db, 10_000) == [("AZ", "tiktok")]


async def test_status_in_the_console_fetches_a_country_nobody_watches_on_demand(tmp_path):
    """No poll loop runs in the console, yet /status answers from OONI, as the bot does for any country."""
    now = datetime.now(timezone.utc)
    rows = [r for r in episode_now(now) if r["measurement_start_time"] < now.strftime("%Y-%m-%d %H")]
    async with FakeOoni(rows) as ooni, FakeIoda({}) as ioda:
        out = await asyncio.to_thread(
            run_console, tmp_path, "/status AZ tiktok\n/status UG tiktok\n",
            env={"OONI_API_URL": ooni.url, "IODA_API_URL": ioda.url},
        )
    assert "TikTok: signs of blocking on AS29049" in out, out
    assert "TikTok: no recent measurements on OONI" in out  # UG: asked, and OONI had nothing
    assert "not known yet" not in out
    assert ooni.requests, "the console asked the fake OONI nothing"
    [picture] = re.findall(r"\[picture: (\S+)\]", out)  # the chart, written where the user can open it
    assert Path(picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    Path(picture).unlink()


def test_buttons_are_pressed_by_number_and_admin_is_a_flag(tmp_path):
    out = run_console(tmp_path, "/report\n#1\n#2\n/stats\n", "--admin")
    assert "(type #1 to press)" in out
    assert "Which app or site?" in out  # #1 pressed the first country
    assert "commands only" in out  # #2 was on the keyboard the edit replaced: it is just text now
    assert "Blockwatch now" in out  # /stats answered: the console user is an admin for this session
    refused = run_console(tmp_path, "/stats\n")
    assert "Only the bot's admins" in refused


def test_console_piped_into_head_ends_quietly(tmp_path):
    """`blockwatch console | head`: the reader goes away; no BrokenPipe traceback, exit 0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_"))}
    env["DATABASE_PATH"] = str(tmp_path / "console.db")
    done = subprocess.run(
        f"{sys.executable} -m bot console | head -n 1", shell=True, input="/help\n" * 50, env=env, cwd=tmp_path,
        capture_output=True, text=True, timeout=60,
    )
    assert done.stdout.startswith("Blockwatch console") and done.stdout.count("\n") == 1
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
