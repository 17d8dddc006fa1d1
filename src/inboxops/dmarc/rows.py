"""The aggregate hot path at driver level: rows, SQL and value adaptation per dialect.

Small reports are dominated by per-statement overhead, so the aggregate write path skips
SQLAlchemy's statement machinery and speaks to the DBAPI driver on the transaction's own
connection. Everything that knows a column order, a paramstyle or how a driver wants a value
lives here, next to the columns it mirrors (``storage/models.py``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, String

from inboxops.dmarc.model import Record, ReportMeta
from inboxops.storage.models import dmarc_auth_results, dmarc_records, dmarc_reports
from inboxops.storage.raw import Raw
from inboxops.storage.text import CleanJSON, CleanString, CleanText, clean_json, clean_row

RECORD_COLS = [c.name for c in dmarc_records.columns]
AUTH_COLS = [c.name for c in dmarc_auth_results.columns]


def _text_indexes(columns: Sequence[Column[Any]]) -> tuple[int, ...]:
    """Positions of the text columns, whose values storage/text.py cleans."""
    return tuple(
        i for i, c in enumerate(columns) if isinstance(c.type, CleanString | CleanText | CleanJSON)
    )


RECORD_TEXT = _text_indexes(list(dmarc_records.columns))
AUTH_TEXT = _text_indexes(list(dmarc_auth_results.columns))


def report_key(org_name: str, report_id: str) -> str:
    """The idempotency key of a report: a digest of the *full* org_name and report_id."""
    return hashlib.sha256(f"{org_name}\x00{report_id}".encode("utf-8", "surrogatepass")).hexdigest()


def window_at(begin: datetime | None, end: datetime | None) -> datetime | None:
    """The instant that places a report in a window: the midpoint of its date range.

    A daily report from 00:00 to 24:00 counts on its day, not on the next one too; a report
    with no end (or an end before its begin) counts at its begin.
    """
    if begin is None:
        return end
    if end is None or end < begin:
        return begin
    return begin + (end - begin) / 2


def now() -> datetime:
    return datetime.now(UTC)


def meta_values(
    raw: Raw, meta: ReportMeta, source: str, *, sha256: str = "", recovered: bool = False
) -> list[Any]:
    row = {
        "report_key": report_key(meta.org_name, meta.report_id),
        "org_name": meta.org_name,
        "report_id": meta.report_id,
        "email": meta.email,
        "extra_contact_info": meta.extra_contact_info,
        "begin_at": raw.dt(meta.begin),
        "end_at": raw.dt(meta.end),
        "window_at": raw.dt(window_at(meta.begin, meta.end)),
        "version": meta.version,
        "generator": meta.generator,
        "domain": meta.domain,
        "adkim": meta.adkim,
        "aspf": meta.aspf,
        "p": meta.p,
        "sp": meta.sp,
        "np": meta.np,
        "pct": meta.pct,
        "fo": meta.fo,
        "testing": meta.testing,
        "discovery_method": meta.discovery_method,
        "errors": raw.json(clean_json(list(meta.errors))),
        "record_count": 0,
        "message_count": 0,
        "dropped_records": 0,
        "source": source,
        "sha256": sha256,
        "recovered": recovered if raw.pg else int(recovered),
        "stored_at": raw.dt(now()),
    }
    return list(clean_row([_fit(c, row[c]) for c in REPORT_COLS], REPORT_TEXT))


def _fit(column: str, value: Any) -> Any:
    """Cut display text to its column's length (PostgreSQL refuses what SQLite keeps). Keys
    are not among them: org_name and report_id are unbounded, and keyed by digest."""
    limit = REPORT_LENGTHS.get(column)
    if limit and isinstance(value, str) and len(value) > limit:
        return value[:limit]
    return value


def record_rows(
    report_pk: int, start: int, records: Sequence[Record], pg: bool
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    true, false = (True, False) if pg else (1, 0)
    rec_rows: list[tuple[Any, ...]] = []
    auth_rows: list[tuple[Any, ...]] = []
    for i, r in enumerate(records, start):
        reasons = json.dumps([list(x) for x in r.reasons]) if r.reasons else None  # text
        rec_rows.append(
            (
                report_pk,
                i,
                r.source_ip,
                r.count,
                r.disposition,
                r.policy_dkim,
                r.policy_spf,
                r.header_from,
                r.envelope_from,
                r.envelope_to,
                reasons,
                true if r.dkim_aligned else false,
                true if r.spf_aligned else false,
                true if r.dkim_aligned or r.spf_aligned else false,
            )
        )
        for j, a in enumerate(r.auth_results):
            auth_rows.append(
                (report_pk, i, j, a.method, a.domain, a.selector, a.result, a.scope, a.human_result)
            )
    return (
        [clean_row(row, RECORD_TEXT) for row in rec_rows],
        [clean_row(row, AUTH_TEXT) for row in auth_rows],
    )


REPORT_COLS = [c.name for c in dmarc_reports.columns if c.name != "id"]
REPORT_TEXT = _text_indexes([c for c in dmarc_reports.columns if c.name != "id"])
REPORT_LENGTHS = {
    c.name: c.type.length
    for c in dmarc_reports.columns
    if isinstance(c.type, String) and c.type.length
}
FIND_SQL = "SELECT id, sha256, recovered, source FROM dmarc_reports WHERE report_key = ?"
INSERT_SQL = (
    f"INSERT INTO dmarc_reports ({', '.join(REPORT_COLS)}) "
    f"VALUES ({', '.join('?' for _ in REPORT_COLS)}) "
    "ON CONFLICT (report_key) DO NOTHING RETURNING id"
)
FINISH_SQL = (
    "UPDATE dmarc_reports SET errors = ?, record_count = ?, message_count = ?, "
    "dropped_records = ?, sha256 = ?, recovered = ? WHERE id = ?"
)
# Replacing a recovered copy with a clean one: its children go, the report row is rewritten.
REPLACE_SQL = f"UPDATE dmarc_reports SET {', '.join(f'{c} = ?' for c in REPORT_COLS)} WHERE id = ?"
DELETE_CHILDREN_SQL = (
    "DELETE FROM dmarc_auth_results WHERE report_pk = ?",
    "DELETE FROM dmarc_records WHERE report_pk = ?",
)
# Derived from the column lists, so the stored side of a comparison always matches what
# record_rows() writes (minus the report key).
CONTENT_RECORD_SQL = f"SELECT {', '.join(RECORD_COLS[1:])} FROM dmarc_records WHERE report_pk = ?"
CONTENT_AUTH_SQL = f"SELECT {', '.join(AUTH_COLS[1:])} FROM dmarc_auth_results WHERE report_pk = ?"


def content_digest(records: Sequence[Sequence[Any]], auth: Sequence[Sequence[Any]]) -> str:
    """A digest of a report's content as stored: records with their auth results, in any
    order, independent of driver representations (booleans, JSON as text or as lists).

    Rows are (seq, values...) for records and (record_seq, seq, values...) for auth results,
    exactly as :func:`record_rows` writes them (minus the report key) or as read back.
    """
    by_record: dict[Any, list[str]] = {}
    for row in auth:
        by_record.setdefault(row[0], []).append(json.dumps([_canon(v) for v in row[2:]]))
    items = sorted(
        json.dumps([_canon(v) for v in row[1:]]) + "|" + "|".join(sorted(by_record.get(row[0], [])))
        for row in records
    )
    return hashlib.sha256("\n".join(items).encode("utf-8", "surrogatepass")).hexdigest()


def _canon(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
