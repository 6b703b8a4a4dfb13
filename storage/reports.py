"""Crowd reports and crowd signals: the `reports`, `report_hours`, `report_days` and `signals` tables.

- `reports`: one row per accepted report — country, platform, symptom, network, note, time, and
  the reporter only as a keyed pseudonym (bot/pseudonym.py). Deleted after the retention period,
  or at once by /forgetme.
- `report_hours` and `report_days`: reports per (country, platform, hour or day, symptom). No
  reporter in them. The hourly counts find the pairs worth a look in the current window; the daily
  ones outlive the purge, so totals and each pair's usual level stay known.
- `signals`: what the crowd said about a pair and what an admin decided. Counts and networks only,
  never who reported.

Deleting is done with secure_delete on and the WAL checkpointed afterwards, so a forgotten
reporter's pseudonym does not linger in free pages or in the -wal file.
"""

from __future__ import annotations

import json
from datetime import datetime

import sqlite_utils

from bot import crowd
from bot.clock import unix
from bot.crowd import Assessment, Report, Tally
from storage.db import scrub, transaction

PENDING, CONFIRMED, DISMISSED = "pending", "confirmed", "dismissed"


# -- reports -----------------------------------------------------------------------------------


def _report(row: dict) -> Report:
    return Report(
        reporter=bytes(row["reporter"]), country=row["country"], platform=row["platform"], symptom=row["symptom"],
        at=row["at"], asn=row["asn"], note=row["note"], fresh=bool(row["fresh"]), held=bool(row["held"]),
    )


def add_report(db: sqlite_utils.Database, report: Report) -> int:
    """Store a report and count it in its hour, together.

    Callers keep to the throttle (crowd.throttle): at most one report per reporter and pair within
    a window. Counts still use count(distinct reporter), so one person stays one person regardless."""
    with transaction(db):
        cursor = db.execute(
            "insert into reports (reporter, country, platform, symptom, asn, note, at, fresh, held) "
            "values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [report.reporter, report.country, report.platform, report.symptom, report.asn, report.note, report.at,
             int(report.fresh), int(report.held)],
        )
        for table, column, bucket in (("report_hours", "hour", crowd.HOUR), ("report_days", "day", crowd.DAY)):
            db.execute(
                f"insert into {table} (country, platform, {column}, symptom, reports) values (?, ?, ?, ?, 1) "
                "on conflict do update set reports = reports + 1",
                [report.country, report.platform, report.at - report.at % bucket, report.symptom],
            )
    return cursor.lastrowid


def has_reported_before(db: sqlite_utils.Database, reporter: bytes, before: int) -> bool:
    """Whether the reporter has a report stored from before `before` (else they are new: "fresh")."""
    return db.execute("select 1 from reports where reporter = ? and at < ? limit 1", [reporter, before]).fetchone() is not None


def pace(db: sqlite_utils.Database, country: str, platform: str) -> tuple[float | None, int | None]:
    """The pair's allowance of new reporters left and when it was last taken from; (None, None) if never."""
    row = db.execute("select tokens, at from report_pace where country = ? and platform = ?", [country, platform]).fetchone()
    return (row[0], row[1]) if row else (None, None)


def set_pace(db: sqlite_utils.Database, country: str, platform: str, tokens: float, at: int) -> None:
    db.execute(
        "insert into report_pace (country, platform, tokens, at) values (?, ?, ?, ?) "
        "on conflict (country, platform) do update set tokens = excluded.tokens, at = excluded.at",
        [country, platform, tokens, at],
    )


def reporter_reports(db: sqlite_utils.Database, reporter: bytes, since: int) -> list[Report]:
    """One reporter's reports after `since` (what the throttle looks at)."""
    return [_report(row) for row in db.query(
        "select * from reports where reporter = ? and at > ? order by at", [reporter, since])]


def pair_reports(db: sqlite_utils.Database, country: str, platform: str, since: int) -> list[Report]:
    return [_report(row) for row in db.query(
        "select * from reports where country = ? and platform = ? and at > ? order by at", [country, platform, since])]


