"""`blockwatch run` as a real process against the fake Bot API: talk to it, SIGTERM it, restart it."""

import asyncio
import os
import signal
import socket
import sys

from tests.fakes.telegram import FakeTelegram


def free_port() -> int:
    """A port nothing listens on now: LISTEN for a bot under test (five people share this machine's 8080)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def start_bot(fake: FakeTelegram, database, cwd, **settings: str):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "OONI_", "IODA_", "DATABASE_", "WEBHOOK_", "LISTEN"))},
        "TELEGRAM_BOT_TOKEN": fake.token,
        "TELEGRAM_API_URL": fake.url,
        "OONI_API_URL": "http://127.0.0.1:9",  # nothing listens: polls fail quietly, never crash
        "IODA_API_URL": "http://127.0.0.1:9",
        "DATABASE_PATH": str(database),
        "POLL_INTERVAL": "3600",
        "LISTEN": f"127.0.0.1:{free_port()}",
        **settings,
    }
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )


async def say(fake, text, chat_id=42):
    before = len(fake.sent(chat_id))
    fake.send_text(chat_id, chat_id, text)
    return (await fake.wait_sent(chat_id, count=before + 1, timeout=20))[-1]


async def stop(process) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    output, _ = await asyncio.wait_for(process.communicate(), timeout=20)
    return process.returncode, output.decode()


async def test_run_stop_restart_keeps_watches(tmp_path):
    database = tmp_path / "state" / "blockwatch.db"
    async with FakeTelegram() as fake:
        process = await start_bot(fake, database, tmp_path)
        try:
            reply = await say(fake, "/watch AZ tiktok")
            assert "Watching Azerbaijan (AZ): TikTok" in reply.text
        finally:
            code, output = await stop(process)
        assert code == 0, output
        assert "Traceback" not in output
        assert fake.token.split(":")[1] not in output  # the token never reaches the log
        assert database.exists()

        process = await start_bot(fake, database, tmp_path)
        try:
            listed = await say(fake, "/watches")
            assert "TikTok" in listed.text and "Azerbaijan (AZ)" in listed.text
        finally:
            code, output = await stop(process)
        assert code == 0, output


async def test_a_token_the_bot_api_refuses_is_one_line(tmp_path):
    async with FakeTelegram(token="123:RIGHT") as fake:
        wrong = type("Wrong", (), {"token": "123:WRONG", "url": fake.url})()
        process = await start_bot(wrong, tmp_path / "db.sqlite", tmp_path)
        output, _ = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode == 2
    lines = output.decode().strip().splitlines()
    assert lines[-1].startswith("blockwatch: TELEGRAM_BOT_TOKEN was refused"), lines
    assert "Traceback" not in output.decode()


async def test_an_unreachable_bot_api_is_retried_quietly_until_stopped(tmp_path):
    unreachable = type("Nowhere", (), {"token": "123:ABC", "url": "http://127.0.0.1:9"})()
    process = await start_bot(unreachable, tmp_path / "db.sqlite", tmp_path)
    await asyncio.sleep(3.5)  # attempts at 0, 1 and 3 s
    code, output = await stop(process)
    assert code == 0, output
    assert output.count("cannot reach the Bot API") == 1  # logged once, not per attempt
    assert "Traceback" not in output
