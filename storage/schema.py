"""Every table of the database and how it came to be: the migrations, in the order they apply.

The storage modules (subscriptions, states, events, outbox, reports, findings, audit) read and
write these tables; they import nothing from here and this imports nothing from them, so
`storage/db.py` can migrate without importing the modules that import it.

One representation of time: every time column holds Unix seconds (UTC) as a number — whole
seconds everywhere except `deliveries.not_before`, which keeps the fraction the sender's 1 message
a second per chat needs. Older databases stored ISO text in some columns; `times_as_unix_seconds`
rewrites them in place on the first start after an upgrade.

A migration set's name and each migration's name are what `_sqlite_migrations` remembers: they
must never change, or an existing database would run a migration twice.
"""

from __future__ import annotations

import json
import re

import sqlite_utils

# -- chats and watches ---------------------------------------------------------------------------

subscriptions = sqlite_utils.Migrations("subscriptions")


@subscriptions()
def create_chats_and_watches(db: sqlite_utils.Database) -> None:
    db["chats"].create(
        {"id": int, "type": str, "language": str, "paused": int, "last_country": str, "created_at": str},
        pk="id",
        not_null={"type", "paused", "created_at"},
        defaults={"paused": 0},
    )
    db["watches"].create(
        {"chat_id": int, "country": str, "platform": str, "created_at": str},
        pk=("chat_id", "country", "platform"),
        foreign_keys=[("chat_id", "chats", "id")],
    )
    db["watches"].create_index(["country", "platform"])


# -- the detector's state per pair ---------------------------------------------------------------

states = sqlite_utils.Migrations("states")


@states()
def create_states(db: sqlite_utils.Database) -> None:
    db["states"].create(
        {"country": str, "platform": str, "data": str, "updated_at": str},
        pk=("country", "platform"),
        not_null={"data", "updated_at"},
    )


# -- events --------------------------------------------------------------------------------------

events = sqlite_utils.Migrations("events")


@events()
def create_events(db: sqlite_utils.Database) -> None:
    # AUTOINCREMENT: an id is never reused, so whatever refers to an event (deliveries) stays right
    db.execute(
        "create table events ("
        " id integer primary key autoincrement,"
        " time text not null, country text not null, platform text not null, kind text not null,"
        " data text not null, created_at text not null)"
    )
    db["events"].create_index(["time"])
    db["events"].create_index(["country", "platform", "time"])


# -- the outbox ----------------------------------------------------------------------------------

outbox = sqlite_utils.Migrations("outbox")


@outbox()
def create_outbox(db: sqlite_utils.Database) -> None:
    # AUTOINCREMENT: ids only grow, so "earlier delivery" is "smaller id", even after deletes
    db.execute(
        "create table outbox_messages ("
        " id integer primary key autoincrement,"
        " kind text not null, ref text, lang text not null, text text not null, created_at text not null)"
    )
    db.execute("create index outbox_messages_ref on outbox_messages (ref)")
    db.execute(
        "create table deliveries ("
        " id integer primary key autoincrement,"
        " message_id integer not null references outbox_messages(id),"
        " chat_id integer not null,"
        " status text not null default 'pending',"
        " attempts integer not null default 0,"
        " not_before real not null default 0,"
        " created_at text not null, sent_at text, telegram_message_id integer, error text,"
        " unique (message_id, chat_id))"
    )
    db.execute("create index deliveries_queue on deliveries (status, id)")
    db.execute("create index deliveries_chat on deliveries (chat_id, status, id)")


# -- crowd reports and signals -------------------------------------------------------------------

reports = sqlite_utils.Migrations("reports")


@reports()
def create_reports_counts_signals(db: sqlite_utils.Database) -> None:
    db["reports"].create(
        {"id": int, "reporter": bytes, "country": str, "platform": str, "symptom": str,
         "asn": int, "note": str, "at": int},
        pk="id",
        not_null={"reporter", "country", "platform", "symptom", "at"},
    )
    # a pair's tally is counted from these two indexes alone, the table is not read: people in the
    # window from the first, the breakdown from the second, already in group order (no sorting)
    db["reports"].create_index(["country", "platform", "at", "reporter", "symptom", "asn"])
    db["reports"].create_index(["country", "platform", "symptom", "asn", "at"], index_name="idx_reports_breakdown")
    db["reports"].create_index(["reporter", "at"])
    db["reports"].create_index(["at"])
    db["report_hours"].create(
        {"country": str, "platform": str, "hour": int, "symptom": str, "reports": int},
        pk=("country", "platform", "hour", "symptom"),
        not_null={"reports"},
    )
    db["report_hours"].create_index(["hour"])
    db["report_days"].create(
        {"country": str, "platform": str, "day": int, "symptom": str, "reports": int},
        pk=("country", "platform", "day", "symptom"),
        not_null={"reports"},
    )
    db["signals"].create(
        {"id": int, "country": str, "platform": str, "symptom": str, "reporters": int, "symptoms": str,
         "networks": str, "first_at": int, "last_at": int, "usual": float, "score": float,
         "created_at": int, "status": str, "decided_at": int, "note": str, "recipients": int,
         "spent_until": int},
        pk="id",
        not_null={"country", "platform", "symptom", "reporters", "created_at", "status"},
    )
    db["signals"].create_index(["status", "id"])
    db["signals"].create_index(["country", "platform", "status"])


