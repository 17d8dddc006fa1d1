"""A reader's staged rows as an SQLite database image, for a SQLite store.

When a big log is read on every core (:mod:`.parallel`), the process that owns the database is
the one that limits the ingest: every other step runs beside it in the readers. Handing it
Python tuples costs it an unpickle and a bind per value; handing it a small in-memory SQLite
database (``sqlite3.Connection.serialize``) costs it one copy, and the rows then move into
``rep_attempts`` with ``INSERT ... SELECT`` inside SQLite. The readers build the images.

An image holds one table, ``stage``, with the columns of
:data:`~inboxops.reputation.staging.STAGE_COLS` in that order, keyed by ``(fp, seq)`` so that a
scan gives the rows in digest order (the order the store inserts them in) without a sort. Its
columns have no declared type, so each value keeps the type it was bound with, exactly as when
the store binds the tuple itself. The store attaches it for one transaction
(:func:`inboxops.storage.db.write_transaction`'s ``images``).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from inboxops.reputation.collect import NO_OPERATOR
from inboxops.reputation.staging import SENDER_KNOWN, STAGE_COLS, TS, Staged, StagedImage

# Python's sqlite3 has serialize/deserialize when its SQLite has the API (3.36 and later by
# default); without it the readers send tuples, as they do for PostgreSQL.
SUPPORTED = hasattr(sqlite3.Connection, "serialize") and hasattr(sqlite3.Connection, "deserialize")
TABLE = "stage"
_FP, _SEQ = STAGE_COLS.index("fp"), STAGE_COLS.index("seq")
_DDL = f"CREATE TABLE {TABLE} ({', '.join(STAGE_COLS)}, PRIMARY KEY (fp, seq)) WITHOUT ROWID"
_INSERT = f"INSERT INTO {TABLE} VALUES ({', '.join('?' * len(STAGE_COLS))})"


def build(rows: list[Staged]) -> StagedImage:
    """The image of staged ``rows``, every one of them (a line logged twice too: each row is
    its own ``(fp, seq)``), and what the store needs to know of them beforehand."""
    width = len(STAGE_COLS)
    ordered = sorted([r[:width] for r in rows], key=_key)
    db = sqlite3.connect(":memory:", isolation_level=None)
    try:
        db.execute(_DDL)
        db.execute("BEGIN")
        # in key order: the table's B-tree is appended to, page after page
        db.executemany(_INSERT, ordered)
        db.execute("COMMIT")
        data = db.serialize()
    finally:
        db.close()
    unknown = [(r[_FP], r[_SEQ], r[15], r[16], r[TS]) for r in rows if not r[SENDER_KNOWN]]
    undecided = sorted({r[5] for r in rows if r[6] == NO_OPERATOR})
    return StagedImage(data, len(rows), unknown, undecided)


def _key(row: tuple[Any, ...]) -> tuple[int, int]:
    return row[_FP], row[_SEQ]


__all__ = ["SUPPORTED", "TABLE", "build"]
