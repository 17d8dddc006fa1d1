"""Writes parsed reports: one transaction per report, idempotent by natural key.

* Aggregate reports are keyed ``(org_name, report_id)``: the report row is inserted with
  ``ON CONFLICT DO NOTHING``, so one statement tells a new report from a known one, and two
  processes racing on the same report cannot both store it.
* Records go in batches through the driver directly (SQLite ``executemany``, PostgreSQL ``COPY``):
  the ORM's per-row overhead would cost most of the ingestion budget.
* Nothing is committed until the last record of a report is stored; a crash, a bomb detected
  half-way or a truncated archive leaves no trace but the quarantine entry.

:class:`DryRunSink` has the same surface and writes nothing, so ``--dry-run`` needs no driver.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain, islice
from typing import Any, Literal, Protocol, TypeVar

from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from inboxops.dmarc.model import FailureReport, Record, ReportMeta, TlsReport
from inboxops.dmarc.parse import ReportStream
from inboxops.dmarc.rows import (
    AUTH_COLS,
    FIND_SQL,
    FINISH_SQL,
    INSERT_SQL,
    RECORD_COLS,
    Raw,
    driver_errors,
    meta_values,
    now,
    record_rows,
)
from inboxops.errors import StorageError
from inboxops.storage.models import (
    dmarc_auth_results,
    dmarc_records,
    failure_reports,
    quarantine,
    tls_failures,
    tls_policies,
    tls_reports,
)

log = logging.getLogger(__name__)

BATCH = 5000
MAX_QUARANTINE_RAW = 32 * 1024 * 1024  # keep raw bytes up to this size; larger: reason only

Outcome = Literal["new", "known"]
T = TypeVar("T")


@dataclass
class AggregateResult:
    outcome: Outcome
    meta: ReportMeta
    records: int = 0
    messages: int = 0
    passed: int = 0
    dropped: int = 0


@dataclass
class DryRunReport:
    """What ``--dry-run`` prints for one aggregate report."""

    org_name: str
    report_id: str
    domain: str | None
    begin: datetime | None
    end: datetime | None
    records: int
    messages: int
    passed: int
    errors: list[str] = field(default_factory=list)


class Sink(Protocol):
    """Where parsed reports go: the database, or nowhere (dry run)."""

    def aggregate(self, parser: ReportStream, source: str) -> AggregateResult: ...

    def tls(self, report: TlsReport, source: str) -> Outcome: ...

    def failure(self, report: FailureReport, source: str) -> Outcome: ...

    def quarantine(self, source: str, reason: str, raw: bytes | None, size: int) -> None: ...

    def session(self) -> AbstractContextManager[None]: ...


class _Resumed:
    """A report stream whose first records were already read (to see if it is small)."""

    def __init__(self, inner: ReportStream, head: list[Record], rest: Iterator[Record]) -> None:
        self._inner = inner
        self._head = head
        self._rest = rest

    @property
    def dropped(self) -> int:
        return self._inner.dropped

    @property
    def sha256(self) -> str:
        return self._inner.sha256

    def read_meta(self) -> ReportMeta:
        return self._inner.read_meta()

    def records(self) -> Iterator[Record]:
        return chain(self._head, self._rest)


class DatabaseSink:
    """Stores reports in the database behind ``engine``.

    Each report is atomic. Outside :meth:`session` each one is its own transaction, committed
    before the call returns (what IMAP needs: flag only what is committed). Inside a session,
    used for file imports, commits are grouped every ``group_commit`` reports (on SQLite a
    commit costs more than parsing a small report): a report small enough to be parsed whole
    before the first write needs no protection, a larger one, streamed, gets a SAVEPOINT so a
    bomb or truncation found half-way rolls back only that report. On any error the session
    rolls back the open group, which a rerun stores again; nothing is marked done.
    """

    def __init__(self, engine: Engine, *, group_commit: int = 500) -> None:
        self.engine = engine
        self.group_commit = group_commit
        self._conn: Connection | None = None
        self._in_group = 0
        pg = engine.dialect.name == "postgresql"
        integrity, errors = driver_errors(pg)
        self._integrity: tuple[type[Exception], ...] = (IntegrityError, *integrity)
        self._errors: tuple[type[Exception], ...] = (SQLAlchemyError, *errors)

    @contextmanager
    def session(self) -> Iterator[None]:
        """Group the commits of many reports; an error rolls back only the open group."""
        if self._conn is not None:
            yield
            return
        try:
            conn = self.engine.connect()
        except SQLAlchemyError as exc:
            raise _storage_error(exc) from None
        self._conn = conn
        try:
            self._begin(conn)
            yield
            conn.commit()
        except BaseException:
            with suppress(*self._errors):
                conn.rollback()
            raise
        finally:
            self._conn = None
            self._in_group = 0
            conn.close()

    def _begin(self, conn: Connection) -> None:
        conn.begin()
        if conn.dialect.name == "sqlite":
            # pysqlite opens transactions lazily; without an explicit BEGIN the first RELEASE
            # would end (commit) the whole transaction.
            Raw(conn).run("BEGIN", ())

    @contextmanager
    def _tx(self, *, savepoint: bool = True) -> Iterator[Connection]:
        """A transaction for one report: its own, or (in a session) a savepoint or nothing."""
        if self._conn is None:
            with self.engine.begin() as conn:
                yield conn
            return
        conn = self._conn
        if savepoint:
            raw = Raw(conn)
            raw.run("SAVEPOINT inboxops_report", ())
            try:
                yield conn
            except BaseException:
                raw.run("ROLLBACK TO SAVEPOINT inboxops_report", ())
                raw.run("RELEASE SAVEPOINT inboxops_report", ())
                raise
            raw.run("RELEASE SAVEPOINT inboxops_report", ())
        else:
            yield conn
        self._in_group += 1
        if self._in_group >= self.group_commit:
            conn.commit()
            self._begin(conn)
            self._in_group = 0

    def _guard(
        self,
        action: Callable[[Connection], T],
        on_conflict: T,
        present: Callable[[Connection], bool],
        *,
        savepoint: bool = True,
    ) -> T:
        """Run ``action`` in a report transaction, mapping driver errors to ours.

        A constraint violation means "another process stored it first" only if the row is
        there now; anything else (a NOT NULL, a trigger, a check) is a storage failure, and
        treating it as "known" would flag an IMAP message whose report was never stored.
        """
        try:
            with self._tx(savepoint=savepoint) as conn:
                return action(conn)
        except self._integrity as exc:
            if self._conn is not None and not savepoint:
                # Nothing was rolled back: a presence check would see our own partial rows.
                raise _storage_error(exc) from None
            try:
                with self._tx() as conn:
                    stored = present(conn)
            except self._errors:
                stored = False
            if stored:
                return on_conflict
            raise _storage_error(exc) from None
        except self._errors as exc:
            raise _storage_error(exc) from None

    # -- aggregate ----------------------------------------------------------------------------

    def aggregate(self, parser: ReportStream, source: str) -> AggregateResult:
        meta = parser.read_meta()
        whole = False
        if self._conn is not None:
            # In a session, parse a small report completely before writing anything: a parse
            # failure then never meets a half-written report, and no savepoint is needed.
            records = parser.records()
            head = list(islice(records, BATCH + 1))
            whole = len(head) <= BATCH
            parser = _Resumed(parser, head, records)

        def store(conn: Connection) -> AggregateResult:
            raw = Raw(conn)
            inserted = raw.one(INSERT_SQL, meta_values(raw, meta, source))
            if inserted is None:  # the unique key exists: stored before, by us or a peer
                return AggregateResult("known", meta)
            pk = int(inserted)
            result = self._write_records(raw, pk, parser, meta)
            raw.run(
                FINISH_SQL,
                (
                    raw.json(list(meta.errors)),
                    result.records,
                    result.messages,
                    parser.dropped,
                    parser.sha256,
                    pk,
                ),
            )
            return result

        def present(conn: Connection) -> bool:
            return Raw(conn).one(FIND_SQL, (meta.org_name, meta.report_id)) is not None

        result = self._guard(store, AggregateResult("known", meta), present, savepoint=not whole)
        if result.outcome == "known":
            log.info("event=report_known org=%s report_id=%s", meta.org_name, meta.report_id)
        return result

    @staticmethod
    def _write_records(
        writer: Raw, pk: int, parser: ReportStream, meta: ReportMeta
    ) -> AggregateResult:
        result = AggregateResult("new", meta)
        batch: list[Record] = []
        seq = 0

        def flush() -> None:
            nonlocal seq, batch
            rec_rows, auth_rows = record_rows(pk, seq, batch, writer.pg)
            writer.write(dmarc_records, RECORD_COLS, rec_rows)
            writer.write(dmarc_auth_results, AUTH_COLS, auth_rows)
            seq += len(batch)
            batch = []

        for record in parser.records():
            batch.append(record)
            result.messages += record.count
            if record.dkim_aligned or record.spf_aligned:
                result.passed += record.count
            if len(batch) >= BATCH:
                flush()
        flush()
        result.records = seq
        result.dropped = parser.dropped
        return result

    # -- TLS and failure reports --------------------------------------------------------------

    def tls(self, report: TlsReport, source: str) -> Outcome:
        def store(conn: Connection) -> Outcome:
            exists = conn.execute(
                select(tls_reports.c.id).where(
                    tls_reports.c.org_name == report.org_name,
                    tls_reports.c.report_id == report.report_id,
                )
            ).first()
            if exists:
                return "known"
            pk = conn.execute(
                insert(tls_reports)
                .values(
                    org_name=report.org_name,
                    report_id=report.report_id,
                    begin_at=report.begin,
                    end_at=report.end,
                    contact_info=report.contact_info,
                    source=source,
                    stored_at=now(),
                )
                .returning(tls_reports.c.id)
            ).scalar_one()
            self._tls_children(conn, pk, report)
            return "new"

        def present(conn: Connection) -> bool:
            return _exists(
                conn,
                select(tls_reports.c.id).where(
                    tls_reports.c.org_name == report.org_name,
                    tls_reports.c.report_id == report.report_id,
                ),
            )

        return self._guard(store, "known", present)

    @staticmethod
    def _tls_children(conn: Connection, pk: int, report: TlsReport) -> None:
        policies: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        for i, p in enumerate(report.policies):
            policies.append(
                {
                    "report_pk": pk,
                    "seq": i,
                    "policy_type": p.policy_type,
                    "policy_domain": p.policy_domain,
                    "policy_strings": list(p.policy_strings),
                    "mx_hosts": list(p.mx_hosts),
                    "successful_sessions": p.successful_sessions,
                    "failed_sessions": p.failed_sessions,
                }
            )
            for j, f in enumerate(p.failures):
                failures.append(
                    {
                        "report_pk": pk,
                        "policy_seq": i,
                        "seq": j,
                        "result_type": f.result_type,
                        "failed_session_count": f.failed_session_count,
                        "sending_mta_ip": f.sending_mta_ip,
                        "receiving_ip": f.receiving_ip,
                        "receiving_mx_hostname": f.receiving_mx_hostname,
                        "receiving_mx_helo": f.receiving_mx_helo,
                        "failure_reason_code": f.failure_reason_code,
                        "additional_information": f.additional_information,
                    }
                )
        if policies:
            conn.execute(insert(tls_policies), policies)
        if failures:
            conn.execute(insert(tls_failures), failures)

    def failure(self, report: FailureReport, source: str) -> Outcome:
        values = {k: getattr(report, k) for k in report.__dataclass_fields__}

        def store(conn: Connection) -> Outcome:
            exists = conn.execute(
                select(failure_reports.c.id).where(
                    failure_reports.c.fingerprint == report.fingerprint
                )
            ).first()
            if exists:
                return "known"
            conn.execute(insert(failure_reports).values(source=source, stored_at=now(), **values))
            return "new"

        def present(conn: Connection) -> bool:
            query = select(failure_reports.c.id).where(
                failure_reports.c.fingerprint == report.fingerprint
            )
            return _exists(conn, query)

        return self._guard(store, "known", present)

    # -- quarantine ---------------------------------------------------------------------------

    def quarantine(self, source: str, reason: str, raw: bytes | None, size: int) -> None:
        digest = hashlib.sha256(raw if raw is not None else f"{source}|{size}".encode()).hexdigest()
        keep = raw if raw is not None and len(raw) <= MAX_QUARANTINE_RAW else None

        def store(conn: Connection) -> None:
            exists = conn.execute(select(quarantine.c.id).where(quarantine.c.sha256 == digest))
            if exists.first() is not None:
                return
            conn.execute(
                insert(quarantine).values(
                    sha256=digest,
                    source=source,
                    reason=reason,
                    size=size,
                    raw=keep,
                    stored_at=now(),
                )
            )

        def present(conn: Connection) -> bool:
            return _exists(conn, select(quarantine.c.id).where(quarantine.c.sha256 == digest))

        self._guard(store, None, present)


def _exists(conn: Connection, query: Any) -> bool:
    return conn.execute(query).first() is not None


def _storage_error(exc: Exception) -> StorageError:
    orig = getattr(exc, "orig", None)
    detail = str(orig or exc).splitlines()[0][:200]
    return StorageError(f"database write failed: {detail}; check the database and rerun")


class DryRunSink:
    """Parses and counts, writes nothing: ``--dry-run`` and the benchmarks' parse-only mode."""

    def __init__(self) -> None:
        self.reports: list[DryRunReport] = []

    def aggregate(self, parser: ReportStream, source: str) -> AggregateResult:
        meta = parser.read_meta()
        result = AggregateResult("new", meta)
        for record in parser.records():
            result.records += 1
            result.messages += record.count
            if record.dkim_aligned or record.spf_aligned:
                result.passed += record.count
        result.dropped = parser.dropped
        self.reports.append(
            DryRunReport(
                meta.org_name,
                meta.report_id,
                meta.domain,
                meta.begin,
                meta.end,
                result.records,
                result.messages,
                result.passed,
                list(meta.errors),
            )
        )
        return result

    def tls(self, report: TlsReport, source: str) -> Outcome:
        return "new"

    def failure(self, report: FailureReport, source: str) -> Outcome:
        return "new"

    def quarantine(self, source: str, reason: str, raw: bytes | None, size: int) -> None:
        return None

    def session(self) -> AbstractContextManager[None]:
        return nullcontext()
