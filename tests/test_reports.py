"""Crowd reports end to end: the real Application against the fake Bot API, a real SQLite file.

Covers the /report forms and the button form (cancel, expiry, forged and other people's buttons),
the throttle, signals from distinct people reaching the admins with the detector's evidence,
one account failing to make a signal, /signals, /confirm and /dismiss, and the reporters' safety:
no id, username or name in the database file or the logs, /forgetme, the retention purge.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from datetime import datetime, timedelta, timezone

import pytest

from bot import crowd, report_form
from bot.detector import BLOCKED, BlockState, NetworkState
from bot.parsing import BadInput
from bot.report_form import ReportDraft, parse_report
from bot.signals import workflow
from storage import outbox, privacy, reports, states
from tests.conftest import ADMIN
from tests.harness import human_pace, running_bot, settled

AZERCELL, DELTA, AZTELEKOM = 31721, 29049, 28787
NOW = int(time.time())


def reporter(n: int) -> dict:
    """A reporter with an id as large as Telegram's, and a username and name to look for."""
    return {"user_id": 5_550_000_000 + n * 7919, "username": f"reporter_handle_{n}", "first_name": f"Reportername{n}"}


async def say_as(bot, who: dict, text: str, chat_id: int | None = None):
    chat = who["user_id"] if chat_id is None else chat_id
    return await bot.say(text, chat_id=chat, user_id=who["user_id"], username=who["username"], first_name=who["first_name"])


@pytest.fixture
async def crowd_bot(telegram, tmp_path):
    """The bot with the sender wired, three distinct people making a signal, one admin."""
    async with running_bot(telegram, tmp_path / "blockwatch.db", sending=True, admin_ids=frozenset({ADMIN}),
                           signal_min_reporters=3) as running:
        running.services.clock = human_pace()  # its reporters are people, seconds apart
        yield running


def stored(bot) -> list[dict]:
    return bot.store.run_sync(lambda db: list(db.query("select * from reports order by id")))


# -- parsing, pure -----------------------------------------------------------------------------


def test_parse_report_forms():
    draft = parse_report(["AZ", "tiktok", "blocked", "Azercell", "since", "noon"])
    assert draft == ReportDraft("AZ", "tiktok", "blocked", AZERCELL, "Azercell Telecom Ltd", True, "since noon")
    assert parse_report(["Azerbaijan", "whatsapp", "down", "AS29049"]).asn == DELTA
    assert parse_report(["whatsapp", "slow"], "AZ") == ReportDraft("AZ", "whatsapp", "slow")
    assert parse_report(["yt", "slow"], "AZ").platform == "youtube"  # not Mayotte
    assert parse_report(["az", "ig", "медленно"]).symptom == "slow"
    assert parse_report(["AZ", "telegram", "bloklanıb", "nowhere", "works"]) == ReportDraft(
        "AZ", "telegram", "blocked", note="nowhere works")
    assert parse_report(["tiktok"], None) == ReportDraft(platform="tiktok")  # the form asks the rest
    assert parse_report([]) == ReportDraft()
    assert parse_report(["AZ", "tiktok"]) == ReportDraft("AZ", "tiktok")


@pytest.mark.parametrize("args, kind", [
    (["AZ", "tiktk", "slow"], "unknown_platform"),
    (["AZ", "tiktok", "sad"], "unknown_symptom"),
    (["Narnia", "tiktok", "slow"], "unknown_country"),
])
def test_parse_report_errors(args, kind):
    with pytest.raises(BadInput) as error:
        parse_report(args)
    assert error.value.kind == kind


# -- storage: tallies in SQL -------------------------------------------------------------------


@pytest.fixture
def db(tmp_path):
    from storage.db import connect

    database = connect(tmp_path / "reports.db")
    yield database
    database.close()


