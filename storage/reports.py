"""Crowd reports and crowd signals: the `reports`, `report_counts` and `signals` tables.

- `reports`: one row per accepted report — country, platform, symptom, network, note, time, and
  the reporter only as a keyed pseudonym (bot/pseudonym.py). Deleted after the retention period,
  or at once by /forgetme.
- `report_counts`: reports per (country, platform, symptom, hour). No reporter in it; it outlives
  the purge, so totals and each pair's usual level stay known.
- `signals`: what the crowd said about a pair and what an admin decided. Counts and networks only,
  never who reported.

Deleting is done with secure_delete on and the WAL checkpointed afterwards, so a forgotten
reporter's pseudonym does not linger in free pages or in the -wal file.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime

import sqlite_utils

from bot import crowd
from bot.crowd import Assessment, Report, Rules
from storage.db import transaction

migrations = sqlite_utils.Migrations("reports")

PENDING, CONFIRMED, DISMISSED = "pending", "confirmed", "dismissed"


@migrations()
def create_reports_counts_signals(db: sqlite_utils.Database) -> None:
    db["reports"].create(
        {"id": int, "reporter": bytes, "country": str, "platform": str, "symptom": str,
         "asn": int, "network": str, "note": str, "at": int},
        pk="id",
        not_null={"reporter", "country", "platform", "symptom", "at"},
    )
    db["reports"].create_index(["country", "platform", "at"])
    db["reports"].create_index(["reporter", "at"])
    db["reports"].create_index(["at"])
    db["report_counts"].create(
        {"country": str, "platform": str, "symptom": str, "hour": int, "reports": int},
        pk=("country", "platform", "symptom", "hour"),
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


# -- reports -----------------------------------------------------------------------------------


def _report(row: dict) -> Report:
    return Report(
        reporter=bytes(row["reporter"]), country=row["country"], platform=row["platform"], symptom=row["symptom"],
        at=row["at"], asn=row["asn"], network=row["network"], note=row["note"],
    )


def add_report(db: sqlite_utils.Database, report: Report) -> int:
    """Store a report and count it in its hour, together."""
    with transaction(db):
        cursor = db.execute(
            "insert into reports (reporter, country, platform, symptom, asn, network, note, at) "
            "values (?, ?, ?, ?, ?, ?, ?, ?)",
            [report.reporter, report.country, report.platform, report.symptom, report.asn, report.network,
             report.note, report.at],
        )
        db.execute(
            "insert into report_counts (country, platform, symptom, hour, reports) values (?, ?, ?, ?, 1) "
            "on conflict do update set reports = reports + 1",
            [report.country, report.platform, report.symptom, report.at - report.at % crowd.HOUR],
        )
    return cursor.lastrowid


def reporter_reports(db: sqlite_utils.Database, reporter: bytes, since: int) -> list[Report]:
    """One reporter's reports after `since` (what the throttle looks at)."""
    return [_report(row) for row in db.query(
        "select * from reports where reporter = ? and at > ? order by at", [reporter, since])]


def pair_reports(db: sqlite_utils.Database, country: str, platform: str, since: int, after_id: int = 0) -> list[Report]:
    """The pair's reports made after `since` and stored after report `after_id`."""
    return [_report(row) for row in db.query(
        "select * from reports where country = ? and platform = ? and at > ? and id > ? order by at",
        [country, platform, since, after_id])]


def recent_notes(db: sqlite_utils.Database, country: str, platform: str, since: int, limit: int = 3) -> list[str]:
    """The newest notes reporters wrote about the pair (shown to admins escaped, without who wrote them)."""
    return [row["note"] for row in db.query(
        "select note, max(at) as newest from reports where country = ? and platform = ? and at > ? and note is not null "
        "group by note order by newest desc limit ?", [country, platform, since, limit])]


def hourly_counts(db: sqlite_utils.Database, country: str, platform: str, since: int) -> dict[int, int]:
    return {row["hour"]: row["n"] for row in db.query(
        "select hour, sum(reports) as n from report_counts where country = ? and platform = ? and hour >= ? "
        "group by hour", [country, platform, since])}


def usual_levels(db: sqlite_utils.Database, now: int, window: int) -> dict[tuple[str, str], float]:
    """Every pair's usual number of reports per window (see crowd.usual_level)."""
    since = now - window - crowd.USUAL_DAYS * 86400
    hourly: dict[tuple[str, str], dict[int, int]] = defaultdict(dict)
    for row in db.query(
        "select country, platform, hour, sum(reports) as n from report_counts where hour >= ? "
        "group by country, platform, hour", [since]):
        hourly[(row["country"], row["platform"])][row["hour"]] = row["n"]
    return {pair: crowd.usual_level(counts, now=now, window=window) for pair, counts in hourly.items()}


def _seconds(moment: datetime | int | float) -> int:
    return int(moment.timestamp()) if isinstance(moment, datetime) else int(moment)


def count_reports(db: sqlite_utils.Database, since: datetime | int) -> int:
    """Reports stored since a moment (for /stats)."""
    return db.execute("select count(*) from reports where at >= ?", [_seconds(since)]).fetchone()[0]


def total_reports(db: sqlite_utils.Database) -> int:
    """Every report ever accepted, including those the purge removed."""
    return db.execute("select coalesce(sum(reports), 0) from report_counts").fetchone()[0]


def stored_reports(db: sqlite_utils.Database) -> int:
    return db.execute("select count(*) from reports").fetchone()[0]


def _scrub(db: sqlite_utils.Database) -> None:
    # overwritten, not just unlinked: deleted rows must not survive in free pages or in the -wal
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def purge(db: sqlite_utils.Database, now: int, retention_days: int) -> int:
    """Delete raw reports older than the retention period; their hourly counts stay."""
    db.execute("PRAGMA secure_delete=ON")
    with transaction(db):
        removed = db.execute("delete from reports where at < ?", [now - retention_days * 86400]).rowcount
    if removed:
        _scrub(db)
    return removed


def forget_reporter(db: sqlite_utils.Database, reporter: bytes) -> int:
    """Delete one reporter's reports (/forgetme). Counts and signals hold no reporter, so they stay."""
    db.execute("PRAGMA secure_delete=ON")
    with transaction(db):
        removed = db.execute("delete from reports where reporter = ?", [reporter]).rowcount
    if removed:
        _scrub(db)
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
        params.append(_seconds(since))
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


# -- evaluation --------------------------------------------------------------------------------


def assess_pair(db: sqlite_utils.Database, country: str, platform: str, now: int, rules: Rules) -> Assessment | None:
    """The crowd's current word on one pair: reports in the window, after its last decided signal."""
    after_id = spent(db, country, platform).get((country, platform), 0)
    reports = pair_reports(db, country, platform, now - rules.window, after_id)
    if not reports:
        return None
    usual_since = now - rules.window - crowd.USUAL_DAYS * 86400
    usual = crowd.usual_level(hourly_counts(db, country, platform, usual_since), now=now, window=rules.window)
    return crowd.assess(reports, now=now, rules=rules, usual=usual)


def evaluate(db: sqlite_utils.Database, now: int, rules: Rules) -> list[Assessment]:
    """Every pair whose reports in the window make a signal now (reports before a pair's last decision excluded)."""
    used = spent(db)
    reports = [
        _report(row) for row in db.query(
            "select id, reporter, country, platform, symptom, asn, network, null as note, at from reports where at > ?",
            [now - rules.window])
        if row["id"] > used.get((row["country"], row["platform"]), 0)
    ]
    return crowd.find_signals(reports, now=now, rules=rules, usual=usual_levels(db, now, rules.window))