_IN_PAIR_WINDOW = "where country = ? and platform = ? and at > ? and id > ?"
# few people: sort the window's rows; many: walk the pair's rows in group order instead of sorting
_BREAKDOWN_SORTED = f"select symptom, asn, count(*) from reports {_IN_PAIR_WINDOW} and held = 0 group by symptom, asn"
_BREAKDOWN_IN_INDEX_ORDER = (
    f"select symptom, asn, count(*) from reports indexed by idx_reports_breakdown {_IN_PAIR_WINDOW} and held = 0 "
    "group by symptom, asn"
)
_PEOPLE = (
    "select count(distinct case when held = 0 then reporter end), min(case when held = 0 then at end),"
    " max(case when held = 0 then at end), count(distinct case when fresh = 1 then reporter end),"
    " count(distinct case when held = 1 then reporter end), min(case when fresh = 1 then at end),"
    f" max(case when fresh = 1 then at end) from reports {_IN_PAIR_WINDOW}"
)
SORT_BELOW_PEOPLE = 200


def pair_tally(db: sqlite_utils.Database, country: str, platform: str, since: int, after_id: int = 0) -> Tally | None:
    """The pair's reports after `since` (and stored after report `after_id`), counted in SQL from the index.

    People are counted distinct, so one person stays one however many rows they have. The breakdown
    by symptom and network counts rows: the same as people, since the throttle keeps one report per
    person and pair in a window."""
    params = [country, platform, since, after_id]
    people, first_at, last_at, fresh, held, fresh_first, fresh_last = db.execute(_PEOPLE, params).fetchone()
    if not people:
        return None
    symptoms: dict[str, int] = {}
    networks: dict[int | None, int] = {}
    breakdown = _BREAKDOWN_SORTED if people < SORT_BELOW_PEOPLE else _BREAKDOWN_IN_INDEX_ORDER
    for symptom, asn, count in db.execute(breakdown, params):
        symptoms[symptom] = symptoms.get(symptom, 0) + count
        networks[asn] = networks.get(asn, 0) + count
    return Tally(country, platform, people, tuple(symptoms.items()), tuple(networks.items()), first_at, last_at,
                 fresh=fresh, held=held, fresh_first=fresh_first, fresh_last=fresh_last)


def recent_notes(db: sqlite_utils.Database, country: str, platform: str, since: int, limit: int = 3) -> list[str]:
    """The newest notes reporters wrote about the pair (shown to admins escaped, without who wrote them)."""
    return [row["note"] for row in db.query(
        "select note, max(at) as newest from reports where country = ? and platform = ? and at > ? and note is not null "
        "group by note order by newest desc limit ?", [country, platform, since, limit])]


def daily_reports(db: sqlite_utils.Database, country: str, platform: str, since: int, until: int) -> int:
    """The pair's reports counted by day from `since` up to (not including) `until` — these counts
    outlive the purge."""
    return db.execute(
        "select coalesce(sum(reports), 0) from report_days where country = ? and platform = ? and day >= ? and day < ?",
        [country, platform, since, until]).fetchone()[0]


def count_reports(db: sqlite_utils.Database, since: datetime | int) -> int:
    """Reports stored since a moment (for /stats)."""
    return db.execute("select count(*) from reports where at >= ?", [unix(since)]).fetchone()[0]


def total_reports(db: sqlite_utils.Database) -> int:
    """Every report ever accepted, including those the purge removed."""
    return db.execute("select coalesce(sum(reports), 0) from report_days").fetchone()[0]


def stored_reports(db: sqlite_utils.Database) -> int:
    return db.execute("select count(*) from reports").fetchone()[0]


def purge(db: sqlite_utils.Database, now: int, retention_days: int) -> int:
    """Delete raw reports older than the retention period; their daily counts stay (hourly ones go too:
    they only serve the current window)."""
    db.execute("PRAGMA secure_delete=ON")
    with transaction(db):
        removed = db.execute("delete from reports where at < ?", [now - retention_days * crowd.DAY]).rowcount
        db.execute("delete from report_hours where hour < ?", [now - retention_days * crowd.DAY])
    if removed:
        scrub(db)
    return removed


def reporter_notes(db: sqlite_utils.Database, reporter: bytes) -> list[str]:
    """The distinct notes one reporter wrote (what /forgetme must also find in messages to admins)."""
    return [row[0] for row in db.execute(
        "select distinct note from reports where reporter = ? and note is not null", [reporter])]


def forget_all_reporters(db: sqlite_utils.Database) -> int:
    """Delete every raw report and each pair's allowance of new reporters (`blockwatch reset-crowd`): nothing
    pseudonymous is left. Daily counts and signals hold no reporter, so they stay."""
    db.execute("PRAGMA secure_delete=ON")
    with transaction(db):
        removed = db.execute("delete from reports").rowcount
        db.execute("delete from report_pace")
    scrub(db)
    return removed