def test_the_sql_tally_matches_the_pure_one(db):
    import random

    rng = random.Random(5)
    made = [crowd.Report(n.to_bytes(16, "big"), "AZ", "tiktok", rng.choice(["blocked", "slow", "down"]),
                         NOW - rng.randrange(3 * 7200), rng.choice([None, AZERCELL, DELTA, 12345])) for n in range(300)]
    for report in made:
        reports.add_report(db, report)
    for window in (7200, 3600, 600):
        sql = reports.pair_tally(db, "AZ", "tiktok", NOW - window)
        pure = crowd.tally(made, now=NOW, window=window)
        assert (sql.reporters, sql.first_at, sql.last_at) == (pure.reporters, pure.first_at, pure.last_at)
        assert sorted(sql.symptoms) == sorted(pure.symptoms)
        assert sorted(sql.networks, key=str) == sorted(pure.networks, key=str)


def test_evaluate_finds_signals_counts_people_and_skips_spent_reports(db):
    rules = crowd.Rules(min_reporters=3, window=7200)
    spammer = b"s" * 16
    for n in range(50):  # stored directly, past the throttle: still one person
        reports.add_report(db, crowd.Report(spammer, "AM", "telegram", "blocked", NOW - n, AZERCELL + n % 3))
    for n in range(3):
        reports.add_report(db, crowd.Report(bytes([n]) * 16, "AZ", "tiktok", "slow", NOW - 60 * n, DELTA))
    [found] = workflow.evaluate(db, NOW, rules)
    assert (found.country, found.platform, found.reporters, found.symptom) == ("AZ", "tiktok", 3, "slow")
    assert workflow.assess_pair(db, "AM", "telegram", NOW, rules).reporters == 1
    signal_id = reports.open_signal(db, found, NOW)
    assert reports.decide_signal(db, signal_id, reports.DISMISSED, NOW)
    assert not reports.decide_signal(db, signal_id, reports.CONFIRMED, NOW)  # decided once
    assert workflow.evaluate(db, NOW, rules) == []  # its reports are spent
    reports.add_report(db, crowd.Report(b"z" * 16, "AZ", "tiktok", "slow", NOW))
    assert workflow.assess_pair(db, "AZ", "tiktok", NOW, rules).reporters == 1


def test_purge_keeps_counts_and_forget_removes_one_reporter(db):
    for n, age in enumerate((40 * 86400, 31 * 86400, 3600, 60)):
        reports.add_report(db, crowd.Report(bytes([n % 2]) * 16, "AZ", "tiktok", "slow", NOW - age))
    assert reports.purge(db, NOW, 30) == 2
    assert reports.stored_reports(db) == 2 and reports.total_reports(db) == 4
    assert privacy.forget_reporter(db, bytes([1]) * 16).reports == 1
    assert reports.stored_reports(db) == 1 and reports.total_reports(db) == 4
    assert reports.count_reports(db, NOW - 7200) == 1


# -- the command ---------------------------------------------------------------------------------


async def test_report_command_is_stored_under_a_pseudonym_and_thanked(crowd_bot):
    alice = reporter(1)
    answer = await say_as(crowd_bot, alice, "/report AZ tiktok blocked Azercell since noon <b>really</b>")
    assert "Thank you" in answer.text and "TikTok" in answer.text and "AS31721" in answer.text
    assert "&lt;b&gt;really&lt;/b&gt;" in answer.text  # user text escaped
    assert "/forgetme" in answer.text
    [row] = stored(crowd_bot)
    assert (row["country"], row["platform"], row["symptom"], row["asn"]) == ("AZ", "tiktok", "blocked", AZERCELL)
    assert row["note"] == "since noon <b>really</b>"
    pseudonyms = crowd_bot.services.pseudonyms
    assert row["reporter"] == pseudonyms.reporter(alice["user_id"])
    # /report never stores the reporter's chat (in a private chat its id is theirs)
    assert crowd_bot.store.run_sync(lambda db: db.execute("select count(*) from chats").fetchone()[0]) == 0


