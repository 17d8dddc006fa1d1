"""A reader's staged rows as an SQLite database image, for a SQLite store.

When a big log is read on every core (:mod:`.parallel`), the process that owns the database is
the one that limits the ingest: every other step runs beside it in the readers. Handing it
Python tuples costs it an unpickle and a bind per value; handing it a small in-memory SQLite
database (``sqlite3.Connection.serialize``) costs it one copy, and the rows then move into
``rep_attempts`` with ``INSERT ... SELECT`` inside SQLite. The readers build the images.

An image holds the rows in two tables. ``kinds`` holds each distinct combination of the
columns many rows share (sending identity, domain, operator, relay, reply...) once; ``rows``
holds the rest of each row and its kind, keyed by ``(fp, seq)`` so that a scan gives the rows in
digest order (the order the store inserts them in) without a sort. The view ``stage`` joins
them back into the columns of :data:`~inboxops.reputation.staging.STAGE_COLS`, in that order.
A reader binds half the values it would bind for whole rows. The columns have no declared
type, so each value keeps the type it was bound with, exactly as when the store binds the
tuple itself. The store attaches an image for one transaction
(:func:`inboxops.storage.db.write_transaction`'s ``images``); it deletes from ``rows``, decides
operators in ``kinds``, and reads ``stage``.
"""

from __future__ import annotations

import operator
import sqlite3
from typing import Any

from inboxops.reputation.collect import NO_OPERATOR
from inboxops.reputation.staging import SENDER_KNOWN, STAGE_COLS, TS, Staged, StagedImage

# Python's sqlite3 has serialize/deserialize when its SQLite has the API (3.36 and later by
# default); without it the readers send tuples, as they do for PostgreSQL.
SUPPORTED = hasattr(sqlite3.Connection, "serialize") and hasattr(sqlite3.Connection, "deserialize")
TABLE, ROWS, KINDS = "stage", "rows", "kinds"
_FP, _SEQ = STAGE_COLS.index("fp"), STAGE_COLS.index("seq")
_SHARED = slice(STAGE_COLS.index("syslog_name"), STAGE_COLS.index("reply") + 1)
_SHARED_COLS = STAGE_COLS[_SHARED]
_OWN = [i for i, c in enumerate(STAGE_COLS) if c not in _SHARED_COLS]  # fp, rkey, ... seq
_OWN_COLS = [STAGE_COLS[i] for i in _OWN]
_DDL = [
    f"CREATE TABLE {KINDS} (k INTEGER PRIMARY KEY, {', '.join(_SHARED_COLS)})",
    f"CREATE TABLE {ROWS} ({', '.join(_OWN_COLS)}, k, PRIMARY KEY (fp, seq)) WITHOUT ROWID",
    f"CREATE VIEW {TABLE} AS SELECT "
    + ", ".join(f"{'k' if c in _SHARED_COLS else 'r'}.{c}" for c in STAGE_COLS)
    + f" FROM {ROWS} r JOIN {KINDS} k ON k.k = r.k",
]
_ADD_KIND = f"INSERT INTO {KINDS} VALUES ({', '.join('?' * (len(_SHARED_COLS) + 1))})"
_ADD_ROW = f"INSERT INTO {ROWS} VALUES ({', '.join('?' * (len(_OWN_COLS) + 1))})"
_ROW_FP, _ROW_SEQ = _OWN_COLS.index("fp"), _OWN_COLS.index("seq")
_own_values = operator.itemgetter(*_OWN)


def build(rows: list[Staged]) -> StagedImage:
    """The image of staged ``rows``, every one of them (a line logged twice too: each row is
    its own ``(fp, seq)``), and what the store needs to know of them beforehand."""
    kinds: dict[tuple[Any, ...], int] = {}
    own: list[tuple[Any, ...]] = []
    unknown: list[tuple[int, int, str, str, float]] = []
    undecided: set[str] = set()
    for r in rows:
        shared = r[_SHARED]
        k = kinds.get(shared)
        if k is None:
            k = kinds[shared] = len(kinds)
            if r[6] == NO_OPERATOR:  # the operator is one of the shared columns
                undecided.add(r[5])
        own.append((*_own_values(r), k))
        if not r[SENDER_KNOWN]:
            unknown.append((r[_FP], r[_SEQ], r[15], r[16], r[TS]))
    own.sort(key=_key)
    db = sqlite3.connect(":memory:", isolation_level=None)
    try:
        for ddl in _DDL:
            db.execute(ddl)
        db.execute("BEGIN")
        db.executemany(_ADD_KIND, [(k, *shared) for shared, k in kinds.items()])
        db.executemany(_ADD_ROW, own)  # in key order: the B-tree is appended to
        db.execute("COMMIT")
        data = db.serialize()
    finally:
        db.close()
    return StagedImage(data, len(rows), unknown, sorted(undecided))


def _key(row: tuple[Any, ...]) -> tuple[int, int]:
    return row[_ROW_FP], row[_ROW_SEQ]


__all__ = ["KINDS", "ROWS", "SUPPORTED", "TABLE", "build"]
