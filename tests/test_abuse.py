"""Hard to abuse, private by default (issue 12), end to end through the real Application and the fake
Bot API: rights checked when an admin acts, admin views kept out of groups, the database's files
private, and every database outage logged at its start and its end."""

from __future__ import annotations

import logging
import re
import sqlite3
import stat

from bot.clock import system_clock
from storage import audit, outbox, reports
from tests.conftest import ADMIN
from tests.harness import human_pace, running_bot, settled

ALICE = 201  # watches AZ tiktok
GROUP = -1009876


def buttons(call) -> list[str]:
    return [b["callback_data"] for row in call.params["reply_markup"]["inline_keyboard"] for b in row]


# -- rights at every acting step ---------------------------------------------------------------


async def test_a_removed_admin_cannot_confirm_a_broadcast_prepared_before(telegram, tmp_path):
    database = tmp_path / "bot.db"
    async with running_bot(telegram, database, sending=True, admin_ids=frozenset({ADMIN})) as bot:
        await bot.say("/watch AZ tiktok", chat_id=ALICE)
        preview = await bot.say("/broadcast AZ tiktok TikTok is blocked on Delta", chat_id=ADMIN)
        confirm, _ = buttons(preview)
    # restarted without that admin: the pending draft must not reach anyone
    async with running_bot(telegram, database, sending=True, admin_ids=frozenset()) as bot:
        telegram.press_button(ADMIN, ADMIN, preview.result["message_id"], confirm)
        [notice] = await telegram.wait_for("answerCallbackQuery")
        assert notice.params["text"] == "Only the bot's admins can press this."
        await settled(bot)
        assert len(telegram.sent(ALICE)) == 1  # only the /watch answer
        assert await bot.store.run(outbox.deliveries_of, ALICE) == []
        assert [row["action"] for row in await bot.store.run(audit.entries)] == ["broadcast_refused_not_admin"]
    # put back in ADMIN_IDS, the same admin's Confirm works: the check is against ADMIN_IDS as they are now
    async with running_bot(telegram, database, sending=True, admin_ids=frozenset({ADMIN})) as bot:
        telegram.press_button(ADMIN, ADMIN, preview.result["message_id"], confirm)
        finding = (await telegram.wait_sent(ALICE, count=2))[-1]
        assert "TikTok is blocked on Delta" in finding.text


async def test_a_removed_admin_cannot_confirm_or_dismiss_a_signal(telegram, tmp_path):
    database = tmp_path / "bot.db"
    async with running_bot(telegram, database, sending=True, admin_ids=frozenset({ADMIN}), signal_min_reporters=2) as bot:
        for user in (9101, 9102):
            await bot.say("/report AZ whatsapp slow", chat_id=user, user_id=user)
        await telegram.wait_sent(ADMIN)
    async with running_bot(telegram, database, sending=True, admin_ids=frozenset({778}), signal_min_reporters=2) as bot:
        for command in ("/confirm 1 seen", "/dismiss 1"):
            assert "Only the bot's admins" in (await bot.say(command, chat_id=ADMIN)).text
        [signal] = bot.store.run_sync(reports.signals)
        assert signal["status"] == "pending"


# -- admin views stay out of groups ------------------------------------------------------------


async def test_admin_commands_in_a_group_point_to_the_private_chat(telegram, tmp_path):
    async with running_bot(telegram, tmp_path / "bot.db", admin_ids=frozenset({ADMIN})) as bot:
        telegram.set_chat_admins(GROUP, [ADMIN])
        for command in ("/signals", "/stats", "/broadcast AZ tiktok TikTok is blocked", "/confirm 1", "/dismiss 1"):
            before = len(telegram.sent(GROUP))
            answer = await bot.say(command, chat_id=GROUP, user_id=ADMIN)
            assert answer.text == f"Admin commands work only in the private chat with the bot: https://t.me/{bot.app.bot.username}"
            assert len(telegram.sent(GROUP)) == before + 1 and "reply_markup" not in answer.params  # one line, no preview
        assert await bot.store.run(lambda db: db.execute("select count(*) from drafts").fetchone()[0]) == 0
        # in the private chat the same admin gets the real thing
        assert "Chats" in (await bot.say("/stats", chat_id=ADMIN)).text


# -- the database's files are private --------------------------------------------------------------


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_database_its_wal_and_shm_are_0600_in_a_0700_folder(telegram, tmp_path):
    database = tmp_path / "data" / "blockwatch.db"
    async with running_bot(telegram, database) as bot:
        await bot.say("/watch AZ tiktok", chat_id=ALICE)
        files = [database, database.with_name("blockwatch.db-wal"), database.with_name("blockwatch.db-shm")]
        assert all(f.exists() for f in files)
        assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
        assert _mode(database.parent) == 0o700


