"""Writes parsed reports: atomic per report, idempotent by key, in short transactions.

* Aggregate reports are keyed by ``report_key`` (a digest of the full org_name and report_id):
  ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` tells a new report from a stored one in one
  statement, and two processes racing on a report cannot both store it. A stored report with
  different content is resolved in :func:`_resolve_conflict`: identical content is "known",
  a copy that libxml2 had to repair is replaced by a clean one, anything else is
  "conflicting" (kept as first stored, reported with both sources).
* Records go in batches through the driver (SQLite multi-row ``INSERT``s through
  ``executemany``, PostgreSQL ``COPY``), as the parser's plain values (no objects, cleaned
  at the source) wherever the parser produced them.
* Small reports (up to ``BATCH`` records, nearly all of them) are parsed whole *before* any
  transaction opens and, in a file import's :meth:`DatabaseSink.session`, written in groups:
  one short transaction per group, a SAVEPOINT per report, keys sorted so two writers on
  PostgreSQL always lock in the same order (no deadlock), the whole group retried on a
  deadlock or a lock timeout. The write lock is therefore free while the next group parses:
  an hourly ``dmarc fetch`` runs beside a backfill instead of failing with "database is
  locked". Outcomes are reported (``done``/``refuse`` callbacks) only after commit.
* A value the database refuses fails only its report (quarantined, the batch goes on); an
  operational failure (connection lost, disk full) stops the run before anything is marked
  done, and a rerun stores what the open group held.
* A larger report is streamed in its own transaction, in constant memory.

:mod:`inboxops.dmarc.dryrun` has the same surface, reads the database and writes nothing.
"""

from __future__ import annotations

import gc
import hashlib
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from itertools import chain, islice
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, Engine

from inboxops.dmarc.model import FailureReport, TlsReport
from inboxops.dmarc.parse import ReportStream
from inboxops.dmarc.parsed import (
    BATCH,
    AggregateResult,
    Done,
    Outcome,
    Parsed,
    Refuse,
    decide_conflict,
    parsed_digest,
    parsed_from,
    read_head,
    report_key,
    stored_digest,
)
from inboxops.dmarc.records import RecordValues
from inboxops.dmarc.rows import (
    DELETE_CHILDREN_SQL,
    FIND_SQL,
    FINISH_SQL,
    INSERT_SQL,
    REPLACE_SQL,
    REPORT_KEY,
    PendingRows,
    insert_reports,
    meta_values,
    now,
    window_at,
    write_records,
    write_values,
)
from inboxops.errors import ParseError, RefusedByDatabase, StorageError
from inboxops.storage.db import (
    insert_ignoring,
    is_data_error,
    retrying,
    write_transaction,
)
from inboxops.storage.models import (
    failure_reports,
    quarantine,
    tls_failures,
    tls_policies,
    tls_reports,
)
from inboxops.storage.raw import Raw
from inboxops.storage.text import clean_json

log = logging.getLogger(__name__)

GROUP_REPORTS = 200  # small reports per group transaction
GROUP_RECORDS = 20_000  # ... or this many records, whichever comes first
MAX_QUARANTINE_RAW = 32 * 1024 * 1024  # keep raw bytes up to this size; larger: reason only
T = TypeVar("T")


class Sink(Protocol):
    """Where parsed reports go: the database, or nowhere (dry run).

    ``aggregate`` reports its outcome through ``done`` (or ``refuse`` with a reason when the
    database refused the report), possibly later, once the report is committed.
    """

    def aggregate(self, parser: ReportStream, source: str, done: Done, refuse: Refuse) -> None: ...

    def accept(self, parsed: Parsed, done: Done, refuse: Refuse) -> None:
        """A small report another process already parsed (:mod:`inboxops.dmarc.pool`)."""
        ...

    def tls(self, report: TlsReport, source: str) -> Outcome: ...

    def failure(self, report: FailureReport, source: str) -> Outcome: ...

    def quarantine(self, source: str, reason: str, raw: bytes | None, size: int) -> None: ...

    def session(self) -> AbstractContextManager[None]: ...

    def flush(self) -> None: ...