async def test_report_errors_answer_and_store_nothing(crowd_bot):
    alice = reporter(1)
    answer = await say_as(crowd_bot, alice, "/report AZ tiktk slow")
    assert "Did you mean tiktok?" in answer.text
    answer = await say_as(crowd_bot, alice, "/report AZ tiktok sad")
    assert "blocked, slow or down" in answer.text
    answer = await say_as(crowd_bot, alice, "/report AZ tiktok slow " + "x" * 1200)
    assert "too long" in answer.text
    assert stored(crowd_bot) == []


async def test_the_country_defaults_to_the_chats_own(crowd_bot):
    crowd_bot.fake.add_chat(-100500, "group", title="Yerevan desk")
    crowd_bot.fake.set_chat_admins(-100500, [42])
    await crowd_bot.say("/watch AM", chat_id=-100500, user_id=42)
    await crowd_bot.say("/report whatsapp slow", chat_id=-100500, user_id=43)
    [row] = stored(crowd_bot)
    assert (row["country"], row["platform"], row["symptom"]) == ("AM", "whatsapp", "slow")


# -- the button form ---------------------------------------------------------------------------


def buttons(fake, chat_id: int, message_id: int) -> dict[str, str]:
    message = fake.message(chat_id, message_id)
    return {b["text"]: b["callback_data"] for row in message.get("reply_markup", {}).get("inline_keyboard", []) for b in row}


async def press(fake, who: dict, chat_id: int, message_id: int, label: str, **kwargs):
    """Press the button whose label starts with `label`; returns the answerCallbackQuery call."""
    data = next(d for text, d in buttons(fake, chat_id, message_id).items() if text.startswith(label))
    answered = len(fake.calls("answerCallbackQuery"))
    fake.press_button(chat_id, who["user_id"], message_id, data, username=who["username"], first_name=who["first_name"], **kwargs)
    return (await fake.wait_for("answerCallbackQuery", count=answered + 1))[-1]


async def test_the_button_form_asks_each_part_and_stores_the_report(crowd_bot):
    fake, alice = crowd_bot.fake, reporter(2)
    chat = alice["user_id"]
    form = await say_as(crowd_bot, alice, "/report")
    message_id = form.result["message_id"]
    assert "Which country" in form.text
    assert "Azerbaijan" in buttons(fake, chat, message_id)
    assert all(len(data.encode()) <= 64 for data in buttons(fake, chat, message_id).values())
    await press(fake, alice, chat, message_id, "Azerbaijan")
    assert "Which app" in fake.message(chat, message_id)["text"]
    await press(fake, alice, chat, message_id, "TikTok")
    assert "What do you see" in fake.message(chat, message_id)["text"]
    await press(fake, alice, chat, message_id, "🚫")
    assert "Which network" in fake.message(chat, message_id)["text"]
    answer = await press(fake, alice, chat, message_id, "Azercell")
    assert "Thank you" in answer.params["text"]
    done = fake.message(chat, message_id)
    assert "Thank you" in done["text"] and "reply_markup" not in done
    [row] = stored(crowd_bot)
    assert (row["country"], row["platform"], row["symptom"], row["asn"], row["note"]) == ("AZ", "tiktok", "blocked", AZERCELL, None)


async def test_a_partial_command_opens_the_form_at_the_missing_part(crowd_bot):
    fake, alice = crowd_bot.fake, reporter(3)
    form = await say_as(crowd_bot, alice, "/report AZ whatsapp")
    assert "What do you see" in form.text
    message_id = form.result["message_id"]
    await press(fake, alice, alice["user_id"], message_id, "🐢")
    await press(fake, alice, alice["user_id"], message_id, "Another")
    [row] = stored(crowd_bot)
    assert (row["platform"], row["symptom"], row["asn"]) == ("whatsapp", "slow", None)


