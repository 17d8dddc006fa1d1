"""The aggregate hot path at driver level: rows, SQL and value adaptation per dialect.

Small reports are dominated by per-statement overhead, so the aggregate write path skips
SQLAlchemy's statement machinery and speaks to the DBAPI driver on the transaction's own
connection. Everything that knows a column order, a paramstyle or how a driver wants a value
lives here, next to the columns it mirrors (``storage/models.py``).

Two kinds of input become rows: :class:`~inboxops.dmarc.model.Record` objects from any caller
(:func:`record_rows`, which cleans their text with :func:`~inboxops.storage.text.clean_row`),
and the parser's own :data:`~inboxops.dmarc.parse.RecordValues`, cleaned where they were
parsed (:func:`value_rows`, which therefore does not clean them again).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import chain
from typing import Any

from sqlalchemy import Column, String

from inboxops.dmarc.model import Record, ReportMeta
from inboxops.dmarc.parsed import report_key
from inboxops.dmarc.records import RecordValues
from inboxops.storage.models import dmarc_auth_results, dmarc_records, dmarc_reports
from inboxops.storage.raw import Raw
from inboxops.storage.text import clean_json, clean_row, clean_text
from inboxops.storage.types import CleanJSON, CleanString, CleanText

RECORD_COLS = [c.name for c in dmarc_records.columns]
AUTH_COLS = [c.name for c in dmarc_auth_results.columns]


def _text_indexes(columns: Sequence[Column[Any]]) -> tuple[int, ...]:
    """Positions of the text columns, whose values storage/text.py cleans."""
    return tuple(
        i for i, c in enumerate(columns) if isinstance(c.type, CleanString | CleanText | CleanJSON)
    )


RECORD_TEXT = _text_indexes(list(dmarc_records.columns))
AUTH_TEXT = _text_indexes(list(dmarc_auth_results.columns))


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
    raw: Raw,
    meta: ReportMeta,
    source: str,
    *,
    sha256: str = "",
    recovered: bool = False,
    counts: tuple[int, int, int] = (0, 0, 0),
) -> list[Any]:
    """A report's row; ``counts`` (records, messages, dropped records) when already known."""
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
        "record_count": counts[0],
        "message_count": counts[1],
        "dropped_records": counts[2],
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
        reasons = json.dumps(clean_json(r.reasons)) if r.reasons else None  # text
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


