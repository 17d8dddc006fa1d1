"""Postfix log files (plain, ``.gz``, stdin) into the reputation store, streaming.

The pipeline: :class:`~inboxops.reputation.parse.PostfixLogParser` (lines -> events),
:class:`~inboxops.reputation.collect.Collector` (events -> the attempts that count), and
:class:`~inboxops.reputation.store.ReputationStore` (batches of attempts -> the database, then
the daily rollup). Memory stays flat however long the log: attempts are written every
``batch`` rows, and only the queue ids of messages still in flight are remembered.

A bad line is counted (``malformed``) and never stops the run; an unreadable file is reported
and the other files go on; a database failure stops the run (exit 1) with what was committed
left consistent, and a rerun of the same files finishes the job without double counting.
"""

from __future__ import annotations

import gzip
import io
import logging
import sys
import zlib
from collections.abc import Callable
from dataclasses import asdict, astuple, dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from inboxops.config import ReputationSettings
from inboxops.operators.classify import Classifier
from inboxops.reputation import parallel
from inboxops.reputation.aggregate import Aggregator
from inboxops.reputation.collect import NO_OPERATOR, Batch, Collector, Excluded, Exclusions
from inboxops.reputation.model import Attempt
from inboxops.reputation.parse import PostfixLogParser
from inboxops.reputation.store import ReputationStore
from inboxops.untrusted import one_line

log = logging.getLogger(__name__)

BATCH = 50_000  # attempts per write transaction
STDIN = "-"


@dataclass
class IngestResult:
    """What one ``reputation ingest`` did; ``--json`` prints :meth:`as_json`."""

    files: int = 0
    lines: int = 0
    attempts: int = 0  # delivery attempt lines parsed (before exclusions)
    counted: int = 0  # external attempts kept
    new: int = 0  # ... stored for the first time
    known: int = 0  # ... already stored (an overlapping or repeated log)
    excluded: dict[str, int] = field(default_factory=dict)
    inbound: int = 0
    other: int = 0
    non_postfix: int = 0
    malformed: int = 0
    malformed_samples: list[str] = field(default_factory=list)
    expiries: int = 0
    days: list[str] = field(default_factory=list)  # days whose figures were rebuilt
    dns_lookups: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)  # files that could not be read

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def zone(name: str) -> tzinfo:
    """``[reputation] log_timezone``: UTC, ``local`` (this machine's zone), or a zone name."""
    if name == "UTC":
        return UTC
    if name == "local":
        local = datetime.now().astimezone().tzinfo
        return local if local is not None else UTC
    return ZoneInfo(name)