async def test_cancel_stores_nothing(crowd_bot):
    fake, alice = crowd_bot.fake, reporter(4)
    form = await say_as(crowd_bot, alice, "/report AZ tiktok")
    assert "Cancel" in buttons(fake, alice["user_id"], form.result["message_id"])
    answer = await press(fake, alice, alice["user_id"], form.result["message_id"], "Cancel")
    assert answer.params["text"] == "Cancelled"
    message = fake.message(alice["user_id"], form.result["message_id"])
    assert "nothing was stored" in message["text"] and "reply_markup" not in message
    assert stored(crowd_bot) == []


async def test_forged_foreign_and_expired_buttons_change_nothing(crowd_bot):
    fake, alice, mallory = crowd_bot.fake, reporter(5), reporter(6)
    group = -100777
    form = await crowd_bot.say("/report AZ tiktok", chat_id=group, user_id=alice["user_id"], chat_type="supergroup")
    message_id = form.result["message_id"]
    before = fake.message(group, message_id)["text"]
    blocked = buttons(fake, group, message_id)["🚫 Blocked: it does not open"]

    # another member presses Alice's button
    answer = await press(fake, mallory, group, message_id, "🚫")
    assert answer.params["show_alert"] is True and "someone else" in answer.params["text"]
    # a client sends data the bot never offered: the country swapped, the signature kept
    forged = blocked.replace(":AZ:", ":AM:")
    answered = len(fake.calls("answerCallbackQuery"))
    fake.press_button(group, alice["user_id"], message_id, forged, forged=True)
    answer = (await fake.wait_for("answerCallbackQuery", count=answered + 1))[-1]
    assert answer.params["show_alert"] is True
    for junk in ("rp:", "rp:x", "rp:AZ:0:b:-:zzzz:AAAAAAAAAAAA", "rp:" + "9" * 58):
        answered = len(fake.calls("answerCallbackQuery"))
        fake.press_button(group, alice["user_id"], message_id, junk, forged=True)
        assert (await fake.wait_for("answerCallbackQuery", count=answered + 1))[-1].params["show_alert"] is True
    assert fake.message(group, message_id)["text"] == before
    assert stored(crowd_bot) == []

    # a real button of Alice's whose time is up
    pseudonyms = crowd_bot.services.pseudonyms
    stale = report_form.button_data(pseudonyms, group, alice["user_id"], "AZ:0:b:0", NOW - 1)
    answered = len(fake.calls("answerCallbackQuery"))
    fake.press_button(group, alice["user_id"], message_id, stale, forged=True)
    answer = (await fake.wait_for("answerCallbackQuery", count=answered + 1))[-1]
    assert "expired" in answer.params["text"]
    assert "expired" in fake.message(group, message_id)["text"]
    assert stored(crowd_bot) == []


# -- throttling and signals --------------------------------------------------------------------


async def test_a_burst_from_one_account_is_answered_politely_and_counts_once(crowd_bot):
    alice = reporter(7)
    first = await say_as(crowd_bot, alice, "/report AZ tiktok blocked")
    assert "Thank you" in first.text
    for _ in range(6):
        again = await say_as(crowd_bot, alice, "/report AZ tiktok blocked Azercell")
        assert "already reported TikTok in Azerbaijan" in again.text and "counts once" in again.text
    assert len(stored(crowd_bot)) == 1
    # many pairs in a short time: after the fifth, a polite "wait"
    for platform in ("whatsapp", "telegram", "signal", "youtube"):
        assert "Thank you" in (await say_as(crowd_bot, alice, f"/report AZ {platform} slow")).text
    refused = await say_as(crowd_bot, alice, "/report AZ facebook slow")
    assert "wait an hour" in refused.text
    assert len(stored(crowd_bot)) == 5


async def test_one_account_never_makes_a_signal(crowd_bot, telegram):
    alice = reporter(8)
    for platform in ("tiktok", "tiktok", "tiktok", "whatsapp"):
        for network in ("Azercell", "Delta", "Aztelekom"):
            await say_as(crowd_bot, alice, f"/report AZ {platform} blocked {network}")
    await say_as(crowd_bot, alice, "/report AZ tiktok blocked")  # one more, for the sender to catch up
    assert telegram.sent(ADMIN) == []
    assert crowd_bot.store.run_sync(reports.count_signals) == 0
    assert crowd_bot.store.run_sync(reports.count_reports, NOW - 60) == 2  # tiktok and whatsapp, once each