def value_rows(
    report_pk: int, start: int, values: Sequence[RecordValues], pg: bool
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """:func:`record_rows` for the parser's :data:`~inboxops.dmarc.parse.RecordValues`.

    Those are cut and cleaned by the parser (tests/test_parse_speed_paths.py holds it to
    that), so no :func:`clean_row` pass runs here. Booleans go to SQLite as 1/0, as in
    :func:`record_rows`: sqlite3 binds a ``bool`` only after a failed adapter lookup that
    costs more than building the row.
    """
    flags = _PG_FLAGS if pg else _SQLITE_FLAGS
    dumps = json.dumps
    rec_rows: list[tuple[Any, ...]] = []
    auth_rows: list[tuple[Any, ...]] = []
    add_record, add_auth = rec_rows.append, auth_rows.append
    for i, v in enumerate(values, start):
        reasons = dumps([list(x) for x in v[8]]) if v[8] else None
        add_record((report_pk, i, *v[:8], reasons, *flags[v[10], v[11]]))
        for j, a in enumerate(v[9]):
            add_auth((report_pk, i, j, *a))
    return rec_rows, auth_rows


# (dkim_aligned, spf_aligned) -> the row's (dkim_aligned, spf_aligned, dmarc_pass)
_PG_FLAGS = {(d, s): (d, s, d or s) for d in (False, True) for s in (False, True)}
_SQLITE_FLAGS = {k: tuple(int(b) for b in v) for k, v in _PG_FLAGS.items()}


class PendingRows:
    """Several reports' record and auth-result rows, written together: one multi-row INSERT
    (or COPY) per table for a group of small reports instead of two per report."""

    def __init__(self) -> None:
        self.records: list[tuple[Any, ...]] = []
        self.auth: list[tuple[Any, ...]] = []

    def add(
        self,
        raw: Raw,
        report_pk: int,
        records: Sequence[Record],
        values: Sequence[RecordValues] | None,
    ) -> None:
        if values is not None:
            rec_rows, auth_rows = value_rows(report_pk, 0, values, raw.pg)
        else:
            rec_rows, auth_rows = record_rows(report_pk, 0, records, raw.pg)
        self.records += rec_rows
        self.auth += auth_rows

    def write(self, raw: Raw) -> None:
        insert_rows(raw, dmarc_records.name, RECORD_COLS, self.records)
        insert_rows(raw, dmarc_auth_results.name, AUTH_COLS, self.auth)
        self.records, self.auth = [], []


def write_records(raw: Raw, report_pk: int, start: int, records: Sequence[Record]) -> None:
    rec_rows, auth_rows = record_rows(report_pk, start, records, raw.pg)
    insert_rows(raw, dmarc_records.name, RECORD_COLS, rec_rows)
    insert_rows(raw, dmarc_auth_results.name, AUTH_COLS, auth_rows)


def write_values(raw: Raw, report_pk: int, start: int, values: Sequence[RecordValues]) -> None:
    rec_rows, auth_rows = value_rows(report_pk, start, values, raw.pg)
    insert_rows(raw, dmarc_records.name, RECORD_COLS, rec_rows)
    insert_rows(raw, dmarc_auth_results.name, AUTH_COLS, auth_rows)


SQLITE_MAX_PARAMS = 999  # SQLITE_MAX_VARIABLE_NUMBER before SQLite 3.32: safe on any build
_INSERTS: dict[tuple[str, tuple[str, ...]], tuple[str, str, int]] = {}


def insert_rows(raw: Raw, table: str, columns: list[str], rows: Sequence[Sequence[Any]]) -> None:
    """Bulk insert: ``COPY`` on PostgreSQL; on SQLite ``executemany`` of multi-row ``INSERT``s.

    sqlite3 steps (and resets) a statement once per parameter set, so one row per set costs
    about twice as much as sets of ~70 rows (as many as fit in 999 parameters); the remainder
    goes one row per set. Either way it is one ``INSERT`` per row, in order, in the caller's
    transaction.
    """
    if not rows:
        return
    if raw.pg:
        raw.write_named(table, columns, rows)
        return
    key = (table, tuple(columns))
    if key not in _INSERTS:
        per = max(1, SQLITE_MAX_PARAMS // len(columns))
        quoted = ", ".join(f'"{c}"' for c in columns)
        head = f"INSERT INTO {table} ({quoted}) VALUES "
        one = f"({', '.join('?' for _ in columns)})"
        _INSERTS[key] = (head + ", ".join([one] * per), head + one, per)
    many, single, per = _INSERTS[key]
    full = len(rows) - len(rows) % per
    cur = raw.raw.cursor()
    try:
        if full:
            flat = list(chain.from_iterable(rows[:full]))
            size = per * len(columns)
            cur.executemany(many, [flat[i : i + size] for i in range(0, len(flat), size)])
        if full < len(rows):
            cur.executemany(single, rows[full:])
    finally:
        cur.close()


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
REPORT_KEY = REPORT_COLS.index("report_key")  # where meta_values puts it
_REPORTS_PER_INSERT = SQLITE_MAX_PARAMS // len(REPORT_COLS)
_REPORT_ROW = f"({', '.join('?' for _ in REPORT_COLS)})"


def insert_reports(raw: Raw, reports: Sequence[Sequence[Any]]) -> dict[str, int]:
    """A group's report rows (:func:`meta_values`, in order) in a few multi-row ``INSERT``s:
    ``{report_key: id}`` of those inserted. A key already stored, or taken by an earlier copy
    in the group, gets no id: the caller compares that copy with the stored one. One
    statement per report cost a tenth of an import of small reports."""
    ids: dict[str, int] = {}
    for i in range(0, len(reports), _REPORTS_PER_INSERT):
        chunk = reports[i : i + _REPORTS_PER_INSERT]
        sql = (
            f"INSERT INTO dmarc_reports ({', '.join(REPORT_COLS)}) VALUES "
            + ", ".join([_REPORT_ROW] * len(chunk))
            + " ON CONFLICT (report_key) DO NOTHING RETURNING id, report_key"
        )
        for pk, key in raw.all(sql, [v for row in chunk for v in row]):
            ids[str(key)] = int(pk)
    return ids


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
    """Cleaned as :mod:`inboxops.storage.text` would store it today, so a copy stored before
    reasons were cleaned inside their JSON still compares equal to its clean re-parse."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return clean_json(json.loads(value))
        except ValueError:
            return clean_text(value)
    return clean_json(value)
