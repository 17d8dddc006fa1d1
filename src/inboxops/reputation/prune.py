"""``inboxops reputation prune``: attempts past their retention go; the daily trend stays.

Every delivery attempt is kept (``rep_attempts``) so that a rerun or an overlapping log never
double-counts, and a busy fleet writes hundreds of thousands of them a day. Old ones only
grow the file: the figures every view reads are the daily rollup (``rep_daily``), a few rows
per day, and that is kept. What goes, for days strictly before the *first kept day*
(``today - age``, UTC):

* ``rep_attempts`` by ``day`` and ``rep_recipients`` by ``final_day``, one day per transaction
  (the ``day`` indexes make each a range delete), so an hourly ingest waits seconds at most;
* ``rep_expiries`` by ``day``, ``rep_dirty_days`` of those days (never rebuilt now), and
  ``rep_notices`` seen more than ``NOTICE_SPAN`` before the first kept day (a notice is matched
  to attempts up to that far away, so a younger one can still matter).

Pruned days are *closed*: the first kept day is recorded (``rep_horizon``) before anything is
deleted, it only moves forward, and from then on an ingest skips attempts of a closed day
(counted as ``past_retention``) and the rollup never rebuilds one. Without that, yesterday's
rotated log read again after a prune would rebuild a closed day from the handful of attempts
it holds and rewrite its history. A prune killed part-way leaves the horizon set and some old
days still stored: a rerun deletes them, and nothing in between counts them twice.

Planning (the first kept day) is pure; :func:`count`, :func:`prune` and :func:`horizon` are
the only functions that touch the database. Writes take the reputation writers' lock
(:func:`~inboxops.reputation.store.locked`), so a prune and an ingest never interleave inside
a transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine

from inboxops.reputation.store import NOTICE_SPAN, as_date, locked, stored_horizon
from inboxops.retention import TableCounts
from inboxops.storage.db import database_errors, retrying, write_transaction
from inboxops.storage.raw import Raw

log = logging.getLogger(__name__)

SQLITE_PAUSE = 0.15  # seconds between days: hands SQLite's write lock to a waiting writer

# Every table a prune deletes from, in the order counts are shown.
TABLES = ("rep_attempts", "rep_recipients", "rep_expiries", "rep_notices", "rep_dirty_days")

# (table, its day column) of the tables emptied one closed day at a time
_BY_DAY = (("rep_attempts", "day"), ("rep_recipients", "final_day"))


def first_kept_day(cutoff: datetime) -> date:
    """The UTC day of ``cutoff`` (``now - age``): it and every later day stay."""
    return cutoff.astimezone(UTC).date()


@dataclass
class PruneResult(TableCounts):
    """Rows per table that went (or, in a dry run, would go)."""

    days: int
    first_day: date  # the first day kept: everything before it is closed
    dry_run: bool
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    batches: int = 0

    def as_json(self) -> dict[str, Any]:
        return self.counts_json(first_day_kept=self.first_day.isoformat())


def horizon(engine: Engine) -> date | None:
    """The first day the store still holds in full, or None when nothing was ever pruned."""
    with database_errors(engine, "read"), engine.connect() as conn:
        return stored_horizon(Raw(conn))


def _notice_cutoff(raw: Raw, first: date) -> Any:
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    try:
        return raw.dt(start - NOTICE_SPAN)
    except OverflowError:
        return raw.dt(start)


def count(engine: Engine, days: int, first: date) -> PruneResult:
    """What :func:`prune` would delete with ``first`` as the first kept day (the dry run)."""
    result = PruneResult(days, first, dry_run=True)
    with database_errors(engine, "read"), engine.connect() as conn:
        raw = Raw(conn)
        first = max(first, stored_horizon(raw) or first)  # a closed day stays closed
        result.first_day = first
        day = raw.day(first)
        for table, column in (*_BY_DAY, ("rep_expiries", "day"), ("rep_dirty_days", "day")):
            result.counts[table] = int(
                raw.one(f"SELECT COUNT(*) FROM {table} WHERE {column} < ?", (day,)) or 0
            )
        result.counts["rep_notices"] = int(
            raw.one(
                "SELECT COUNT(*) FROM rep_notices WHERE seen_at < ?",
                (_notice_cutoff(raw, first),),
            )
            or 0
        )
    return result


def prune(
    engine: Engine,
    days: int,
    first: date,
    *,
    pause: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[int, int], None] | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> PruneResult:
    """Close every day before ``first`` and delete what they hold (see the module docstring).

    ``progress(done, total)`` counts closed days emptied.
    """
    if pause is None:
        pause = SQLITE_PAUSE if engine.dialect.name == "sqlite" else 0.0
    result = PruneResult(days, first, dry_run=False)

    def close() -> tuple[date, list[date]]:
        """The horizon moves forward (never back) before anything goes: from this commit on,
        an ingest skips the closed days, and the rollup never rebuilds them."""
        with write_transaction(engine) as conn:
            raw = locked(conn)
            horizon = max(first, stored_horizon(raw) or first)
            day = raw.day(horizon)
            raw.run(
                "INSERT INTO rep_horizon (id, first_day, set_at) VALUES (1, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET first_day = excluded.first_day, "
                "set_at = excluded.set_at",
                (day, raw.dt(now())),
            )
            for table in ("rep_dirty_days", "rep_expiries"):
                result.counts[table] = raw.rowcount(f"DELETE FROM {table} WHERE day < ?", (day,))
            result.counts["rep_notices"] = raw.rowcount(
                "DELETE FROM rep_notices WHERE seen_at < ?", (_notice_cutoff(raw, horizon),)
            )
            closed: set[date] = set()
            for table, column in _BY_DAY:
                closed.update(
                    as_date(d)
                    for (d,) in raw.all(
                        f"SELECT DISTINCT {column} FROM {table} WHERE {column} < ?", (day,)
                    )
                )
            return horizon, sorted(closed)

    def empty(closed: date) -> dict[str, int]:
        with write_transaction(engine) as conn:
            raw = locked(conn)
            return {
                table: raw.rowcount(f"DELETE FROM {table} WHERE {column} = ?", (raw.day(closed),))
                for table, column in _BY_DAY
            }

    with database_errors(engine, "write"):
        horizon, closed = retrying(close, what="reputation prune")
        result.first_day = horizon
        result.batches = 1
        for i, day in enumerate(closed, 1):
            for table, n in retrying(lambda d=day: empty(d), what="reputation prune").items():
                result.counts[table] += n
            result.batches += 1
            log.info("event=rep_prune_day day=%s", day.isoformat())
            if progress is not None:
                progress(i, len(closed))
            if pause and i < len(closed):
                sleep(pause)
    return result


__all__ = ["TABLES", "PruneResult", "count", "first_kept_day", "horizon", "prune"]