async def test_distinct_people_make_a_signal_that_reaches_the_admin_with_no_evidence(crowd_bot, telegram):
    for n, network in enumerate(("Azercell", "Azercell", "Delta")):
        await say_as(crowd_bot, reporter(10 + n), f"/report AZ whatsapp slow {network}")
    [alert] = await telegram.wait_sent(ADMIN)
    text = alert.text
    assert "Crowd signal #1" in text and "WhatsApp" in text and "Azerbaijan (AZ)" in text and "slow" in text
    assert "3 different people" in text
    assert "AS31721 Azercell Telecom Ltd (2)" in text and "AS29049 Delta Telecom Ltd (1)" in text
    assert "No measurement evidence" in text
    assert "/confirm 1" in text and "/dismiss 1" in text
    for n in range(10, 13):  # admins never see who reported
        who = reporter(n)
        assert str(who["user_id"]) not in text and who["username"] not in text and who["first_name"] not in text
    # a fourth person grows the same signal; the admin is not told twice
    await say_as(crowd_bot, reporter(13), "/report AZ whatsapp down")
    [signal] = crowd_bot.store.run_sync(reports.signals)
    assert signal["reporters"] == 4 and dict(signal["symptoms"]) == {"slow": 3, "down": 1}
    await settled(crowd_bot)
    assert [(d["kind"], d["status"]) for d in crowd_bot.store.run_sync(outbox.deliveries_of, ADMIN)] == [("signal", "sent")]
    assert len(telegram.sent(ADMIN)) == 1


async def test_the_signal_carries_the_detectors_evidence_for_the_pair(crowd_bot, telegram):
    since = datetime.now(timezone.utc) - timedelta(hours=3)
    network = NetworkState(asn=DELTA, status=BLOCKED, since=since, evidence=("https://explorer.ooni.org/m/20220914T1200Z_webconnectivity_AZ_29049_n1_abc",),
                           method="tls", anomalies=40, measurements=52)
    state = BlockState("AZ", "tiktok", networks={DELTA: network}, blocked_since=since, last_data=datetime.now(timezone.utc))
    crowd_bot.store.run_sync(states.save_state, state)
    for n in range(3):
        await say_as(crowd_bot, reporter(20 + n), "/report AZ tiktok blocked")
    [alert] = await telegram.wait_sent(ADMIN)
    assert "AS29049" in alert.text and "TLS interference" in alert.text
    assert "40 of 52 measurements anomalous" in alert.text
    assert "https://explorer.ooni.org/m/20220914T1200Z_webconnectivity_AZ_29049_n1_abc" in alert.text
    # confirmed without a note, it is recorded as a finding in words of its own
    assert "the 0 chats" in (await crowd_bot.say("/confirm 1", chat_id=ADMIN)).text
    [recorded] = crowd_bot.store.run_sync(lambda db: list(db.query("select * from findings")))
    assert recorded["text"] == "Crowd reports confirmed: 3 different people reported TikTok blocked (signal #1)."


