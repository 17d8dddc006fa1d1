"""The aggregate hot path at driver level: rows, SQL and value adaptation per dialect.

Small reports are dominated by per-statement overhead, so the aggregate write path skips
SQLAlchemy's statement machinery and speaks to the DBAPI driver on the transaction's own
connection. Everything that knows a column order, a paramstyle or how a driver wants a value
lives here, next to the columns it mirrors (``storage/models.py``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, String, Table

from inboxops.dmarc.model import Record, ReportMeta
from inboxops.storage.models import dmarc_auth_results, dmarc_records, dmarc_reports

RECORD_COLS = [c.name for c in dmarc_records.columns]
AUTH_COLS = [c.name for c in dmarc_auth_results.columns]


def now() -> datetime:
    return datetime.now(UTC)


def meta_values(raw: Raw, meta: ReportMeta, source: str) -> list[Any]:
    row = {
        "org_name": meta.org_name,
        "report_id": meta.report_id,
        "email": meta.email,
        "extra_contact_info": meta.extra_contact_info,
        "begin_at": raw.dt(meta.begin),
        "end_at": raw.dt(meta.end),
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
        "errors": raw.json(list(meta.errors)),
        "record_count": 0,
        "message_count": 0,
        "dropped_records": 0,
        "source": source,
        "sha256": "",
        "stored_at": raw.dt(now()),
    }
    return [_fit(c, row[c]) for c in REPORT_COLS]


def _fit(column: str, value: Any) -> Any:
    """Cut text to its column's length: PostgreSQL refuses what SQLite would silently keep."""
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
        reasons = json.dumps([list(x) for x in r.reasons]) if r.reasons else None
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
    return rec_rows, auth_rows


class Raw:
    """The transaction's own DBAPI connection, for the per-report hot path.

    Small reports are dominated by per-statement overhead, so the aggregate path skips
    SQLAlchemy's statement machinery and speaks to the driver: qmark SQL and ``executemany`` on
    SQLite, ``%s`` SQL and ``COPY`` on PostgreSQL. Values are adapted the way SQLAlchemy's own
    types store them (naive-UTC text datetimes and JSON text on SQLite), so both paths read back
    identically through the models.
    """

    def __init__(self, conn: Connection) -> None:
        self.pg = conn.dialect.name == "postgresql"
        self.raw: Any = conn.connection.dbapi_connection

    def sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.pg else text

    def dt(self, value: datetime | None) -> Any:
        if value is None or self.pg:
            return value
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    def json(self, value: Any) -> Any:
        if self.pg:
            from psycopg.types.json import Json

            return Json(value)
        return json.dumps(value)

    def one(self, text: str, params: Sequence[Any]) -> Any:
        cur = self.raw.cursor()
        try:
            cur.execute(self.sql(text), params)
            row = cur.fetchone()
            return row[0] if row else None
        finally:
            cur.close()

    def run(self, text: str, params: Sequence[Any]) -> None:
        cur = self.raw.cursor()
        try:
            cur.execute(self.sql(text), params)
        finally:
            cur.close()

    def write(self, table: Table, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        cols = ", ".join(f'"{c}"' for c in columns)
        if self.pg:
            with self.raw.cursor() as cur, cur.copy(f"COPY {table.name} ({cols}) FROM STDIN") as cp:
                for row in rows:
                    cp.write_row(row)
            return
        marks = ", ".join("?" for _ in columns)
        cur = self.raw.cursor()
        try:
            cur.executemany(f"INSERT INTO {table.name} ({cols}) VALUES ({marks})", rows)
        finally:
            cur.close()


def driver_errors(pg: bool) -> tuple[tuple[type[Exception], ...], tuple[type[Exception], ...]]:
    """(integrity errors, all errors) of the driver in use: the raw hot path raises the
    driver's own exceptions, which SQLAlchemy does not wrap. psycopg is imported only for
    PostgreSQL, so SQLite runs (and --dry-run) never need it."""
    if not pg:
        return (sqlite3.IntegrityError,), (sqlite3.Error,)
    import psycopg

    return (psycopg.IntegrityError,), (psycopg.Error,)


REPORT_COLS = [c.name for c in dmarc_reports.columns if c.name != "id"]
REPORT_LENGTHS = {
    c.name: c.type.length
    for c in dmarc_reports.columns
    if isinstance(c.type, String) and c.type.length
}
FIND_SQL = "SELECT id FROM dmarc_reports WHERE org_name = ? AND report_id = ?"
INSERT_SQL = (
    f"INSERT INTO dmarc_reports ({', '.join(REPORT_COLS)}) "
    f"VALUES ({', '.join('?' for _ in REPORT_COLS)}) "
    "ON CONFLICT (org_name, report_id) DO NOTHING RETURNING id"
)
FINISH_SQL = (
    "UPDATE dmarc_reports SET errors = ?, record_count = ?, message_count = ?, "
    "dropped_records = ?, sha256 = ? WHERE id = ?"
)
