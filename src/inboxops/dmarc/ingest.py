"""From bytes or paths to stored reports: unpack, parse, hand to a sink, count.

The one place where a bad input stops being an exception and becomes a counted, quarantined
failure, so one broken report never aborts a batch. Database trouble is the exception to the
exception: :class:`~inboxops.errors.StorageError` propagates, because carrying on would mark
inputs as done (an IMAP message as \\Seen) that were never stored.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from inboxops.config import Limits
from inboxops.dmarc import pool
from inboxops.dmarc.model import FailureReport, TlsReport
from inboxops.dmarc.parse import AggregateParser, ReportStream
from inboxops.dmarc.parsed import AggregateResult, Parsed
from inboxops.dmarc.store import Sink
from inboxops.dmarc.streamed import Streaming
from inboxops.dmarc.unpack import NotAReport, Payload, Unpacker, file_named_like_report
from inboxops.errors import ParseError, StorageError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Failed:
    source: str
    reason: str


@dataclass(frozen=True)
class Conflict:
    """A second, different report under a stored report's key: the first copy was kept."""

    org_name: str
    report_id: str
    stored_source: str | None
    source: str


@dataclass
class IngestStats:
    """Counts of one run; ``--json`` prints :meth:`as_json` (a public contract)."""

    reports_new: int = 0
    reports_known: int = 0
    reports_replaced: int = 0  # a stored copy recovered from malformed XML, replaced by a clean one
    reports_conflicting: int = 0  # same key, different content: kept the first, see `conflicts`
    records: int = 0
    records_dropped: int = 0
    records_dropped_by_reason: dict[str, int] = field(default_factory=dict)
    messages: int = 0
    tls_reports_new: int = 0
    tls_reports_known: int = 0
    failure_reports_new: int = 0
    failure_reports_known: int = 0
    not_reports: int = 0
    quarantined: int = 0
    failed: list[Failed] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)

    def add(self, other: IngestStats) -> None:
        for name, value in vars(other).items():
            mine = getattr(self, name)
            if isinstance(mine, list):
                mine.extend(value)
            elif isinstance(mine, dict):
                for k, n in value.items():
                    mine[k] = mine.get(k, 0) + n
            else:
                setattr(self, name, mine + value)

    @property
    def stored_anything(self) -> bool:
        """Something of this input is now in the database (so an IMAP message may be flagged)."""
        return bool(
            self.reports_new
            + self.reports_known
            + self.reports_replaced
            + self.reports_conflicting
            + self.tls_reports_new
            + self.tls_reports_known
            + self.failure_reports_new
            + self.failure_reports_known
            + self.quarantined
        )

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def count(self, result: AggregateResult) -> None:
        """Account for one aggregate report's committed outcome."""
        if result.outcome in ("new", "replaced"):
            if result.outcome == "new":
                self.reports_new += 1
            else:
                self.reports_replaced += 1
            self.records += result.records
            self.records_dropped += result.dropped
            for reason, n in result.drop_reasons.items():
                self.records_dropped_by_reason[reason] = (
                    self.records_dropped_by_reason.get(reason, 0) + n
                )
            self.messages += result.messages
        elif result.outcome == "known":
            self.reports_known += 1
        else:
            self.reports_conflicting += 1