class DatabaseSink:
    """Stores reports in the database behind ``engine`` (see the module docstring).

    Outside :meth:`session` every report is committed before the call returns (what IMAP
    needs: flag only what is committed); inside, small reports are grouped.
    """

    def __init__(self, engine: Engine, *, group_reports: int = GROUP_REPORTS) -> None:
        self.engine = engine
        self.group_reports = group_reports
        self._grouping = False
        self._buffer: list[Parsed] = []
        self._buffered_records = 0

    @contextmanager
    def session(self) -> Iterator[None]:
        """Group the small reports of a file import; what is buffered is written at the end."""
        if self._grouping:
            yield
            return
        self._grouping = True
        try:
            yield
            self.flush()
        finally:
            self._grouping = False
            self._buffer = []
            self._buffered_records = 0

    # -- aggregate ----------------------------------------------------------------------------

    def aggregate(self, parser: ReportStream, source: str, done: Done, refuse: Refuse) -> None:
        with _without_cyclic_gc():
            self._aggregate(parser, source, done, refuse)

    def _aggregate(self, parser: ReportStream, source: str, done: Done, refuse: Refuse) -> None:
        parsed, head = read_head(parser, source)
        if parsed is None:
            self.flush()
            done(self._stream(parser, head, source))
            return
        self._buffer_parsed(parsed, done, refuse)

    def accept(self, parsed: Parsed, done: Done, refuse: Refuse) -> None:
        with _without_cyclic_gc():
            self._buffer_parsed(parsed, done, refuse)

    def _buffer_parsed(self, parsed: Parsed, done: Done, refuse: Refuse) -> None:
        parsed.done, parsed.refuse = done, refuse
        self._buffer.append(parsed)
        self._buffered_records += parsed.size
        if (
            not self._grouping
            or len(self._buffer) >= self.group_reports
            or self._buffered_records >= GROUP_RECORDS
        ):
            self.flush()

    def flush(self) -> None:
        """Write the buffered reports in one transaction, then report their outcomes."""
        if not self._buffer:
            return
        group = sorted(self._buffer, key=lambda p: p.key)
        self._buffer = []
        self._buffered_records = 0
        with _without_cyclic_gc():
            outcomes = self._guarded(lambda: self._write_group(group), "report group")
        for parsed, outcome in outcomes:
            if isinstance(outcome, AggregateResult):
                _log_outcome(outcome, parsed.source)
                parsed.done(outcome)
            else:
                parsed.refuse(outcome)

    def _write_group(self, group: list[Parsed]) -> list[tuple[Parsed, AggregateResult | str]]:
        """The group in one transaction. A report the database refuses (a data error) is rare,
        so the group is first written without a savepoint per report, its records in one
        INSERT per table (:class:`~inboxops.dmarc.rows.PendingRows`); on a refusal that
        transaction is rolled back and the group written again report by report, each in a
        savepoint, so the refused report alone is left out."""
        try:
            return self._write_group_once(group, savepoints=False)
        except Exception as exc:
            if not is_data_error(exc):
                raise
            name = type(exc).__name__
            log.info("event=report_group_rewritten reports=%d error=%s", len(group), name)
        return self._write_group_once(group, savepoints=True)

    def _write_group_once(
        self, group: list[Parsed], *, savepoints: bool
    ) -> list[tuple[Parsed, AggregateResult | str]]:
        out: list[tuple[Parsed, AggregateResult | str]] = []
        with write_transaction(self.engine) as conn:
            raw = Raw(conn)
            if not savepoints:
                return self._write_group_rows(raw, group)
            for parsed in group:
                raw.run("SAVEPOINT inboxops_report", ())
                try:
                    result = self._store_parsed(raw, parsed)
                except Exception as exc:
                    if not is_data_error(exc):
                        raise
                    raw.run("ROLLBACK TO SAVEPOINT inboxops_report", ())
                    raw.run("RELEASE SAVEPOINT inboxops_report", ())
                    out.append((parsed, refused_reason(exc)))
                    continue
                raw.run("RELEASE SAVEPOINT inboxops_report", ())
                out.append((parsed, result))
        return out

    def _write_group_rows(
        self, raw: Raw, group: list[Parsed]
    ) -> list[tuple[Parsed, AggregateResult | str]]:
        """The group's report rows in a few statements, then its records in one INSERT per
        table; a copy whose key is taken (stored before, or earlier in this group) is compared
        with the stored one once the records before it are written."""
        results = [parsed.result("new") for parsed in group]
        values = [_report_row(raw, p, r) for p, r in zip(group, results, strict=True)]
        ids = insert_reports(raw, values)
        pending = PendingRows()
        out: list[tuple[Parsed, AggregateResult | str]] = []
        for parsed, result, row in zip(group, results, values, strict=True):
            pk = ids.pop(str(row[REPORT_KEY]), None)  # the first copy of a key is the stored one
            if pk is None:
                pending.write(raw)
                out.append((parsed, _resolve_conflict(raw, parsed, row)))
            else:
                pending.add(raw, pk, parsed.records, parsed.values)
                out.append((parsed, result))
        pending.write(raw)
        return out

    def _store_parsed(self, raw: Raw, parsed: Parsed) -> AggregateResult:
        """Parsed whole, the report's row is written final at once (counts, digest, repairs),
        then its records (a group written report by report, each in a savepoint)."""
        result = parsed.result("new")
        values = _report_row(raw, parsed, result)
        inserted = raw.one(INSERT_SQL, values)
        if inserted is None:
            return _resolve_conflict(raw, parsed, values)
        _write_records(raw, int(inserted), parsed)
        return result

    def _stream(self, parser: ReportStream, head: list[RecordValues], source: str) -> Any:
        """A large report in its own transaction, written as it is parsed."""
        meta = parser.read_meta()
        records = chain(head, parser.values())

        def attempt() -> AggregateResult:
            with write_transaction(self.engine) as conn:
                raw = Raw(conn)
                values = meta_values(raw, meta, source)
                inserted = raw.one(INSERT_SQL, values)
                if inserted is None:
                    drained = list(records)
                    parsed = parsed_from(parser, meta, source, values=drained)
                    return _resolve_conflict(
                        raw,
                        parsed,
                        meta_values(
                            raw, meta, source, sha256=parser.sha256, recovered=parser.recovered
                        ),
                    )
                pk = int(inserted)
                result = AggregateResult("new", meta)
                seq = 0
                while batch := list(islice(records, BATCH)):
                    result.messages += sum(v[1] for v in batch)
                    result.passed += sum(v[1] for v in batch if v[10] or v[11])
                    write_values(raw, pk, seq, batch)
                    seq += len(batch)
                result.records = seq
                result.dropped = parser.dropped
                result.drop_reasons = dict(parser.drop_reasons)
                raw.run(
                    FINISH_SQL,
                    (
                        raw.json(clean_json(list(meta.errors))),
                        result.records,
                        result.messages,
                        parser.dropped,
                        parser.sha256,
                        parser.recovered if raw.pg else int(parser.recovered),
                        pk,
                    ),
                )
                return result

        try:
            result = attempt()  # not retried: the stream cannot be replayed
        except (ParseError, StorageError):
            raise
        except Exception as exc:
            if is_data_error(exc):
                raise RefusedByDatabase(refused_reason(exc), source=source) from None
            raise _storage_error(exc) from None
        _log_outcome(result, source)
        return result

    # -- TLS and failure reports --------------------------------------------------------------

    def tls(self, report: TlsReport, source: str) -> Outcome:
        self.flush()

        def write() -> Outcome:
            with write_transaction(self.engine) as conn:
                pk = conn.execute(
                    insert_ignoring(conn, tls_reports, ["report_key"])
                    .values(
                        report_key=report_key(report.org_name, report.report_id),
                        org_name=report.org_name,
                        report_id=report.report_id,
                        begin_at=report.begin,
                        end_at=report.end,
                        window_at=window_at(report.begin, report.end),
                        contact_info=report.contact_info,
                        source=source,
                        stored_at=now(),
                    )
                    .returning(tls_reports.c.id)
                ).scalar()
                if pk is None:
                    return "known"
                _tls_children(conn, int(pk), report)
                return "new"

        return self._guarded(write, "TLS report", source=source)

    def failure(self, report: FailureReport, source: str) -> Outcome:
        self.flush()
        values = {k: getattr(report, k) for k in report.__dataclass_fields__}

        def write() -> Outcome:
            with write_transaction(self.engine) as conn:
                pk = conn.execute(
                    insert_ignoring(conn, failure_reports, ["fingerprint"])
                    .values(source=source, stored_at=now(), **values)
                    .returning(failure_reports.c.id)
                ).scalar()
                return "known" if pk is None else "new"

        return self._guarded(write, "failure report", source=source)

    # -- quarantine ---------------------------------------------------------------------------

    def quarantine(self, source: str, reason: str, raw: bytes | None, size: int) -> None:
        digest = hashlib.sha256(raw if raw is not None else f"{source}|{size}".encode()).hexdigest()
        keep = raw if raw is not None and len(raw) <= MAX_QUARANTINE_RAW else None

        def write() -> None:
            with write_transaction(self.engine) as conn:
                conn.execute(
                    insert_ignoring(conn, quarantine, ["sha256"]).values(
                        sha256=digest,
                        source=source,
                        reason=reason,
                        size=size,
                        raw=keep,
                        stored_at=now(),
                    )
                )

        self._guarded(write, "quarantine entry")

    # -- plumbing -----------------------------------------------------------------------------

    def _guarded(self, write: Callable[[], T], what: str, *, source: str | None = None) -> T:
        """Run one whole transaction: retried when transient, one line when it fails.

        With ``source``, a value the database refuses is that input's refusal
        (RefusedByDatabase, quarantined by the caller); otherwise every failure is a
        StorageError that stops the run.
        """
        try:
            return retrying(write, what=what)  # type: ignore[no-any-return]
        except (ParseError, StorageError):
            raise
        except Exception as exc:
            if source is not None and is_data_error(exc):
                raise RefusedByDatabase(refused_reason(exc), source=source) from None
            raise _storage_error(exc) from None


@contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    """Cyclic garbage collection paused while an aggregate report is parsed and written.

    Every record allocates a dozen small tuples that live until their batch is written, so the
    collector would run thousands of times over a large report, walking them all, to find no
    cycle: about a tenth of a 100,000-record import. Reference counting still frees everything
    as it goes; the collector's previous state is restored however the report ends.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _write_records(raw: Raw, pk: int, parsed: Parsed) -> None:
    """A parsed report's records: the parser's values when it has them (already clean)."""
    if parsed.values is not None:
        for start in range(0, len(parsed.values), BATCH):
            write_values(raw, pk, start, parsed.values[start : start + BATCH])
        return
    for start in range(0, len(parsed.records), BATCH):
        write_records(raw, pk, start, parsed.records[start : start + BATCH])


def _report_row(raw: Raw, parsed: Parsed, result: AggregateResult) -> list[Any]:
    """The row of a report parsed whole, final at once: its counts, digest and repairs."""
    return meta_values(
        raw,
        parsed.meta,
        parsed.source,
        sha256=parsed.sha256,
        recovered=parsed.recovered,
        counts=(result.records, result.messages, parsed.dropped),
    )


def _resolve_conflict(raw: Raw, parsed: Parsed, values: list[Any]) -> AggregateResult:
    row = raw.row(FIND_SQL, (parsed.key,))
    if row is None:  # deleted between the INSERT and now: nothing to compare with
        raise StorageError(f"report {parsed.meta.report_id!r} vanished while being stored; rerun")
    pk, sha, recovered, source = int(row[0]), str(row[1] or ""), bool(row[2]), row[3]
    outcome = decide_conflict(
        sha, recovered, lambda: stored_digest(raw, pk) == parsed_digest(parsed, raw.pg), parsed
    )
    if outcome == "replaced":
        for sql in DELETE_CHILDREN_SQL:
            raw.run(sql, (pk,))
        raw.run(REPLACE_SQL, [*values, pk])
        _write_records(raw, pk, parsed)  # the values carry the final counts
        log.warning(
            "event=report_replaced org=%s report_id=%s old_source=%s new_source=%s "
            "reason=stored_copy_was_recovered_from_malformed_xml",
            parsed.meta.org_name,
            parsed.meta.report_id,
            source,
            parsed.source,
        )
        return parsed.result("replaced")
    result = parsed.result(outcome)
    result.stored_source = str(source) if source is not None else None
    return result


def _log_outcome(result: AggregateResult, source: str) -> None:
    meta = result.meta
    if result.outcome == "conflicting":
        log.warning(
            "event=report_conflicting org=%s report_id=%s stored_source=%s source=%s "
            "detail=same_key_different_content_kept_first",
            meta.org_name,
            meta.report_id,
            result.stored_source,
            source,
        )
    elif result.outcome == "known":
        log.info("event=report_known org=%s report_id=%s", meta.org_name, meta.report_id)


def _tls_children(conn: Connection, pk: int, report: TlsReport) -> None:
    from sqlalchemy import insert

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


def refused_reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    detail = (str(orig).strip().splitlines() or [type(orig).__name__])[0][:200]
    return f"the database refused a value of this report ({detail})"


def _storage_error(exc: BaseException) -> StorageError:
    orig = getattr(exc, "orig", None)
    detail = (str(orig or exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return StorageError(f"database write failed: {detail}; check the database and rerun")