async def test_a_database_left_readable_by_an_older_release_is_made_private(telegram, tmp_path):
    database = tmp_path / "blockwatch.db"
    sqlite3.connect(database).execute("create table t (x)").connection.close()
    database.chmod(0o644)
    async with running_bot(telegram, database) as bot:
        await bot.say("/watch AZ tiktok", chat_id=ALICE)
        assert _mode(database) == 0o600
        assert _mode(database.with_name("blockwatch.db-wal")) == 0o600


# -- database outages are logged at their start and end, every time ---------------------------------


async def test_each_database_outage_is_logged_once_when_it_starts_and_once_when_it_ends(telegram, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="storage.db")
    database = tmp_path / "bot.db"
    async with running_bot(telegram, database) as bot:
        bot.store.run_sync(lambda db: db.execute("PRAGMA busy_timeout=50"))  # fail fast while another writer holds the lock
        for outage in range(2):
            holder = sqlite3.connect(database, isolation_level=None)
            holder.execute("BEGIN EXCLUSIVE")  # another process holds the write lock: writes fail
            for n in range(3):  # three writes fail during the outage (each answered with an apology)
                telegram.send_text(300 + n, 300 + n, "/watch AZ tiktok")
            await telegram.wait_for("sendMessage", count=3 * (outage + 1) + outage, timeout=10)
            holder.execute("ROLLBACK")
            holder.close()
            assert "TikTok" in (await bot.say("/watch AZ tiktok", chat_id=400 + outage)).text  # it works again
        lines = [r.getMessage() for r in caplog.records if r.name == "storage.db"]
        starts = [line for line in lines if "is unavailable" in line]
        ends = [line for line in lines if "is available again" in line]
        assert len(starts) == 2 and len(ends) == 2, lines
        assert all("database is locked" in line for line in starts), starts
        # the three /watch writes (the reports' upkeep loop may have tried a purge in the same outage)
        assert all(int(re.search(r"\((\d+) calls failed meanwhile\)", line)[1]) >= 3 for line in ends), ends


# -- a brigade of fresh accounts is a burst, not a crowd ------------------------------------------


async def test_a_hundred_fresh_accounts_in_a_second_reach_the_admins_as_a_burst(telegram, tmp_path):
    async with running_bot(telegram, tmp_path / "bot.db", sending=True, admin_ids=frozenset({ADMIN})) as bot:
        instant = system_clock()
        bot.services.clock = lambda: instant  # within one second, however loaded this machine is
        first = 6_000_000_000
        for n in range(100):  # all at once, as a script sends them
            telegram.send_text(first + n, first + n, "/report UG whatsapp slow")
        for n in range(100):
            await telegram.wait_sent(first + n)
        # the admins are told when the burst is as large as a signal: as a burst, with 3 people counted
        [alert] = await telegram.wait_sent(ADMIN)
        assert "3 different people" in alert.text and "Burst of 5 new accounts in 1 second: 2 of them" in alert.text
        assert "No measurement evidence" in alert.text
        # the signal grew with the burst: /signals shows all of it, still 3 people
        listing = await bot.say("/signals", chat_id=ADMIN)
        assert "3 different people" in listing.text and "100 different people" not in listing.text
        assert "Burst of 100 new accounts in 1 second: 97 of them came too fast to be people and are not counted." in listing.text
        [signal] = bot.store.run_sync(reports.signals)
        assert (signal["reporters"], signal["burst_accounts"], signal["burst_held"]) == (3, 100, 97)


async def test_new_people_a_second_apart_still_make_a_signal_on_one_thin_network(telegram, tmp_path):
    async with running_bot(telegram, tmp_path / "bot.db", sending=True, admin_ids=frozenset({ADMIN})) as bot:
        bot.services.clock = human_pace(step=1.0)  # five people who never used the bot, a second apart
        for n in range(5):
            user = 6_100_000_000 + n
            await bot.say("/report AZ whatsapp down AS29049", chat_id=user, user_id=user)  # one network: no bonus
        [alert] = await telegram.wait_sent(ADMIN)
        assert "5 different people" in alert.text and "Burst" not in alert.text
        [signal] = bot.store.run_sync(reports.signals)
        assert (signal["reporters"], signal["burst_held"], signal["score"]) == (5, 0, 5.0)


# -- a lost secret is never silently replaced --------------------------------------------------------


async def _cli(*args: str, database, fake) -> tuple[int, str]:
    import asyncio
    import os
    import sys

    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_", "LISTEN"))},
           "TELEGRAM_BOT_TOKEN": fake.token, "TELEGRAM_API_URL": fake.url, "DATABASE_PATH": str(database),
           "OONI_API_URL": "http://127.0.0.1:9", "IODA_API_URL": "http://127.0.0.1:9", "LISTEN": "127.0.0.1:0"}
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", *args, cwd=database.parent, env=env,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode, output.decode()