class Ingestor:
    """Feeds inputs through :class:`Unpacker` and the parsers into a :class:`Sink`."""

    def __init__(self, sink: Sink, limits: Limits | None = None) -> None:
        self.sink = sink
        self.limits = limits or Limits()
        self.unpacker = Unpacker(self.limits)

    # -- entry points -------------------------------------------------------------------------

    def ingest_bytes(self, data: bytes, source: str, *, commit: bool = True) -> IngestStats:
        """One mail's (or blob's) bytes; every report in it is committed before returning.

        Without ``commit``, inside the sink's :meth:`~inboxops.dmarc.store.Sink.session` (a
        batch of mails), its small reports wait for the session's end with the others, and
        the returned stats are complete only once the session has ended.

        Content alone decides here: ordinary mail in a mailbox is "not a report".
        """
        stats = IngestStats()
        if len(data) > self.limits.max_input_bytes:
            self._refuse(stats, source, self._too_big(len(data)), data, len(data))
            return stats
        self._run(stats, io.BytesIO(data), source, lambda: data, len(data), named_like=False)
        if commit:
            self.sink.flush()
        return stats

    def refuse_unread(self, source: str, size: int) -> IngestStats:
        """An input known only by its size (an IMAP message's RFC822.SIZE) that is over the
        input cap: refused and quarantined without its bytes, never downloaded."""
        stats = IngestStats()
        self._refuse(stats, source, self._too_big(size), None, size)  # stored at once
        return stats

    def ingest_file(
        self, path: Path, stats: IngestStats | None = None, streaming: Streaming | None = None
    ) -> IngestStats:
        """One file. Its name counts too: ``report.xml`` that holds no report is a refusal.
        With ``streaming``, a worker parses its (first) aggregate report meanwhile."""
        stats = stats if stats is not None else IngestStats()
        source = str(path)
        try:
            size = path.stat().st_size
            if size > self.limits.max_input_bytes:
                self._refuse(stats, source, self._too_big(size), None, size)
                return stats
            with path.open("rb") as fh:
                named = file_named_like_report(path.name)
                self._run(
                    stats, fh, source, path.read_bytes, size, named_like=named, streaming=streaming
                )
        except OSError as exc:
            stats.failed.append(Failed(source, f"cannot read file: {exc.strerror or exc}"))
        return stats

    def ingest_paths(
        self,
        paths: Iterable[Path],
        progress: Callable[[int, int], None] | None = None,
        *,
        workers: int | None = None,
    ) -> IngestStats:
        """Files and directories; outcomes are final once this returns (groups committed).

        Many files are parsed by ``workers`` processes (default: one per core when there are
        enough files, :func:`inboxops.dmarc.pool.workers_for`) while this one writes; the
        outcome is the same as reading them one by one here.
        """
        files = pool.files_of(paths)
        if workers is None:
            workers = pool.workers_for(len(files))
        with pool.Parsing(files, self.limits, workers) as parsing:
            return self.ingest_parsed(parsing, progress)

    def ingest_parsed(
        self, parsing: pool.Parsing, progress: Callable[[int, int], None] | None = None
    ) -> IngestStats:
        """The files of ``parsing``, in order: what its workers parsed is written, the
        files they left (``None``) are read here."""
        total = IngestStats()
        count = len(parsing.files)
        with self.sink.session():
            for i, (path, reports) in enumerate(parsing, 1):
                if reports is None or isinstance(reports, Streaming):
                    self.ingest_file(path, total, reports)
                else:
                    self._accept(total, path, reports)
                if progress is not None:
                    progress(i, count)
        return total

    def _accept(self, stats: IngestStats, path: Path, reports: list[Parsed]) -> None:
        """A file's small reports, parsed by a worker: written as :meth:`_aggregate` would."""
        source = str(path)

        def refuse(reason: str) -> None:
            try:
                raw = path.read_bytes()
            except OSError:
                raw = None
            self._refuse(stats, source, reason, raw, len(raw) if raw is not None else 0)

        for parsed in reports:
            self.sink.accept(parsed, self._done(stats, parsed.source), refuse)

    # -- the pipeline -------------------------------------------------------------------------

    def _run(
        self,
        stats: IngestStats,
        stream: IO[bytes],
        source: str,
        raw: Callable[[], bytes],
        size: int,
        *,
        named_like: bool,
        streaming: Streaming | None = None,
    ) -> None:
        def refuse(reason: str) -> None:
            self._refuse(stats, source, reason, raw(), size)

        try:
            for payload in self.unpacker.payloads(stream, source):
                self._payload(stats, payload, refuse, streaming)
                if payload.kind == "xml":
                    streaming = None  # the worker parses the first aggregate report only
        except NotAReport as exc:
            if named_like:
                detail = str(exc).rpartition(": ")[2] or "no report inside"
                self._refuse(
                    stats,
                    source,
                    f"named like a report but holds none ({detail})",
                    raw(),
                    size,
                )
                return
            log.info("event=not_a_report source=%s", source)
            stats.not_reports += 1
        except ParseError as exc:
            self._refuse(stats, source, exc.reason if exc.source else str(exc), raw(), size, exc)
        except StorageError:
            raise  # never mark an input done that was not stored
        except (RecursionError, MemoryError, UnicodeError, LookupError, ValueError) as exc:
            # A defect of ours or a library's on odd input must not abort the batch: the input
            # is quarantined like any other refusal, with the traceback in the log for a report.
            log.error("event=parser_defect source=%s error=%s", source, repr(exc), exc_info=True)
            reason = f"unexpected {type(exc).__name__} while parsing; please report this input"
            self._refuse(stats, source, reason, raw(), size)

    def _payload(
        self,
        stats: IngestStats,
        payload: Payload,
        refuse: Callable[[str], None],
        streaming: Streaming | None = None,
    ) -> None:
        if payload.kind == "xml" and payload.stream is not None:
            parser: ReportStream
            if streaming is not None:
                parser = streaming.parser(payload.stream, payload.name)
            else:
                parser = AggregateParser.within(payload.stream, payload.name, self.limits)
            self._aggregate(stats, parser, payload.name, refuse)
        elif payload.kind == "json" and payload.stream is not None:
            from inboxops.dmarc.tlsrpt import parse_tls_report

            data = payload.stream.read(self.limits.max_decompressed_bytes + 1)
            self._tls(stats, parse_tls_report(data, source=payload.name), payload.name)
        elif payload.kind == "failure" and payload.message is not None:
            from inboxops.dmarc.failure import parse_failure_report

            report = parse_failure_report(payload.message, source=payload.name)
            self._failure(stats, report, payload.name)

    def _aggregate(
        self,
        stats: IngestStats,
        parser: ReportStream,
        name: str,
        refuse: Callable[[str], None],
    ) -> None:
        self.sink.aggregate(parser, name, self._done(stats, name), refuse)

    def _done(self, stats: IngestStats, name: str) -> Callable[[AggregateResult], None]:
        """What happens once an aggregate report from ``name`` is committed."""

        def done(result: AggregateResult) -> None:
            stats.count(result)
            if result.outcome == "conflicting":
                meta = result.meta
                stats.conflicts.append(
                    Conflict(meta.org_name, meta.report_id, result.stored_source, name)
                )
            log.info(
                "event=aggregate outcome=%s org=%s report_id=%s records=%d source=%s",
                result.outcome,
                result.meta.org_name,
                result.meta.report_id,
                result.records,
                name,
            )

        return done

    def _tls(self, stats: IngestStats, report: TlsReport, name: str) -> None:
        if self.sink.tls(report, name) == "new":
            stats.tls_reports_new += 1
        else:
            stats.tls_reports_known += 1

    def _failure(self, stats: IngestStats, report: FailureReport, name: str) -> None:
        if self.sink.failure(report, name) == "new":
            stats.failure_reports_new += 1
        else:
            stats.failure_reports_known += 1

    def _refuse(
        self,
        stats: IngestStats,
        source: str,
        reason: str,
        raw: bytes | None,
        size: int,
        exc: ParseError | None = None,
    ) -> None:
        where = exc.source if exc is not None and exc.source and exc.source != source else ""
        full = f"{reason} (in {where})" if where else reason
        log.warning("event=refused source=%s reason=%s", source, full)
        stats.failed.append(Failed(source, full))
        self.sink.quarantine(source, full, raw, size)
        stats.quarantined += 1

    def _too_big(self, size: int) -> str:
        cap = self.limits.max_input_bytes
        shown = f"{cap // (1024 * 1024)} MiB" if cap >= 1024 * 1024 else f"{cap}-byte"
        return (
            f"input is {size} bytes, over the {shown} cap "
            "(raise [dmarc.limits].max_input_bytes if it is genuine)"
        )
