"""Writes parsed reports: one transaction per report, idempotent by natural key.

* Aggregate reports are keyed ``(org_name, report_id)``. A known key is detected as soon as the
  metadata is parsed, so a re-import skips the records without reading them. Two processes racing
  on the same report meet the unique constraint; the loser rolls back and counts it as known.
* Records go in batches through the driver directly (SQLite ``executemany``, PostgreSQL ``COPY``):
  the ORM's per-row overhead would cost most of the ingestion budget.
* Nothing is committed until the last record of a report is stored; a crash, a bomb detected
  half-way or a truncated archive leaves no trace but the quarantine entry.

:class:`DryRunSink` has the same surface and writes nothing, so ``--dry-run`` needs no driver.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from sqlalchemy import Connection, Engine, Table, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from inboxops.dmarc.model import FailureReport, Record, ReportMeta, TlsReport
from inboxops.dmarc.parse import AggregateParser
from inboxops.errors import StorageError
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

log = logging.getLogger(__name__)

BATCH = 5000
MAX_QUARANTINE_RAW = 32 * 1024 * 1024  # keep raw bytes up to this size; larger: reason only

Outcome = Literal["new", "known"]

_RECORD_COLS = [c.name for c in dmarc_records.columns]
_AUTH_COLS = [c.name for c in dmarc_auth_results.columns]


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

    def aggregate(self, parser: AggregateParser, source: str) -> AggregateResult: ...

    def tls(self, report: TlsReport, source: str) -> Outcome: ...

    def failure(self, report: FailureReport, source: str) -> Outcome: ...

    def quarantine(self, source: str, reason: str, raw: bytes | None, size: int) -> None: ...


def _now() -> datetime:
    return datetime.now(UTC)


def _meta_row(meta: ReportMeta, source: str) -> dict[str, Any]:
    return {
        "org_name": meta.org_name,
        "report_id": meta.report_id,
        "email": meta.email,
        "extra_contact_info": meta.extra_contact_info,
        "begin_at": meta.begin,
        "end_at": meta.end,
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
        "errors": list(meta.errors),
        "record_count": 0,
        "message_count": 0,
        "dropped_records": 0,
        "source": source,
        "sha256": "",
        "stored_at": _now(),
    }


def _record_rows(
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


class _BulkWriter:
    """Batch inserts on the transaction's own DBAPI connection: COPY on PostgreSQL."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"
        self.raw: Any = conn.connection.dbapi_connection

    def write(self, table: Table, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if self.pg:
            with self.raw.cursor() as cur:
                cols = ", ".join(f'"{c}"' for c in columns)
                with cur.copy(f"COPY {table.name} ({cols}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
        else:
            marks = ", ".join("?" for _ in columns)
            cols = ", ".join(f'"{c}"' for c in columns)
            cur = self.raw.cursor()
            try:
                cur.executemany(f"INSERT INTO {table.name} ({cols}) VALUES ({marks})", rows)
            finally:
                cur.close()


class DatabaseSink:
    """Stores reports in the database behind ``engine``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- aggregate ----------------------------------------------------------------------------

    def aggregate(self, parser: AggregateParser, source: str) -> AggregateResult:
        meta = parser.read_meta()
        try:
            with self.engine.begin() as conn:
                if self._known(conn, meta):
                    return AggregateResult("known", meta)
                pk = conn.execute(
                    insert(dmarc_reports)
                    .values(_meta_row(meta, source))
                    .returning(dmarc_reports.c.id)
                ).scalar_one()
                result = self._write_records(conn, pk, parser, meta)
                conn.execute(
                    update(dmarc_reports)
                    .where(dmarc_reports.c.id == pk)
                    .values(
                        errors=list(meta.errors),
                        record_count=result.records,
                        message_count=result.messages,
                        dropped_records=parser.dropped,
                        sha256=parser.sha256,
                    )
                )
                return result
        except IntegrityError:
            log.info("event=report_race org=%s report_id=%s", meta.org_name, meta.report_id)
            return AggregateResult("known", meta)
        except (OperationalError, SQLAlchemyError) as exc:
            raise _storage_error(exc) from None

    @staticmethod
    def _known(conn: Connection, meta: ReportMeta) -> bool:
        row = conn.execute(
            select(dmarc_reports.c.id).where(
                dmarc_reports.c.org_name == meta.org_name,
                dmarc_reports.c.report_id == meta.report_id,
            )
        ).first()
        return row is not None

    @staticmethod
    def _write_records(
        conn: Connection, pk: int, parser: AggregateParser, meta: ReportMeta
    ) -> AggregateResult:
        writer = _BulkWriter(conn)
        result = AggregateResult("new", meta)
        batch: list[Record] = []
        seq = 0

        def flush() -> None:
            nonlocal seq, batch
            rec_rows, auth_rows = _record_rows(pk, seq, batch, writer.pg)
            writer.write(dmarc_records, _RECORD_COLS, rec_rows)
            writer.write(dmarc_auth_results, _AUTH_COLS, auth_rows)
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
        try:
            with self.engine.begin() as conn:
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
                        stored_at=_now(),
                    )
                    .returning(tls_reports.c.id)
                ).scalar_one()
                self._tls_children(conn, pk, report)
                return "new"
        except IntegrityError:
            return "known"
        except SQLAlchemyError as exc:
            raise _storage_error(exc) from None

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
        try:
            with self.engine.begin() as conn:
                exists = conn.execute(
                    select(failure_reports.c.id).where(
                        failure_reports.c.fingerprint == report.fingerprint
                    )
                ).first()
                if exists:
                    return "known"
                conn.execute(
                    insert(failure_reports).values(source=source, stored_at=_now(), **values)
                )
                return "new"
        except IntegrityError:
            return "known"
        except SQLAlchemyError as exc:
            raise _storage_error(exc) from None

    # -- quarantine ---------------------------------------------------------------------------

    def quarantine(self, source: str, reason: str, raw: bytes | None, size: int) -> None:
        digest = hashlib.sha256(raw if raw is not None else f"{source}|{size}".encode()).hexdigest()
        keep = raw if raw is not None and len(raw) <= MAX_QUARANTINE_RAW else None
        try:
            with self.engine.begin() as conn:
                exists = conn.execute(
                    select(quarantine.c.id).where(quarantine.c.sha256 == digest)
                ).first()
                if exists:
                    return
                conn.execute(
                    insert(quarantine).values(
                        sha256=digest,
                        source=source,
                        reason=reason,
                        size=size,
                        raw=keep,
                        stored_at=_now(),
                    )
                )
        except IntegrityError:
            return
        except SQLAlchemyError as exc:
            raise _storage_error(exc) from None


def _storage_error(exc: SQLAlchemyError) -> StorageError:
    orig = getattr(exc, "orig", None)
    detail = str(orig or exc).splitlines()[0][:200]
    return StorageError(f"database write failed: {detail}; check the database and rerun")


class DryRunSink:
    """Parses and counts, writes nothing: ``--dry-run`` and the benchmarks' parse-only mode."""

    def __init__(self) -> None:
        self.reports: list[DryRunReport] = []

    def aggregate(self, parser: AggregateParser, source: str) -> AggregateResult:
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