# -- signals -----------------------------------------------------------------------------------


def _signal(row: dict | None) -> dict | None:
    if row is None:
        return None
    signal = dict(row)
    signal["symptoms"] = [tuple(item) for item in json.loads(row["symptoms"] or "[]")]
    signal["networks"] = [tuple(item) for item in json.loads(row["networks"] or "[]")]
    return signal


def get_signal(db: sqlite_utils.Database, signal_id: int) -> dict | None:
    return _signal(next(iter(db.query("select * from signals where id = ?", [signal_id])), None))


def pending_signal(db: sqlite_utils.Database, country: str, platform: str) -> dict | None:
    return _signal(next(iter(db.query(
        "select * from signals where country = ? and platform = ? and status = ? order by id desc limit 1",
        [country, platform, PENDING])), None))


def signals(db: sqlite_utils.Database, status: str = PENDING, limit: int = 20) -> list[dict]:
    return [_signal(row) for row in db.query(
        "select * from signals where status = ? order by id limit ?", [status, limit])]


def count_signals(db: sqlite_utils.Database, since: datetime | int | None = None, *, status: str | None = None) -> int:
    """Signals opened since a moment (for /stats), or all; of one status if given."""
    sql, params = "select count(*) from signals where 1", []
    if since is not None:
        sql += " and created_at >= ?"
        params.append(unix(since))
    if status is not None:
        sql += " and status = ?"
        params.append(status)
    return db.execute(sql, params).fetchone()[0]


def spent(db: sqlite_utils.Database, country: str | None = None, platform: str | None = None) -> dict[tuple[str, str], int]:
    """Per pair, the last report id behind its last decided signal: those reports have had their say."""
    sql = "select country, platform, max(spent_until) as until from signals where spent_until is not null"
    params: list = []
    if country is not None:
        sql += " and country = ? and platform = ?"
        params += [country, platform]
    return {(row["country"], row["platform"]): row["until"] for row in db.query(sql + " group by country, platform", params)}


def _columns(assessment: Assessment) -> dict:
    return {
        "symptom": assessment.symptom,
        "reporters": assessment.reporters,
        "symptoms": json.dumps(assessment.symptoms),
        "networks": json.dumps(assessment.networks),
        "first_at": assessment.first_at,
        "last_at": assessment.last_at,
        "usual": assessment.usual,
        "score": assessment.score,
        "burst_accounts": assessment.burst_accounts,
        "burst_held": assessment.burst_held,
        "burst_seconds": assessment.burst_seconds,
    }


def open_signal(db: sqlite_utils.Database, assessment: Assessment, now: int) -> int:
    return db["signals"].insert(
        {"country": assessment.country, "platform": assessment.platform, "created_at": now, "status": PENDING,
         **_columns(assessment)}
    ).last_pk


def update_signal(db: sqlite_utils.Database, signal_id: int, assessment: Assessment) -> None:
    """A pending signal grows as more people report."""
    columns = _columns(assessment)
    db.execute(
        f"update signals set {', '.join(f'{name} = ?' for name in columns)} where id = ? and status = ?",
        [*columns.values(), signal_id, PENDING],
    )


def decide_signal(db: sqlite_utils.Database, signal_id: int, status: str, now: int, note: str | None = None,
                  recipients: int | None = None) -> bool:
    """Close a pending signal as confirmed or dismissed — once: of two admins deciding at once, one wins."""
    cursor = db.execute(
        "update signals set status = ?, decided_at = ?, note = ?, recipients = ?, spent_until = "
        "(select coalesce(max(reports.id), 0) from reports where reports.country = signals.country "
        "and reports.platform = signals.platform) where id = ? and status = ?",
        [status, now, note, recipients, signal_id, PENDING],
    )
    return cursor.rowcount == 1


# -- what the window holds ------------------------------------------------------------------------


def window_volumes(db: sqlite_utils.Database, since: int) -> list[tuple[str, str, int]]:
    """(country, platform, reports) of every pair with reports in the hours from `since`'s hour on: an
    upper bound of each pair's people in the window, read from the hourly counts (a quiet pair costs nothing)."""
    return [
        (row[0], row[1], row[2]) for row in db.execute(
            "select country, platform, sum(reports) from report_hours indexed by idx_report_hours_hour "
            "where hour >= ? group by country, platform",
            [since - since % crowd.HOUR])
    ]
