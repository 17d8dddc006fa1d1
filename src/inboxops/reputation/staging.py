"""Collector rows as the store's staged tuples. Pure: the reader processes stage their own rows.

A staged row holds the columns of ``rep_attempts`` first (:data:`ATTEMPT_WIDTH` of them), then
what the write needs besides (the queue, the log order), then two values that are never stored:
the attempt's time as a number and whether its sender was seen (:data:`TS`,
:data:`SENDER_KNOWN`), for the notice checks that run before the write. Staging digests the log
line and the recipient into keys, writes the time in the database's form and cleans the text:
the bulk of the Python work per attempt, done where the row was parsed when a big log is read
by several processes (:mod:`.parallel`), so the process that owns the database only writes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from inboxops.reputation.collect import Row, digest64, queue_digest
from inboxops.storage.text import clean_row

STAGE_COLS = [
    "fp",
    "rkey",
    "ts",
    "day",
    "syslog_name",
    "domain",
    "operator",
    "segment",
    "relay_host",
    "dsn",
    "code",
    "status",
    "reason",
    "reply",
    "qkey",
    "scope",
    "queue_id",
    "seq",
]
STAGE_TEXT = (4, 5, 6, 7, 8, 9, 11, 12, 13, 15, 16)
ATTEMPT_WIDTH = 15  # a staged row's first columns are the attempt's
TS, SENDER_KNOWN = len(STAGE_COLS), len(STAGE_COLS) + 1  # after the staged columns: not stored

Staged = tuple[Any, ...]


@dataclass
class StagedImage:
    """Staged rows as an SQLite database image (:mod:`.image`), with what the store decides
    from before it writes them."""

    data: bytes
    rows: int
    # (fp, seq, scope, queue id, time) of the rows whose message's sender was not seen: the
    # store drops those of notices
    unknown: list[tuple[int, int, str, str, float]] = field(default_factory=list)
    undecided: list[str] = field(default_factory=list)  # domains whose MX decides the operator


@dataclass
class StagedBatch:
    """A :class:`~inboxops.reputation.collect.Batch` whose rows are staged: as tuples, or in
    database images a reader built for a SQLite store."""

    rows: list[Staged] = field(default_factory=list)
    expiries: list[tuple[str, str, float]] = field(default_factory=list)  # scope, qid, ts
    notices: list[tuple[str, str, float]] = field(default_factory=list)  # scope, qid, ts
    images: list[StagedImage] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Rows staged, in tuples and images."""
        return len(self.rows) + sum(i.rows for i in self.images)

    def join(self, other: StagedBatch) -> None:
        self.rows += other.rows
        self.images += other.images
        self.expiries += other.expiries
        self.notices += other.notices


class Stager:
    """Stages rows for a PostgreSQL (``pg``) or SQLite store, numbering them in log order
    from ``seq`` (a reader process starts where no other reader's numbers reach)."""

    def __init__(self, *, pg: bool, seq: int = 0) -> None:
        self.pg = pg
        self.seq = seq
        self._minutes: dict[int, tuple[str, str]] = {}

    def stage(self, rows: Iterable[Row]) -> list[Staged]:
        out: list[Staged] = []
        stamp = self._stamp_pg if self.pg else self._stamp_text
        seq = self.seq
        for r in rows:
            seq += 1
            when, day = stamp(r.ts)
            row = (
                digest64(r.line),
                digest64(f"{r.scope} {r.queue_id} {r.recipient}"),
                when,
                day,
                r.syslog_name,
                r.domain,
                r.operator,
                r.segment,
                r.relay_host,
                r.dsn,
                r.code,
                r.status,
                r.reason,
                r.reply,
                queue_digest(r.scope, r.queue_id),
                r.scope,
                r.queue_id,
                seq,
                r.ts,
                r.sender_known,
            )
            # one C call for the usual row, all of whose text is printable (None reads "None")
            if not (
                f"{r.syslog_name}{r.domain}{r.operator}{r.segment}{r.relay_host}{r.dsn}"
                f"{r.status}{r.reason}{r.reply}{r.scope}{r.queue_id}"
            ).isprintable():
                row = clean_row(row, STAGE_TEXT)
            out.append(row)
        self.seq = seq
        return out

    def stamp(self, ts: float) -> tuple[Any, Any]:
        """The database's form of a UTC instant (a POSIX time) and of its day."""
        return self._stamp_pg(ts) if self.pg else self._stamp_text(ts)

    def _stamp_text(self, ts: float) -> tuple[str, str]:
        """SQLite's text form of a UTC instant and its day, memoised per minute (logs are
        dense in time; strftime per attempt cost a tenth of the ingest)."""
        minute = int(ts // 60)
        cached = self._minutes.get(minute)
        if cached is None:
            prefix = _utc(minute * 60.0).strftime("%Y-%m-%d %H:%M:")
            cached = (prefix, prefix[:-7])  # and the day: without " %H:%M:"
            if len(self._minutes) > 100_000:
                self._minutes.clear()
            self._minutes[minute] = cached
        second = ts - minute * 60
        whole = _SECONDS.get(second)
        if whole is not None:  # syslog stamps: whole seconds
            return cached[0] + whole, cached[1]
        return f"{cached[0]}{second:09.6f}", cached[1]

    def _stamp_pg(self, ts: float) -> tuple[datetime, date]:
        when = _utc(ts)
        return when, when.date()


_SECONDS: dict[float, str] = {float(n): f"{n:09.6f}" for n in range(61)}


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


__all__ = [
    "ATTEMPT_WIDTH",
    "SENDER_KNOWN",
    "STAGE_COLS",
    "STAGE_TEXT",
    "TS",
    "Staged",
    "StagedBatch",
    "StagedImage",
    "Stager",
]