# -- admins' drafts, findings and the audit log --------------------------------------------------

findings = sqlite_utils.Migrations("findings")


@findings()
def create_findings_drafts_audit(db: sqlite_utils.Database) -> None:
    db["drafts"].create(
        {"id": int, "admin_id": int, "chat_id": int, "country": str, "platform": str, "text": str,
         "status": str, "created_at": str},
        pk="id",
        not_null={"admin_id", "country", "text", "status", "created_at"},
    )
    db["findings"].create(
        {"id": int, "admin_id": int, "country": str, "platform": str, "text": str, "source": str,
         "recipients": int, "created_at": str},
        pk="id",
        not_null={"admin_id", "country", "text", "recipients", "created_at"},
    )
    db["findings"].create_index(["country", "platform", "created_at"])
    db["audit"].create(
        {"id": int, "time": str, "admin_id": int, "action": str, "detail": str},
        pk="id",
        not_null={"time", "admin_id", "action"},
    )


# -- a chat's own settings (time zone, quiet hours, digest) ---------------------------------------

chat_settings = sqlite_utils.Migrations("chat_settings")


@chat_settings()
def create_chat_settings(db: sqlite_utils.Database) -> None:
    db.execute(
        "create table chat_settings ("
        " chat_id integer primary key,"
        " zone text,"  # IANA name or "UTC+04:00"; null = UTC
        " quiet text,"  # "23:00-07:00" local; null = none
        " digest_at text,"  # "09:00" local; null = no digest
        " digest_day text)"  # the local day (YYYY-MM-DD) of the last digest queued
    )


@chat_settings()
def create_mutes(db: sqlite_utils.Database) -> None:
    # '' for country or platform: every country / every platform of the chat; since/until Unix seconds
    db.execute(
        "create table mutes ("
        " chat_id integer not null, country text not null default '', platform text not null default '',"
        " since integer not null, until integer not null,"
        " primary key (chat_id, country, platform))"
    )
    db.execute("create index mutes_until on mutes (until)")



# -- one representation of time ------------------------------------------------------------------

times = sqlite_utils.Migrations("times")

# Each table that held ISO text times, as it is now: (its columns' definition, its time columns, indexes).
_UNIX_TABLES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "chats": (
        "id integer primary key, type text not null, language text,"
        " paused integer not null default 0, last_country text, created_at integer not null",
        ("created_at",), (),
    ),
    "watches": (
        "chat_id integer references chats(id), country text, platform text,"
        " created_at integer, primary key (chat_id, country, platform)",
        ("created_at",), ("create index idx_watches_country_platform on watches (country, platform)",),
    ),
    "states": (
        "country text, platform text, data text not null, updated_at integer not null,"
        " primary key (country, platform)",
        ("updated_at",), (),
    ),
    "events": (
        "id integer primary key autoincrement, time integer not null, country text not null,"
        " platform text not null, kind text not null, data text not null, created_at integer not null",
        ("time", "created_at"),
        ("create index idx_events_time on events (time)",
         "create index idx_events_country_platform_time on events (country, platform, time)"),
    ),
    "outbox_messages": (
        "id integer primary key autoincrement, kind text not null, ref text,"
        " lang text not null, text text not null, created_at integer not null",
        ("created_at",), ("create index outbox_messages_ref on outbox_messages (ref)",),
    ),
    "deliveries": (
        "id integer primary key autoincrement,"
        " message_id integer not null references outbox_messages(id), chat_id integer not null,"
        " status text not null default 'pending', attempts integer not null default 0,"
        " not_before real not null default 0, created_at integer not null, sent_at integer,"
        " telegram_message_id integer, error text, unique (message_id, chat_id)",
        ("created_at", "sent_at"),
        ("create index deliveries_queue on deliveries (status, id)",
         "create index deliveries_chat on deliveries (chat_id, status, id)"),
    ),
    "drafts": (
        "id integer primary key, admin_id integer not null, chat_id integer,"
        " country text not null, platform text, text text not null, status text not null,"
        " created_at integer not null",
        ("created_at",), (),
    ),
    "findings": (
        "id integer primary key, admin_id integer not null, country text not null,"
        " platform text, text text not null, source text, recipients integer not null,"
        " created_at integer not null",
        ("created_at",),
        ("create index idx_findings_country_platform_created_at on findings (country, platform, created_at)",),
    ),
    "audit": (
        "id integer primary key, time integer not null, admin_id integer not null,"
        " action text not null, detail text",
        ("time",), (),
    ),
}


def _as_unix(column: str) -> str:
    # text such as 2022-09-14T12:00:00+00:00, …Z or a bare date → seconds; a number is kept (safe to rerun)
    return f"case when typeof({column}) = 'text' then cast(strftime('%s', {column}) as integer) else {column} end"