async def test_signals_confirm_and_dismiss(crowd_bot, telegram):
    watcher = 9001  # a journalist following AZ WhatsApp in a private chat
    await crowd_bot.say("/watch AZ whatsapp", chat_id=watcher)
    for n in range(3):
        await say_as(crowd_bot, reporter(30 + n), "/report AZ whatsapp slow Azercell")
    for n in range(3):
        await say_as(crowd_bot, reporter(30 + n), "/report AM telegram blocked")
    await telegram.wait_sent(ADMIN, count=2)

    refused = await say_as(crowd_bot, reporter(30), "/signals")
    assert "Only the bot's admins" in refused.text
    refused = await say_as(crowd_bot, reporter(30), "/confirm 1")
    assert "Only the bot's admins" in refused.text

    listing = await crowd_bot.say("/signals", chat_id=ADMIN)
    assert "#1" in listing.text and "#2" in listing.text and "WhatsApp" in listing.text and "Telegram" in listing.text

    answer = await crowd_bot.say("/confirm 1 Seen on Azercell <i>mobile</i> since 14:00", chat_id=ADMIN)
    assert "#1 confirmed" in answer.text and "the 1 chat that follows it" in answer.text
    finding = (await telegram.wait_sent(watcher, count=2))[-1]
    assert "Confirmed by the Blockwatch team" in finding.text and "WhatsApp" in finding.text
    assert "3 different people" in finding.text
    assert "Seen on Azercell &lt;i&gt;mobile&lt;/i&gt; since 14:00" in finding.text

    [recorded] = crowd_bot.store.run_sync(lambda db: list(db.query("select * from findings")))
    assert (recorded["source"], recorded["country"], recorded["platform"], recorded["recipients"]) == ("signal:1", "AZ", "whatsapp", 1)
    assert recorded["text"] == "Seen on Azercell &lt;i&gt;mobile&lt;/i&gt; since 14:00"

    again = await crowd_bot.say("/confirm 1", chat_id=ADMIN)
    assert "already confirmed" in again.text
    dismissed = await crowd_bot.say("/dismiss 2", chat_id=ADMIN)
    assert "#2 dismissed" in dismissed.text
    assert "already dismissed" in (await crowd_bot.say("/confirm 2", chat_id=ADMIN)).text
    assert "no crowd signal #99" in (await crowd_bot.say("/dismiss 99", chat_id=ADMIN)).text.lower()
    assert "Which signal?" in (await crowd_bot.say("/confirm", chat_id=ADMIN)).text
    assert "No crowd signals" in (await crowd_bot.say("/signals", chat_id=ADMIN)).text
    audit = crowd_bot.store.run_sync(lambda db: [(r["admin_id"], r["action"]) for r in db.query("select * from audit order by id")])
    assert audit == [(ADMIN, "signal_confirmed"), (ADMIN, "signal_dismissed")]
    await settled(crowd_bot)
    assert [(d["kind"], d["ref"], d["status"]) for d in crowd_bot.store.run_sync(outbox.deliveries_of, watcher)] == [
        ("finding", "signal:1", "sent")]
    assert len(telegram.sent(watcher)) == 2  # the /watch answer and the one finding
    # the reports behind a decided signal are spent: the same people do not raise it again
    for n in range(3):
        await say_as(crowd_bot, reporter(40 + n), "/report AM telegram blocked")
    await telegram.wait_sent(ADMIN, count=len(telegram.sent(ADMIN)) + 1)
    assert [s["id"] for s in crowd_bot.store.run_sync(reports.signals)] == [3]


# -- reporters' safety -------------------------------------------------------------------------


def id_forms(who: dict) -> list[bytes]:
    number = who["user_id"]
    return [
        str(number).encode(),
        struct.pack(">q", number), struct.pack("<q", number),  # 8-byte integers
        number.to_bytes(6, "big"),  # how SQLite's record format stores an integer this large
        who["username"].encode(), who["first_name"].encode(),
    ]


