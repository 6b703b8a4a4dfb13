"""Running it for real, through the real CLI in a subprocess: --version, /healthz on LISTEN going
ok → stale → ok while the (fake) OONI API fails and recovers, and webhook mode against the fake Bot
API — the secret token, a refused update that changes nothing, SIGTERM."""

import asyncio
import re
import subprocess
import sys
import tomllib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
from telegram import Update

from bot.health import health
from tests.fakes.ioda import FakeIoda
from tests.fakes.ooni import FakeOoni
from tests.fakes.telegram import FakeTelegram
from tests.test_run_process import free_port, say, start_bot, stop

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
FORGED = {  # an update as Telegram would send it, but not from Telegram
    "update_id": 10_000,
    "message": {
        "message_id": 1, "date": 1_767_225_600, "text": "/watch AZ whatsapp",
        "chat": {"id": 42, "type": "private", "first_name": "Eve"},
        "from": {"id": 42, "is_bot": False, "first_name": "Eve"},
        "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
    },
}


def test_version_is_the_packages():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    done = subprocess.run([sys.executable, "-m", "bot", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert done.stdout.strip() == f"blockwatch {declared}"


# -- /healthz: the rule (pure) -----------------------------------------------------------------


def test_health_is_ok_until_three_intervals_pass_without_a_successful_poll():
    def at(seconds, last_poll=None):
        return health(now=T0 + timedelta(seconds=seconds), started=T0, last_poll=last_poll, poll_interval=60, outbox_waiting=4)

    assert at(180) == (200, {"status": "ok", "last_poll": None, "outbox_waiting": 4})  # the first three intervals
    assert at(181)[0] == 503 and at(181)[1]["status"] == "stale"
    polled = T0 + timedelta(seconds=170)
    assert at(350, polled) == (200, {"status": "ok", "last_poll": "2026-01-01T00:02:50Z", "outbox_waiting": 4})
    assert at(351, polled) == (503, {"status": "stale", "last_poll": "2026-01-01T00:02:50Z", "outbox_waiting": 4})


# -- /healthz: the running bot -------------------------------------------------------------------


async def wait_health(url: str, status: int, timeout: float = 30) -> dict:
    """GET /healthz until it answers `status` (bounded); returns that body."""
    deadline = asyncio.get_running_loop().time() + timeout
    seen = None
    async with aiohttp.ClientSession() as session:
        while asyncio.get_running_loop().time() < deadline:
            try:
                async with session.get(url) as response:
                    seen = (response.status, await response.json())
                    if response.status == status:
                        return seen[1]
            except aiohttp.ClientConnectionError:
                pass  # not listening yet
            await asyncio.sleep(0.1)
    raise AssertionError(f"/healthz never answered {status}; last {seen}")


async def test_healthz_goes_stale_while_ooni_fails_and_recovers(tmp_path):
    port = free_port()
    healthz = f"http://127.0.0.1:{port}/healthz"
    async with FakeTelegram() as fake, FakeOoni() as ooni, FakeIoda() as ioda:
        process = await start_bot(fake, tmp_path / "bw.db", tmp_path, LISTEN=f"127.0.0.1:{port}",
                                  OONI_API_URL=ooni.url, IODA_API_URL=ioda.url, POLL_INTERVAL="1")
        try:
            assert "Watching Azerbaijan (AZ): TikTok" in (await say(fake, "/watch AZ tiktok")).text
            ok = await wait_health(healthz, 200)
            while ok["last_poll"] is None:  # a cycle with AZ watched has succeeded
                ok = await wait_health(healthz, 200)
            assert ok["status"] == "ok" and ok["outbox_waiting"] == 0
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", ok["last_poll"])

            ooni.outage(True)
            stale = await wait_health(healthz, 503)
            assert stale["status"] == "stale"
            assert stale["last_poll"] >= ok["last_poll"]  # the last success is still shown

            ooni.outage(False)
            again = await wait_health(healthz, 200)
            assert again["status"] == "ok" and again["last_poll"] > stale["last_poll"]
        finally:
            code, output = await stop(process)
        assert code == 0, output
        assert "Traceback" not in output


async def test_a_listen_address_in_use_is_one_line(tmp_path):
    async with FakeTelegram() as fake:
        taken = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = taken.sockets[0].getsockname()[1]
        try:
            process = await start_bot(fake, tmp_path / "bw.db", tmp_path, LISTEN=f"127.0.0.1:{port}")
            output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
        finally:
            taken.close()
    assert process.returncode == 2
    assert output.decode().strip().splitlines()[-1].startswith(f"blockwatch: LISTEN 127.0.0.1:{port} cannot be used")
    assert "Traceback" not in output.decode()


# -- webhook mode ---------------------------------------------------------------------------------


async def test_webhook_mode_takes_updates_only_with_its_secret_token_and_runs_the_same_bot(tmp_path):
    port = free_port()
    hook = f"http://127.0.0.1:{port}/telegram/hook"
    async with FakeTelegram() as fake:
        process = await start_bot(fake, tmp_path / "bw.db", tmp_path, LISTEN=f"127.0.0.1:{port}", WEBHOOK_URL=hook, ADMIN_IDS="7")
        try:
            await fake.wait_for("setWebhook", timeout=20)
            registered = fake.webhook
            assert registered["url"] == hook
            assert re.fullmatch(r"[A-Za-z0-9_-]{1,256}", registered["secret_token"])
            assert registered["allowed_updates"] == list(Update.ALL_TYPES)  # as in polling: chat_member too
            await wait_health(f"http://127.0.0.1:{port}/healthz", 200)

            # someone who found the URL: no header, a wrong one — refused, and nothing happens
            assert await fake.post_webhook(FORGED, secret_token=None) in (401, 403)
            assert await fake.post_webhook(FORGED, secret_token="guessed-" + "x" * 20) in (401, 403)

            fake.send_text(42, 42, "/watch AZ tiktok")
            assert await fake.post_webhook() == 200
            reply = (await fake.wait_sent(42, timeout=20))[-1]
            assert "Watching Azerbaijan (AZ): TikTok" in reply.text
            fake.send_text(42, 42, "/watches")
            assert await fake.post_webhook() == 200
            listed = (await fake.wait_sent(42, count=2, timeout=20))[-1]
            assert "TikTok" in listed.text and "WhatsApp" not in listed.text  # the refused /watch changed nothing
            assert len(fake.sent(42)) == 2  # and was never answered

            # the same poller and sender as in polling mode: a poll cycle is done, a broadcast reaches chat 42
            health = await wait_health(f"http://127.0.0.1:{port}/healthz", 200)
            while health["last_poll"] is None:
                health = await wait_health(f"http://127.0.0.1:{port}/healthz", 200)
            fake.send_text(7, 7, "/broadcast AZ tiktok TikTok is blocked on Azercell")
            assert await fake.post_webhook() == 200
            preview = (await fake.wait_sent(7, timeout=20))[-1]
            confirm = preview.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
            fake.press_button(7, 7, preview.result["message_id"], confirm)
            assert await fake.post_webhook() == 200
            finding = (await fake.wait_sent(42, count=3, timeout=20))[-1]
            assert "TikTok is blocked on Azercell" in finding.text
            assert not fake.calls("getUpdates")  # no long polling beside the webhook
        finally:
            code, output = await stop(process)
        assert code == 0, output
        assert "Traceback" not in output
        assert fake.webhook["secret_token"] not in output  # the token never reaches the log


async def test_a_second_instance_on_the_same_token_is_named_once(tmp_path):
    async with FakeTelegram() as fake:
        first = await start_bot(fake, tmp_path / "a.db", tmp_path)
        second = None
        try:
            await fake.wait_for("deleteWebhook", timeout=20)  # polling starts next (a long poll is recorded when it ends)
            second = await start_bot(fake, tmp_path / "b.db", tmp_path)
            # each long poll ends the other's with 409, as Telegram does: let that happen many times
            await fake.wait_for(lambda call: call.method == "getUpdates" and call.status == 409, count=3, timeout=30)
        finally:
            outputs = [await stop(process) for process in (first, second) if process is not None]
    for code, output in outputs:
        assert code == 0, output
        assert output.count("only one Blockwatch may run per token") == 1, output
        assert "a handler failed" not in output and "Traceback" not in output
