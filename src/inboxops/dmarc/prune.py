"""``inboxops dmarc prune``: delete what is past its retention, whole, in short transactions.

Reports pile up (a busy domain gets thousands of records a day); old ones only slow the views
and grow the file. What goes, and by which instant:

* aggregate reports with their records and auth results, and SMTP TLS reports with their
  policies and failure details, by ``window_at``, the midpoint of the report's date range: the
  same instant that places a report in a ``summary`` window, so a prune never changes a window
  that starts at or after the cutoff. A report without a date range ages by ``stored_at``;
* failure (ruf) reports by their arrival date (``stored_at`` when they carry none), as the
  ``failures`` view counts them;
* quarantined inputs by ``stored_at``.

Something is deleted when its instant is strictly before the cutoff (``now - age``); one at
the cutoff stays. ``dmarc_auth_results`` and ``tls_failures`` have no foreign key to their
report on purpose (storage/models.py), so they are deleted explicitly by ``report_pk``.

Each batch is one transaction of at most ``BATCH_REPORTS`` reports (fewer when their records
add up to ``BATCH_RECORDS``; one report is never split). The batch's report rows are selected
first (locked ``FOR UPDATE`` on PostgreSQL) and every delete of that batch works from that one
list of ids, so a report goes with all its rows or not at all: an interrupted prune leaves
only whole reports, and a rerun finishes the job. Short transactions keep memory flat and let
an hourly ``fetch`` in between; on SQLite a short pause between batches hands the write lock to
a waiting writer, because SQLite's busy handler is not first come, first served.

Planning (the age, the cutoff, which ids make a batch) is pure; :func:`prune` and
:func:`count` are the only functions that touch the database.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Table,
    and_,
    delete,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.exc import SQLAlchemyError

from inboxops.errors import StorageError
from inboxops.retention import TableCounts
from inboxops.storage.db import read_rows, retrying, write_transaction
from inboxops.storage.models import (
    dmarc_auth_results,
    dmarc_records,
    dmarc_reports,
    failure_reports,
    quarantine,
    tls_failures,
    tls_policies,
    tls_reports,
)
from inboxops.untrusted import one_line

log = logging.getLogger(__name__)

BATCH_REPORTS = 1000  # reports (or rows without children) per transaction
BATCH_RECORDS = 50_000  # ... or reports holding this many records, whichever comes first
SQLITE_PAUSE = 0.15  # seconds between batches: longer than SQLite's longest busy-handler sleep

# Every table a prune may delete from, in the order counts are shown.
TABLES = (
    "dmarc_reports",
    "dmarc_records",
    "dmarc_auth_results",
    "tls_reports",
    "tls_policies",
    "tls_failures",
    "failure_reports",
    "quarantine",
)


# -- planning (pure) ----------------------------------------------------------------------------


def take_batch(candidates: Sequence[tuple[int, int]], max_records: int) -> list[int]:
    """Ids of the leading ``(id, records)`` candidates holding at most ``max_records``
    records between them; the first is always taken, since one report is never split."""
    ids: list[int] = []
    total = 0
    for pk, records in candidates:
        if ids and total + records > max_records:
            break
        ids.append(pk)
        total += records
    return ids


@dataclass(frozen=True)
class Kind:
    """One kind of stored thing that ages: its table, its children and its age rule."""

    name: str
    table: Table
    old: Callable[[datetime], ColumnElement[bool]]
    children: tuple[tuple[Table, str], ...] = ()  # (table, column holding the parent's id)
    records: str | None = None  # column of the parent counting its records (batch sizing)


def _report_is_old(table: Table) -> Callable[[datetime], ColumnElement[bool]]:
    c = table.c
    return lambda cutoff: or_(
        c.window_at < cutoff, and_(c.window_at.is_(None), c.stored_at < cutoff)
    )


KINDS = (
    Kind(
        "aggregate",
        dmarc_reports,
        _report_is_old(dmarc_reports),
        ((dmarc_auth_results, "report_pk"), (dmarc_records, "report_pk")),
        "record_count",
    ),
    Kind(
        "tls",
        tls_reports,
        _report_is_old(tls_reports),
        ((tls_failures, "report_pk"), (tls_policies, "report_pk")),
    ),
    Kind(
        "failure",
        failure_reports,
        lambda cutoff: (
            func.coalesce(failure_reports.c.arrival_date, failure_reports.c.stored_at) < cutoff
        ),
    ),
    Kind("quarantine", quarantine, lambda cutoff: quarantine.c.stored_at < cutoff),
)


@dataclass
class PruneResult(TableCounts):
    """Rows per table that went (or, in a dry run, would go)."""

    days: int
    cutoff: datetime
    dry_run: bool
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    batches: int = 0

    def as_json(self) -> dict[str, Any]:
        return self.counts_json(cutoff=self.cutoff.isoformat().replace("+00:00", "Z"))


class PruneStopped(StorageError):
    """A prune failed part-way; what went before the failure went as whole reports."""

    def __init__(self, message: str, counts: dict[str, int]) -> None:
        super().__init__(message)
        self.counts = dict(counts)

    def details(self) -> dict[str, object]:
        return {"counts": self.counts}


# -- the database ---------------------------------------------------------------------------------


def count(engine: Engine, days: int, cutoff: datetime) -> PruneResult:
    """What :func:`prune` would delete at ``cutoff``, per table (the dry run)."""
    queries: list[Any] = []
    names: list[str] = []
    for kind in KINDS:
        old = kind.old(cutoff)
        queries.append(select(func.count()).select_from(kind.table).where(old))
        names.append(kind.table.name)
        parents = select(kind.table.c.id).where(old)
        for child, column in kind.children:
            queries.append(
                select(func.count()).select_from(child).where(child.c[column].in_(parents))
            )
            names.append(child.name)
    rows = read_rows(engine, *queries, what="reports to prune")
    result = PruneResult(days, cutoff, dry_run=True)
    for name, [(n,)] in zip(names, rows, strict=True):
        result.counts[name] = int(n)
    return result


Progress = Callable[[int, int], None]


def prune(
    engine: Engine,
    days: int,
    cutoff: datetime,
    *,
    batch_reports: int = BATCH_REPORTS,
    batch_records: int = BATCH_RECORDS,
    pause: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    progress: Progress | None = None,
) -> PruneResult:
    """Delete everything older than ``cutoff``, batch by batch (see the module docstring).

    ``pause`` is the rest between batches (default: ``SQLITE_PAUSE`` on SQLite, none on
    PostgreSQL, where row locks keep writers apart). ``progress(done, total)`` counts rows.
    """
    if pause is None:
        pause = SQLITE_PAUSE if engine.dialect.name == "sqlite" else 0.0
    result = PruneResult(days, cutoff, dry_run=False)
    total = count(engine, days, cutoff).total if progress is not None else 0
    for kind in KINDS:
        last = 0  # keyset: ids only grow, so each batch starts where the last one ended
        while True:
            try:
                ids, deleted = retrying(
                    partial(
                        _delete_batch, engine, kind, cutoff, last, batch_reports, batch_records
                    ),
                    what="prune",
                )
            except SQLAlchemyError as exc:
                raise _stopped(engine, exc, result) from None
            if not ids:
                break
            last = ids[-1]
            result.batches += 1
            for name, n in deleted.items():
                result.counts[name] += n
            log.info("event=prune_batch kind=%s rows=%d last_id=%d", kind.name, len(ids), last)
            if progress is not None:
                progress(result.total, max(total, result.total))
            if pause:
                sleep(pause)
    return result


def _delete_batch(
    engine: Engine, kind: Kind, cutoff: datetime, after: int, limit: int, max_records: int
) -> tuple[list[int], dict[str, int]]:
    """One transaction: pick the next batch of old ids, delete their children, then them."""
    table = kind.table
    weight = table.c[kind.records] if kind.records else literal(0)
    pick = (
        select(table.c.id, weight)
        .where(table.c.id > after, kind.old(cutoff))
        .order_by(table.c.id)
        .limit(limit)
        .with_for_update()  # PostgreSQL: a concurrent writer of these reports goes first
    )
    deleted: dict[str, int] = {}
    with write_transaction(engine) as conn:
        candidates = [(int(pk), int(n or 0)) for pk, n in conn.execute(pick)]
        ids = take_batch(candidates, max_records)
        if not ids:
            return [], deleted
        for child, column in kind.children:
            gone = conn.execute(delete(child).where(child.c[column].in_(ids)))
            deleted[child.name] = int(gone.rowcount)
        gone = conn.execute(delete(table).where(table.c.id.in_(ids)))
        deleted[table.name] = int(gone.rowcount)
    return ids, deleted


def _stopped(engine: Engine, exc: SQLAlchemyError, result: PruneResult) -> PruneStopped:
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    detail = one_line(lines[0] if lines else type(orig).__name__)
    password = engine.url.password
    if password:
        detail = detail.replace(str(password), "***")
    done = result.counts["dmarc_reports"] + result.counts["tls_reports"]
    return PruneStopped(
        f"prune stopped by a database error ({detail}); {done} report(s) were deleted whole "
        "before it and nothing was left half-deleted; fix the cause and rerun to finish",
        result.counts,
    )
