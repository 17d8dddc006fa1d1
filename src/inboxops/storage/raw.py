"""The transaction's own DBAPI connection, for the hot paths of ingestion.

DMARC records and Postfix delivery attempts arrive by the hundred thousand; SQLAlchemy's
statement machinery would cost most of the budget, so the hot paths speak to the driver on the
connection of their (SQLAlchemy-managed) transaction: qmark SQL and ``executemany`` on SQLite,
``%s`` SQL and ``COPY`` on PostgreSQL. Values are adapted the way SQLAlchemy's own types store
them (naive-UTC text datetimes and JSON text on SQLite), so both paths read back identically.
Text is the caller's to clean (:func:`inboxops.storage.text.clean_row`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, Table


class Raw:
    """The DBAPI connection under a SQLAlchemy ``Connection`` (see the module docstring)."""

    def __init__(self, conn: Connection) -> None:
        self.pg = conn.dialect.name == "postgresql"
        self.raw: Any = conn.connection.dbapi_connection

    def sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.pg else text

    def dt(self, value: datetime | None) -> Any:
        if value is None or self.pg:
            return value
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    def day(self, value: date | None) -> Any:
        if value is None or self.pg:
            return value
        return value.isoformat()

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

    def row(self, text: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
        cur = self.raw.cursor()
        try:
            cur.execute(self.sql(text), params)
            found = cur.fetchone()
            return tuple(found) if found is not None else None
        finally:
            cur.close()

    def all(self, text: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        cur = self.raw.cursor()
        try:
            cur.execute(self.sql(text), params)
            return [tuple(r) for r in cur.fetchall()]
        finally:
            cur.close()

    def run(self, text: str, params: Sequence[Any]) -> None:
        cur = self.raw.cursor()
        try:
            cur.execute(self.sql(text), params)
        finally:
            cur.close()

    def rowcount(self, text: str, params: Sequence[Any]) -> int:
        """Run one statement; how many rows it inserted, updated or deleted."""
        cur = self.raw.cursor()
        try:
            cur.execute(self.sql(text), params)
            return int(cur.rowcount)
        finally:
            cur.close()

    def executemany_count(self, text: str, rows: Sequence[Sequence[Any]]) -> int:
        """``executemany``; how many rows it changed (e.g. inserted past ON CONFLICT)."""
        if not rows:
            return 0
        cur = self.raw.cursor()
        try:
            cur.executemany(self.sql(text), rows)
            return int(cur.rowcount)
        finally:
            cur.close()

    def executemany(self, text: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        cur = self.raw.cursor()
        try:
            cur.executemany(self.sql(text), rows)
        finally:
            cur.close()

    def write(self, table: Table, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
        self.write_named(table.name, columns, rows)

    def write_named(self, table: str, columns: list[str], rows: Sequence[Sequence[Any]]) -> None:
        """Bulk insert: ``COPY`` on PostgreSQL, ``executemany`` on SQLite."""
        if not rows:
            return
        cols = ", ".join(f'"{c}"' for c in columns)
        if self.pg:
            with self.raw.cursor() as cur, cur.copy(f"COPY {table} ({cols}) FROM STDIN") as cp:
                for row in rows:
                    cp.write_row(row)
            return
        marks = ", ".join("?" for _ in columns)
        cur = self.raw.cursor()
        try:
            cur.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", rows)
        finally:
            cur.close()