@times(transactional=False)  # a table rebuild needs foreign keys off, which only works outside a transaction
def times_as_unix_seconds(db: sqlite_utils.Database) -> None:
    """Rebuild each table that held ISO text times with integer Unix seconds (SQLite's 12-step ALTER:
    new table, copy, drop the old, rename). Safe to run again: numbers are copied as they are."""
    conn = db.conn
    conn.execute("PRAGMA foreign_keys=OFF")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for table, (definition, time_columns, indexes) in _UNIX_TABLES.items():
                _rebuild(conn, table, definition, time_columns, indexes)
            problems = conn.execute("PRAGMA foreign_key_check").fetchall()
            if problems:
                raise RuntimeError(f"rewriting times broke {len(problems)} references")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        conn.execute("PRAGMA foreign_keys=ON")


def _rebuild(conn, table: str, definition: str, time_columns: tuple[str, ...], indexes: tuple[str, ...]) -> None:
    columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
    sequence = conn.execute("select seq from sqlite_sequence where name = ?", [table]).fetchone() \
        if "autoincrement" in definition else None
    conn.execute(f"create table {table}_unix ({definition})")
    chosen = ", ".join(_as_unix(column) if column in time_columns else column for column in columns)
    conn.execute(f"insert into {table}_unix ({', '.join(columns)}) select {chosen} from {table}")
    conn.execute(f"drop table {table}")
    conn.execute(f"alter table {table}_unix rename to {table}")
    for index in indexes:
        conn.execute(index)
    if sequence is not None:  # ids deleted at the top must still never be reused
        conn.execute("update sqlite_sequence set seq = max(seq, ?) where name = ?", [sequence[0], table])


# -- internet outages (IODA) ---------------------------------------------------------------------

outages = sqlite_utils.Migrations("outages")


@outages()
def create_outage_states(db: sqlite_utils.Database) -> None:
    db["outage_states"].create({"country": str, "data": str, "updated_at": int}, pk="country", not_null={"data", "updated_at"})


# -- what the way out to Telegram remembers (bot/flood.py, bot/sender.py) ---------------------------

sending = sqlite_utils.Migrations("sending")


@sending()
def count_unknown_fates(db: sqlite_utils.Database) -> None:
    # sends of a delivery whose answer never came (it may have arrived): resent once at most
    db.execute("alter table deliveries add column unknown integer not null default 0")


@sending()
def create_telegram_pause(db: sqlite_utils.Database) -> None:
    # until when (Unix seconds) Telegram asked the bot to stop sending: a restart keeps waiting
    db.execute("create table telegram_pause (id integer primary key check (id = 1), until real not null)")


# -- bursts of new accounts (issue 12) -------------------------------------------------------------

bursts = sqlite_utils.Migrations("bursts")


@bursts()
def fresh_and_held_reporters(db: sqlite_utils.Database) -> None:
    """Reports say whether their reporter was new and whether they came too fast to count (bot/crowd.py);
    each pair keeps its allowance of new reporters; signals keep the burst they saw. The window's index
    carries `held` so a tally still reads no table row."""
    db.execute("alter table reports add column fresh integer not null default 0")
    db.execute("alter table reports add column held integer not null default 0")
    db.execute("drop index if exists idx_reports_country_platform_at_reporter_symptom_asn")
    db.execute("create index idx_reports_window on reports (country, platform, at, held, fresh, reporter)")
    db.execute("drop index if exists idx_reports_breakdown")
    db.execute("create index idx_reports_breakdown on reports (country, platform, held, symptom, asn, at)")
    db.execute("create table report_pace (country text, platform text, tokens real not null, at integer not null,"
               " primary key (country, platform))")
    for column in ("burst_accounts", "burst_held", "burst_seconds"):
        db.execute(f"alter table signals add column {column} integer not null default 0")


evidence = sqlite_utils.Migrations("evidence")
# an OONI measurement_uid as OONI writes it: 20220914061234.123456_AZ_webconnectivity_1a2b3c4d5e6f7a8b
MEASUREMENT_UID = re.compile(r"\d{14}\.\d{6}_[A-Z]{2}_[a-z0-9_]+")


@evidence()
def evidence_as_links(db: sqlite_utils.Database) -> None:
    """States stored before the OONI source handed links held bare measurement ids: make them the links it hands now."""
    from bot.sources.ooni.explorer import measurement_link  # the one place that knows Explorer's address

    def linked(value):
        if isinstance(value, str):
            return measurement_link(value) if MEASUREMENT_UID.fullmatch(value) else value
        if isinstance(value, list):
            return [linked(item) for item in value]
        if isinstance(value, dict):
            return {key: linked(item) for key, item in value.items()}
        return value

    for country, platform, data in db.execute("select country, platform, data from states").fetchall():
        old = json.loads(data)
        new = linked(old)
        if new != old:
            db.execute("update states set data = ? where country = ? and platform = ?",
                       [json.dumps(new, separators=(",", ":")), country, platform])


# The order they apply in: a new table family adds its set at the end.
MIGRATIONS = (subscriptions, states, events, outbox, reports, findings, chat_settings, times, outages, sending, bursts, evidence)


def migrate(db: sqlite_utils.Database) -> None:
    for migrations in MIGRATIONS:
        migrations.apply(db)
