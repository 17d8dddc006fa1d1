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
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from inboxops.config import ReputationSettings
from inboxops.operators.classify import Classifier
from inboxops.reputation.collect import Collector, Excluded, Exclusions
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


def _lines(stream: IO[str], source: str, failed: list[dict[str, str]]) -> Iterator[str]:
    """Lines without their newline; a truncated gzip ends the file with a note, not a crash."""
    try:
        for line in stream:
            yield line.rstrip("\n")
    except (EOFError, OSError, zlib.error) as exc:
        failed.append({"source": source, "reason": f"stopped reading: {one_line(str(exc), 120)}"})
        log.warning("event=log_truncated source=%s error=%s", source, str(exc)[:120])


class ReputationIngestor:
    """Reads logs into ``store``; one instance per run."""

    def __init__(
        self,
        settings: ReputationSettings,
        store: ReputationStore,
        classifier: Classifier,
        *,
        year: int | None = None,
        batch: int = BATCH,
    ) -> None:
        self.store = store
        self.batch = batch
        self.parser = PostfixLogParser(tz=zone(settings.log_timezone), year=year)
        self.collector = Collector(
            Exclusions(settings.internal_domains, settings.probe_prefixes), classifier
        )
        self.year = year
        self.result = IngestResult()
        self._notices_known = 0

    def ingest(
        self, sources: list[str], progress: Callable[[int, int], None] | None = None
    ) -> IngestResult:
        result = self.result
        for i, source in enumerate(sources, 1):
            self._one(source)
            if progress is not None:
                progress(i, len(sources))
        self._flush()
        result.days = [d.isoformat() for d in self.store.rebuild()]
        stats = self.parser.stats
        result.lines, result.attempts = stats.lines, stats.attempts
        result.inbound, result.other = stats.inbound, stats.other
        result.non_postfix, result.malformed = stats.non_postfix, stats.malformed
        result.malformed_samples = list(stats.samples)
        excluded: Excluded = self.collector.excluded
        result.excluded = {
            "notices": excluded.notices + self._notices_known,
            "local": excluded.local,
            "internal_relays": excluded.internal_relays,
            "internal": excluded.internal,
            "probes": excluded.probes,
            "no_recipient": excluded.no_recipient,
        }
        result.counted = result.new + result.known
        result.dns_lookups = self.store.domains.cache.looked_up
        return result

    def _one(self, source: str) -> None:
        try:
            stream, mtime = open_log(source)
        except OSError as exc:
            reason = f"cannot read: {exc.strerror or exc}"
            self.result.failed.append({"source": source, "reason": reason})
            return
        self.result.files += 1
        with stream:
            feed = self.collector.feed
            for n, event in enumerate(
                self.parser.parse(_lines(stream, source, self.result.failed), ref=mtime), 1
            ):
                feed(event)
                if n % 4096 == 0 and self.collector.pending >= self.batch:
                    self._flush()
        log.info("event=log_read source=%s", source)

    def _flush(self) -> None:
        batch = self.collector.take()
        self.result.expiries += len(batch.expiries)
        written = self.store.write(batch)
        self.result.new += written.new
        self.result.known += written.known
        self._notices_known += written.notices
