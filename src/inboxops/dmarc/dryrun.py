"""``--dry-run``: parse everything, write nothing, and say what a real run would do.

A dry run that called every report "new" would lie about a mailbox that was already fetched,
or about six files that are one report. So the dry sink remembers what this run has seen and,
when a database exists, reads it (never creating one) to tell new from known, replaced and
conflicting, with the same decision the real store makes
(:func:`~inboxops.dmarc.parsed.decide_conflict`).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, select

from inboxops.dmarc.model import FailureReport, TlsReport
from inboxops.dmarc.parse import ReportStream
from inboxops.dmarc.parsed import (
    Done,
    Outcome,
    Parsed,
    Refuse,
    decide_conflict,
    parse_small,
    parsed_digest,
    parsed_from,
    report_key,
    stored_digest,
)
from inboxops.dmarc.records import as_record
from inboxops.dmarc.rows import FIND_SQL
from inboxops.storage.db import database_errors
from inboxops.storage.models import failure_reports, tls_reports
from inboxops.storage.raw import Raw


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
    outcome: Outcome = "new"
    errors: list[str] = field(default_factory=list)


class DryRunSink:
    """Parses and counts, writes nothing; ``engine`` (may be None) is only read."""

    def __init__(self, engine: Engine | None = None) -> None:
        self.engine = engine
        self.reports: list[DryRunReport] = []
        self._seen: dict[str, tuple[str, bool]] = {}  # report_key -> (sha256, recovered)
        self._seen_other: set[str] = set()

    def aggregate(self, parser: ReportStream, source: str, done: Done, refuse: Refuse) -> None:
        parsed, rest = parse_small(parser, source)
        if parsed is None:  # large: count by streaming, nothing kept
            meta = parser.read_meta()
            parsed = parsed_from(parser, meta, source, records=list(rest))
        self._count(parsed, done)

    def accept(self, parsed: Parsed, done: Done, refuse: Refuse) -> None:
        if parsed.values is not None:  # as parse_small gives them: records as objects
            parsed.records, parsed.values = [as_record(v) for v in parsed.values], None
        self._count(parsed, done)

    def _count(self, parsed: Parsed, done: Done) -> None:
        outcome = self._outcome(parsed)
        result = parsed.result(outcome)
        self.reports.append(
            DryRunReport(
                parsed.meta.org_name,
                parsed.meta.report_id,
                parsed.meta.domain,
                parsed.meta.begin,
                parsed.meta.end,
                len(parsed.records),
                sum(r.count for r in parsed.records),
                sum(r.count for r in parsed.records if r.dkim_aligned or r.spf_aligned),
                outcome,
                list(parsed.meta.errors),
            )
        )
        done(result)

    def _outcome(self, parsed: Parsed) -> Outcome:
        key = parsed.key
        if key in self._seen:
            sha, recovered = self._seen[key]
            return decide_conflict(sha, recovered, lambda: False, parsed)
        self._seen[key] = (parsed.sha256, parsed.recovered)
        if self.engine is None:
            return "new"
        with database_errors(self.engine, "read"), self.engine.connect() as conn:
            raw = Raw(conn)
            row = raw.row(FIND_SQL, (key,))
            if row is None:
                return "new"
            pk = int(row[0])
            return decide_conflict(
                str(row[1] or ""),
                bool(row[2]),
                lambda: stored_digest(raw, pk) == parsed_digest(parsed, raw.pg),
                parsed,
            )

    def tls(self, report: TlsReport, source: str) -> Outcome:
        key = "tls:" + report_key(report.org_name, report.report_id)
        query = select(tls_reports.c.id).where(tls_reports.c.report_key == key[4:])
        return self._known_or_new(key, query)

    def failure(self, report: FailureReport, source: str) -> Outcome:
        key = "ruf:" + report.fingerprint
        query = select(failure_reports.c.id).where(failure_reports.c.fingerprint == key[4:])
        return self._known_or_new(key, query)

    def _known_or_new(self, key: str, query: object) -> Outcome:
        if key in self._seen_other:
            return "known"
        self._seen_other.add(key)
        if self.engine is None:
            return "new"
        with database_errors(self.engine, "read"), self.engine.connect() as conn:
            return "known" if conn.execute(query).first() is not None else "new"  # type: ignore[call-overload]

    def quarantine(self, source: str, reason: str, raw: bytes | None, size: int) -> None:
        return None

    def session(self) -> AbstractContextManager[None]:
        return nullcontext()

    def flush(self) -> None:
        return None