async def test_the_database_file_and_the_logs_hold_no_reporter(telegram, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="bot")
    caplog.set_level(logging.DEBUG, logger="storage")
    database = tmp_path / "blockwatch.db"
    people = [reporter(60 + n) for n in range(4)]
    async with running_bot(telegram, database, sending=True, admin_ids=frozenset({ADMIN}),
                           signal_min_reporters=3) as bot:
        for n, who in enumerate(people[:3]):
            await say_as(bot, who, f"/report AZ tiktok blocked {('Azercell', 'Delta', 'AS28787')[n]} from home")
        who = people[3]  # and one through the button form, in a group
        group = -100300
        form = await bot.say("/report AZ", chat_id=group, user_id=who["user_id"], chat_type="supergroup",
                             username=who["username"], first_name=who["first_name"])
        for label in ("WhatsApp", "❌", "Delta"):
            await press(telegram, who, group, form.result["message_id"], label)
        await telegram.wait_sent(ADMIN)
        assert len(stored(bot)) == 4
        files = [path for path in tmp_path.iterdir() if path.name.startswith("blockwatch.db") and not path.name.endswith(".secret")]
        assert {p.name for p in files} >= {"blockwatch.db", "blockwatch.db-wal"}
        contents = b"".join(path.read_bytes() for path in files)
        for who in people:
            for form_bytes in id_forms(who):
                assert form_bytes not in contents, (who, form_bytes)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "crowd signal #1 opened" in logged  # the logs were captured …
    for who in people:  # … and name nobody
        assert str(who["user_id"]) not in logged and who["username"] not in logged and who["first_name"] not in logged


async def test_forgetme_removes_the_users_reports(crowd_bot):
    alice, bob = reporter(70), reporter(71)
    await say_as(crowd_bot, alice, "/report AZ tiktok blocked")
    await say_as(crowd_bot, alice, "/report AZ whatsapp slow")
    await say_as(crowd_bot, bob, "/report AZ tiktok blocked")
    asked = await say_as(crowd_bot, alice, "/forgetme")
    assert "your reports" in asked.text and await crowd_bot.store.run(reports.stored_reports) == 3  # nothing gone yet
    answer, _ = await crowd_bot.press(asked, 0, alice["user_id"])
    assert "Your 2 reports are deleted" in answer.text
    pseudonyms = crowd_bot.services.pseudonyms
    assert [bytes(row["reporter"]) for row in stored(crowd_bot)] == [pseudonyms.reporter(bob["user_id"])]
    assert crowd_bot.store.run_sync(reports.total_reports) == 3  # the hourly counts hold no one and stay


async def test_the_retention_purge_runs_in_the_background_and_keeps_the_counts(telegram, tmp_path):
    database = tmp_path / "blockwatch.db"
    old = crowd.Report(b"p" * 16, "AZ", "tiktok", "blocked", NOW - 3 * 86400)
    recent = crowd.Report(b"q" * 16, "AZ", "tiktok", "slow", NOW - 3600)
    async with running_bot(telegram, database, report_retention_days=30) as bot:
        bot.store.run_sync(reports.add_report, old)
        bot.store.run_sync(reports.add_report, recent)
    async with running_bot(telegram, database, report_retention_days=2) as bot:
        for _ in range(100):  # the purge loop runs once at start
            if bot.store.run_sync(reports.stored_reports) == 1:
                break
            await asyncio.sleep(0.02)
        [row] = stored(bot)
        assert row["symptom"] == "slow"
        assert bot.store.run_sync(reports.total_reports) == 2
        # the usual level still knows the purged report
        usual_days = crowd.usual_days(NOW + 7200)
        assert bot.store.run_sync(reports.daily_reports, "AZ", "tiktok", *usual_days) > 0


async def test_the_upkeep_loop_raises_a_signal_no_report_raised(telegram, tmp_path):
    database = tmp_path / "blockwatch.db"
    async with running_bot(telegram, database, sending=True, admin_ids=frozenset({ADMIN}), signal_min_reporters=5) as bot:
        for n in range(3):
            await say_as(bot, reporter(80 + n), "/report AZ signal blocked")
        assert bot.store.run_sync(reports.count_signals) == 0
    # the operator lowers SIGNAL_MIN_REPORTERS and restarts: the loop's first look finds the pair
    async with running_bot(telegram, database, sending=True, admin_ids=frozenset({ADMIN}), signal_min_reporters=3) as bot:
        [alert] = await telegram.wait_sent(ADMIN)
        assert "Crowd signal #1" in alert.text and "Signal" in alert.text and "3 different people" in alert.text
        assert bot.store.run_sync(reports.count_signals) == 1