async def test_a_lost_secret_with_reports_stops_run_until_restored_or_reset(telegram, tmp_path):
    import shutil

    database = tmp_path / "blockwatch.db"
    secret = tmp_path / "blockwatch.db.secret"
    async with running_bot(telegram, database) as bot:
        await bot.say("/report AZ whatsapp slow", chat_id=9201, user_id=9201)
    shutil.copy(secret, tmp_path / "backup.secret")
    secret.unlink()

    code, output = await _cli("run", database=database, fake=telegram)
    assert code == 2 and "Traceback" not in output, output
    [line] = output.strip().splitlines()
    assert str(secret) in line and "holds 1 crowd reports" in line
    assert "Restore it from your backup" in line and "`blockwatch reset-crowd`" in line
    assert not secret.exists()  # never a silent new key
    try:  # the same refusal wherever the bot is built (console, poll --once, tests)
        async with running_bot(telegram, database):
            raise AssertionError("the bot started with a new secret")
    except Exception as error:
        assert type(error).__name__ == "MissingSecret" and not secret.exists()

    shutil.copy(tmp_path / "backup.secret", secret)  # restored: the same person is still one person
    async with running_bot(telegram, database) as bot:
        again = await bot.say("/report AZ whatsapp slow", chat_id=9201, user_id=9201)
        assert "already" in again.text.lower()  # a duplicate: the old pseudonym matched
    secret.unlink()

    code, output = await _cli("reset-crowd", database=database, fake=telegram)
    assert code == 0 and output.strip() == (
        f"deleted 1 crowd reports and every reporter pseudonym in {database}; daily counts and signals kept; "
        f"the next start creates a new secret in {secret}")
    async with running_bot(telegram, database) as bot:
        fresh = await bot.say("/report AZ whatsapp slow", chat_id=9201, user_id=9201)
        assert "your report is in" in fresh.text
        assert secret.exists() and bot.store.run_sync(reports.stored_reports) == 1


# -- /forgetme takes the person's words out of everything the bot stores ----------------------------


async def test_forgetme_removes_the_words_and_ids_from_every_file_the_bot_writes(telegram, tmp_path):
    from tests.test_reports import id_forms, reporter

    database = tmp_path / "blockwatch.db"
    words = "Zebrafinch-Quokka outage at Ganjlik metro"
    author = reporter(90)
    async with running_bot(telegram, database, sending=True, admin_ids=frozenset({ADMIN}), signal_min_reporters=3) as bot:
        bot.services.clock = human_pace()
        await bot.say("/watch AZ whatsapp", chat_id=author["user_id"], user_id=author["user_id"])
        await bot.say(f"/report AZ whatsapp slow Azercell {words}", chat_id=author["user_id"], user_id=author["user_id"],
                      username=author["username"], first_name=author["first_name"])
        for n in (91, 92):
            await bot.say("/report AZ whatsapp slow Delta", chat_id=reporter(n)["user_id"], user_id=reporter(n)["user_id"])
        [alert] = await telegram.wait_sent(ADMIN)
        assert f"<i>{words}</i>" in alert.text  # the admins were shown the note (sent, so the outbox holds it)
        await settled(bot)
        files = sorted(p for p in tmp_path.iterdir() if p.name.startswith("blockwatch.db"))
        assert words.encode() in b"".join(p.read_bytes() for p in files)  # the scan can see it while it is there

        done = await bot.confirm("/forgetme", chat_id=author["user_id"], user_id=author["user_id"])
        assert "this chat and its 1 watches are deleted" in done.text
        assert "Your 1 reports are deleted." in done.text
        assert "The 1 notes you wrote in them are deleted too, and taken out of 1 messages to the bot's admins" in done.text

        [message] = [m for m in bot.store.run_sync(lambda db: list(db.query("select text from outbox_messages where kind = 'signal'")))]
        assert "<i>🗑</i>" in message["text"] and "3 different people" in message["text"]  # the rest stays for the admins
        files = sorted(p for p in tmp_path.iterdir() if p.name.startswith("blockwatch.db"))
        assert {p.name for p in files} >= {"blockwatch.db", "blockwatch.db-wal", "blockwatch.db-shm", "blockwatch.db.secret"}
        contents = {p.name: p.read_bytes() for p in files}
        for name, content in contents.items():
            for needle in (words.encode(), "Zebrafinch".encode(), words.encode("utf-16-le"), *id_forms(author)):
                assert needle not in content, (name, needle)