def open_log(source: str) -> tuple[IO[str], datetime | None]:
    """A text stream of the log (gzip by content, not by name) and its mtime for the year."""
    if source == STDIN:
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace"), None
    path = Path(source)
    mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    with path.open("rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    if gzipped:
        return gzip.open(path, "rt", encoding="utf-8", errors="replace"), mtime
    return path.open("r", encoding="utf-8", errors="replace"), mtime


class ReputationIngestor:
    """Reads logs into ``store``; one instance per run.

    Without a store (``--dry-run``) the figures are aggregated in memory instead
    (:attr:`aggregator`), nothing is written, and ``relay=none`` attempts stay ``unknown``.
    """

    def __init__(
        self,
        settings: ReputationSettings,
        store: ReputationStore | None,
        classifier: Classifier,
        *,
        year: int | None = None,
        batch: int = BATCH,
        parallel_min_bytes: int = parallel.MIN_BYTES,
    ) -> None:
        self.store = store
        self.parallel_min_bytes = parallel_min_bytes
        self.aggregator = Aggregator() if store is None else None
        self.batch = batch
        self.parser = PostfixLogParser(tz=zone(settings.log_timezone), year=year)
        self.collector = Collector(
            Exclusions(settings.internal_domains, settings.probe_prefixes), classifier
        )
        self.year = year
        self.settings = settings
        self.classifier = classifier
        self.result = IngestResult()
        self._notices_known = 0
        self._extra = parallel.Result()  # what parallel readers counted

    def ingest(
        self, sources: list[str], progress: Callable[[int, int], None] | None = None
    ) -> IngestResult:
        result = self.result
        for i, source in enumerate(sources, 1):
            self._one(source)
            if progress is not None:
                progress(i, len(sources))
        self._flush()
        if self.store is not None:
            result.days = [d.isoformat() for d in self.store.rebuild()]
            result.dns_lookups = self.store.domains.cache.looked_up
        stats, extra = self.parser.stats, self._extra
        counts = [a + b for a, b in zip(astuple(stats)[:-1], extra.counts, strict=True)]
        result.lines, result.attempts = counts[0], counts[1]
        result.inbound, result.other, result.non_postfix, result.malformed = counts[3:7]
        result.malformed_samples = (list(stats.samples) + extra.samples)[:5]
        excluded = Excluded()
        for counted in (self.collector.excluded, extra.excluded):
            for name in vars(excluded):
                setattr(excluded, name, getattr(excluded, name) + getattr(counted, name))
        if self.aggregator is not None:
            self.aggregator.figures()  # settles rows whose notice lay in another range
            self._notices_known += self.aggregator.notices_found
            result.new -= self.aggregator.notices_found
        result.excluded = {
            "notices": excluded.notices + self._notices_known,
            "local": excluded.local,
            "internal_relays": excluded.internal_relays,
            "internal": excluded.internal,
            "probes": excluded.probes,
            "no_recipient": excluded.no_recipient,
        }
        result.counted = result.new + result.known
        return result

    def _one(self, source: str) -> None:
        if source != STDIN:
            parts = parallel.workers_for(
                Path(source), year=self.year, min_bytes=self.parallel_min_bytes
            )
            if parts > 1:
                self._parallel(Path(source), parts)
                return
        try:
            stream, mtime = open_log(source)
        except OSError as exc:
            reason = f"cannot read: {exc.strerror or exc}"
            self.result.failed.append({"source": source, "reason": reason})
            return
        self.result.files += 1
        collector, batch = self.collector, self.batch
        attempt, queue_event = collector.attempt, collector.queue_event
        with stream:
            try:
                for event in self.parser.parse(stream, ref=mtime):  # lines keep their "\n"
                    if type(event) is Attempt:
                        attempt(event)
                        if len(collector.pending_rows) >= batch:
                            self._flush()
                    else:
                        queue_event(event)
            except (EOFError, OSError, zlib.error) as exc:
                reason = f"stopped reading: {one_line(str(exc), 120)}"
                self.result.failed.append({"source": source, "reason": reason})
                log.warning("event=log_truncated source=%s error=%s", source, str(exc)[:120])
        log.info("event=log_read source=%s", source)

    def _parallel(self, path: Path, parts: int) -> None:
        """A big plain file read by one process per core (see :mod:`.parallel`)."""
        self.result.files += 1
        mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        for item in parallel.read_parallel(
            path,
            parts,
            tz=self.parser.tz,
            ref=mtime,
            exclusions=self.collector.exclusions,
            classifier=self.classifier,
            digest=self.store is not None,
        ):
            if isinstance(item, parallel.Result):
                self._extra.add(tuple(item.counts), item.samples, astuple(item.excluded))
            else:
                self._write(item)
        log.info("event=log_read source=%s processes=%d", path, parts)

    def _flush(self) -> None:
        self._write(self.collector.take())

    def _write(self, batch: Batch) -> None:
        self.result.expiries += len(batch.expiries)
        if self.store is None:
            assert self.aggregator is not None
            for row in batch.rows:
                if row.operator == NO_OPERATOR:
                    row.operator = "unknown"
            self.aggregator.add(batch)
            self.result.new += len(batch.rows)
            return
        written = self.store.write(batch)
        self.result.new += written.new
        self.result.known += written.known
        self._notices_known += written.notices
