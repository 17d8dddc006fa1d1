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

import gc
import gzip
import io
import logging
import sys
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, astuple, dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from inboxops.config import ReputationSettings
from inboxops.operators.classify import Classifier
from inboxops.reputation import parallel
from inboxops.reputation.aggregate import Aggregator
from inboxops.reputation.collect import Batch, Collector, Excluded, Exclusions
from inboxops.reputation.parse import PostfixLogParser
from inboxops.reputation.staging import StagedBatch
from inboxops.untrusted import one_line

if TYPE_CHECKING:  # a dry run needs no database: SQLAlchemy stays unimported
    from inboxops.reputation.store import ReputationStore

log = logging.getLogger(__name__)

BATCH = 50_000  # attempts per write transaction
MAX_IMAGES = 8  # readers' database images in one transaction (SQLite attaches at most 10)
UNDECIDED = "unknown"  # a dry run's operator for relay=none attempts (no MX lookups)
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
    past_retention: int = 0  # ... of days `reputation prune` closed: skipped, not counted
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


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Python's cycle collector off while reading (and in the reader processes forked meanwhile).

    An ingest allocates millions of small objects and keeps hundreds of thousands alive (the
    in-memory figures, a batch of rows), none of them in reference cycles: each generation-2
    pass walks them all for nothing, a fifth of the run. Reference counting still frees
    everything as usual; the collector is back on afterwards, whatever happens.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def start_reading(
    source: str,
    settings: ReputationSettings,
    classifier: Classifier,
    *,
    year: int | None,
    pg: bool,
) -> parallel.Readers | None:
    """Start the readers of ``source`` now, if it is a log big enough for them: the ingest
    command calls this before it opens the database, so they parse meanwhile. The rows are
    staged for PostgreSQL when ``pg``; hand the readers to :meth:`ReputationIngestor.ingest`
    (or :meth:`~inboxops.reputation.parallel.Readers.close` them)."""
    if source == STDIN:
        return None
    path = Path(source)
    parts = parallel.workers_for(path, year=year, min_bytes=parallel.MIN_BYTES)
    if parts < 2:
        return None
    return parallel.Readers(
        path,
        parts,
        tz=zone(settings.log_timezone),
        exclusions=Exclusions(settings.internal_domains, settings.probe_prefixes),
        classifier=classifier,
        pg=pg,
        images=not pg,
    )


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
        batch: int | None = None,
        parallel_min_bytes: int = parallel.MIN_BYTES,
    ) -> None:
        self.store = store
        self.parallel_min_bytes = parallel_min_bytes
        self.aggregator = Aggregator(undecided=UNDECIDED) if store is None else None
        self.batch = batch if batch is not None else BATCH  # read at run time (tests set it)
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
        self._early: parallel.Readers | None = None

    def ingest(
        self,
        sources: list[str],
        progress: Callable[[int, int], None] | None = None,
        *,
        early: parallel.Readers | None = None,
    ) -> IngestResult:
        """Read ``sources`` in order; ``early`` holds the first source's readers when
        :func:`start_reading` started them already."""
        self._early = early
        result = self.result
        with _no_cycle_collection():
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
        early, self._early = self._early, None
        if early is not None and early.path == Path(source):
            log.info("event=log_readers_early source=%s", source)  # parsing since start-up
            self._parallel(Path(source), early)
            return
        if early is not None:
            early.close()
        if source != STDIN:
            parts = parallel.workers_for(
                Path(source), year=self.year, min_bytes=self.parallel_min_bytes
            )
            if parts > 1:
                self._parallel(Path(source), self._readers(Path(source), parts))
                return
        try:
            stream, mtime = open_log(source)
        except OSError as exc:
            reason = f"cannot read: {exc.strerror or exc}"
            self.result.failed.append({"source": source, "reason": reason})
            return
        self.result.files += 1
        with stream:
            try:
                records = self.parser.records(stream, ref=mtime)  # lines keep their "\n"
                for batch in self.collector.run(records, self.batch):
                    self._write(batch)
            except (EOFError, OSError, zlib.error) as exc:
                reason = f"stopped reading: {one_line(str(exc), 120)}"
                self.result.failed.append({"source": source, "reason": reason})
                log.warning("event=log_truncated source=%s error=%s", source, str(exc)[:120])
        log.info("event=log_read source=%s", source)

    def _readers(self, path: Path, parts: int) -> parallel.Readers:
        return parallel.Readers(
            path,
            parts,
            tz=self.parser.tz,
            exclusions=self.collector.exclusions,
            classifier=self.classifier,
            pg=self.store is not None and self.store.engine.dialect.name == "postgresql",
            images=self.store is not None and self.store.engine.dialect.name == "sqlite",
            aggregate=UNDECIDED if self.aggregator is not None else None,
        )

    def _parallel(self, path: Path, readers: parallel.Readers) -> None:
        """A big plain file read by one process per core (see :mod:`.parallel`). The workers'
        batches are joined up to ``batch`` rows a transaction: every transaction rewrites the
        index pages it touches, so fewer, larger ones write less."""
        self.result.files += 1
        pending = StagedBatch()
        for item in readers.items():
            if isinstance(item, parallel.Result):
                self._extra.add(tuple(item.counts), item.samples, astuple(item.excluded))
            elif isinstance(item, parallel.Counted):
                assert self.aggregator is not None
                self.aggregator.merge(item.partial)
                self.result.new += item.rows
                self.result.expiries += item.expiries
            else:
                if pending.size and (
                    pending.size + item.size > self.batch or len(pending.images) == MAX_IMAGES
                ):
                    self._write(pending)  # at most ``batch`` rows in memory, as when sequential
                    pending = StagedBatch()
                pending.join(item)
        if pending.size or pending.expiries or pending.notices:
            self._write(pending)
        log.info("event=log_read source=%s processes=%d", path, len(readers.ranges))

    def _flush(self) -> None:
        self._write(self.collector.take())

    def _write(self, batch: Batch | StagedBatch) -> None:
        self.result.expiries += len(batch.expiries)
        if self.store is None:
            assert self.aggregator is not None
            assert isinstance(batch, Batch)
            self.aggregator.add(batch)
            self.result.new += len(batch.rows)
            return
        if isinstance(batch, StagedBatch):  # staged by a reader process
            written = self.store.write_staged(batch)
        else:
            written = self.store.write(batch)
        self.result.new += written.new
        self.result.known += written.known
        self.result.past_retention += written.past_retention
        self._notices_known += written.notices
