"""One large plain log on every core: byte ranges parsed and collected in worker processes.

Parsing is the bulk of an ingest and is independent line by line, so a plain file bigger than
``MIN_BYTES`` is split at line boundaries into one range per core; each worker parses and
collects its range (:mod:`~inboxops.reputation.collect`) and sends batches of rows back through
a bounded queue (back-pressure: a slow database makes the workers wait, memory stays flat).
The parent writes the batches, in whatever order they come: the store is order-independent by
design (notices and expiries apply to attempts stored before or after them). For a SQLite store
(``images``) a worker sends its rows as a database image (:mod:`.image`), which the parent
moves into its database without touching each value in Python. A dry run has
nothing to write, so each range is aggregated where it is read (the first in the parent itself,
which has no database to look after) into one :class:`~inboxops.reputation.aggregate.Partial`;
the parent merges them in range order, and the in-memory aggregator resolves a notice that lies
in another range at the end.

Not split: stdin and gzip (no seeking), small files, and runs with ``--year`` (the year of a
range's first line would be ambiguous). A worker never touches the database; one that finds
its parent gone exits instead of waiting on a full queue forever.
"""

from __future__ import annotations

import gc
import itertools
import multiprocessing as mp
import operator
import os
import queue
from collections.abc import Iterator
from dataclasses import astuple, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inboxops.operators.classify import Classifier
from inboxops.reputation import image
from inboxops.reputation.aggregate import Aggregator, Partial
from inboxops.reputation.collect import (
    Batch,
    Collector,
    Excluded,
    Exclusions,
    Row,
)
from inboxops.reputation.parse import PostfixLogParser
from inboxops.reputation.staging import StagedBatch, Stager

MIN_BYTES = 32 * 1024 * 1024  # below this one process is as fast (start-up and transfer cost)
CHUNK = 1024 * 1024  # bytes read and decoded at a time (a worker holds two chunks)
SEND_EVERY = 20_000  # rows per message
SEQ_BITS = 40  # a range's rows are numbered from its index << SEQ_BITS: log order across ranges
QUEUE_DEPTH = 6  # messages in flight


def workers_for(path: Path, *, year: int | None, min_bytes: int = MIN_BYTES) -> int:
    """How many processes should read ``path``: 1 unless it is a big plain file."""
    if year is not None or (os.cpu_count() or 1) < 2:
        return 1
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            if fh.read(2) == b"\x1f\x8b":
                return 1
    except OSError:
        return 1
    if size < min_bytes:
        return 1
    return min(os.cpu_count() or 1, 4)


def ranges(path: Path, parts: int) -> list[tuple[int, int]]:
    """``parts`` byte ranges of ``path`` that start at line starts and cover it exactly."""
    size = path.stat().st_size
    cuts = [0]
    with path.open("rb") as fh:
        for i in range(1, parts):
            fh.seek(max(size * i // parts, cuts[-1]))
            fh.readline()  # finish the line the cut fell into
            cuts.append(min(fh.tell(), size))
    cuts.append(size)
    return [(a, b) for a, b in itertools.pairwise(cuts) if b > a]


def _blocks(path: Path, start: int, end: int) -> Iterator[str]:
    """A byte range as text, a megabyte of whole lines at a time."""
    with path.open("rb") as fh:
        fh.seek(start)
        position = start
        while position < end:
            block = fh.read(min(CHUNK, end - position))
            if not block:
                return
            if not block.endswith(b"\n") and position + len(block) < end:
                block += fh.readline()  # never split a line
            position += len(block)
            yield block.decode("utf-8", "replace")


_ROW_FIELDS = tuple(f.name for f in fields(Row))


_AS_TUPLE = operator.attrgetter(*_ROW_FIELDS)


def _pack(rows: list[Row]) -> list[tuple[Any, ...]]:
    """Rows as plain tuples for the queue (``dataclasses.astuple`` deep-copies: slow), without
    the raw line, which only a store needs (for its digest)."""
    for r in rows:
        r.line = ""
    return [_AS_TUPLE(r) for r in rows]


def _put(q: Any, item: Any, parent: int) -> None:
    while True:
        try:
            q.put(item, timeout=1.0)
            return
        except queue.Full:
            if os.getppid() != parent:  # the parent died (kill -9): give up, do not hang
                os._exit(1)


@dataclass
class Counted:
    """One range aggregated by its reader (``aggregate`` runs): its figures, and how many rows
    and expiries went into them."""

    index: int
    partial: Partial
    rows: int
    expiries: int


def _count(
    parser: PostfixLogParser,
    collector: Collector,
    records: Iterator[Any],
    index: int,
    undecided: str,
) -> Counted:
    """One range aggregated: what a worker sends, and what the parent counts itself."""
    agg = Aggregator(undecided=undecided)
    rows = expiries = 0
    for batch in collector.run(records, SEND_EVERY):
        agg.add(batch)
        rows += len(batch.rows)
        expiries += len(batch.expiries)
    batch = collector.take()  # the rest
    agg.add(batch)
    rows += len(batch.rows)
    expiries += len(batch.expiries)
    return Counted(index, agg.partial(), rows, expiries)


def _batches(collector: Collector, records: Iterator[Any]) -> Iterator[Batch]:
    """The collector's batches of a range, then the rest it holds at the range's end."""
    yield from collector.run(records, SEND_EVERY)
    yield collector.take()


def _work(
    path: str,
    index: int,
    start: int,
    end: int,
    tz: Any,
    ref: datetime,
    exclusions: Exclusions,
    classifier: Classifier,
    pg: bool,
    images: bool,
    aggregate: str | None,
    q: Any,
    parent: int,
) -> None:
    gc.disable()  # as in the ingest (ingest._no_cycle_collection), whenever this was forked
    try:
        parser = PostfixLogParser(tz=tz)
        collector = Collector(exclusions, classifier)
        records = parser.records_of_text(_blocks(Path(path), start, end), ref=ref)
        if aggregate is None:  # the rows go to the store: staged here, off its process
            stager = Stager(pg=pg, seq=index << SEQ_BITS)  # each range numbered apart
            for batch in _batches(collector, records):
                rows = stager.stage(batch.rows)
                built = [image.build(rows)] if images and rows else []
                message = ("batch", [] if built else rows, batch.expiries, batch.notices, built)
                _put(q, message, parent)
        else:
            counted = _count(parser, collector, records, index, aggregate)
            unsure = _pack(counted.partial.unsure)
            counted.partial.unsure = []
            _put(q, ("partial", counted, unsure), parent)
        stats = parser.stats
        _put(
            q,
            ("done", astuple(stats)[:-1], list(stats.samples), astuple(collector.excluded)),
            parent,
        )
    except BaseException as exc:  # a defect of ours: report it, never hang the parent
        _put(q, ("error", f"{type(exc).__name__}: {exc}"), parent)


class Result:
    """What the workers found besides the rows: parser counters and exclusions, summed."""

    def __init__(self) -> None:
        self.counts = [0] * 7  # ParseStats order: lines, attempts, queue_events, inbound, ...
        self.samples: list[str] = []
        self.excluded = Excluded()

    def add(self, counts: tuple[int, ...], samples: list[str], excluded: tuple[int, ...]) -> None:
        self.counts = [a + b for a, b in zip(self.counts, counts, strict=True)]
        self.samples = (self.samples + samples)[:5]
        for name, value in zip(
            ("notices", "local", "internal_relays", "internal", "probes", "no_recipient"),
            excluded,
            strict=True,
        ):
            setattr(self.excluded, name, getattr(self.excluded, name) + value)


class Readers:
    """One file's reader processes, started at construction: :meth:`items` reads what they
    send. The ingest command starts them before it opens the database, so they parse while
    that process imports and checks its database layer. (With ``aggregate`` the first range is
    counted by the process that calls :meth:`items`.) ``images``: the rows go to a SQLite
    store, as database images where this Python can make them."""

    def __init__(
        self,
        path: Path,
        parts: int,
        *,
        tz: Any,
        exclusions: Exclusions,
        classifier: Classifier,
        pg: bool = False,
        images: bool = False,
        aggregate: str | None = None,
    ) -> None:
        self.path, self.pg, self.aggregate = path, pg, aggregate
        self.images = images and image.SUPPORTED  # the callers ask only for a SQLite store
        # a stamp without a year is read against the file's time, as a one-process read does
        ref = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        self._tz, self._ref, self._exclusions, self._classifier = tz, ref, exclusions, classifier
        ctx = mp.get_context("fork")  # the workers inherit the classifier; nothing is pickled in
        self._q = ctx.Queue(maxsize=QUEUE_DEPTH)
        me = os.getpid()
        self.ranges = ranges(path, parts)
        # An aggregating run counts its first range here, beside the workers: a process fewer,
        # and those figures never cross a pipe. A storing run leaves this process to the
        # database.
        self._procs = [
            ctx.Process(
                target=_work,
                args=(
                    str(path),
                    *(i, a, b),
                    *(tz, ref, exclusions, classifier, pg, self.images, aggregate, self._q, me),
                ),
                daemon=True,
            )
            for i, (a, b) in enumerate(self.ranges)
            if aggregate is None or i > 0
        ]
        self._closed = False
        for p in self._procs:
            p.start()

    def items(self) -> Iterator[StagedBatch | Counted | Result]:
        """Staged batches (for a PostgreSQL store when ``pg``) as the workers produce them,
        then one :class:`Result`. With ``aggregate`` (the operator of undecided rows) each
        worker aggregates its range instead: one :class:`Counted` per range, in range order."""
        result = Result()
        counted: list[Counted] = []
        done = 0
        q, aggregate = self._q, self.aggregate
        try:
            if aggregate is not None:
                parser = PostfixLogParser(tz=self._tz)
                collector = Collector(self._exclusions, self._classifier)
                text = _blocks(self.path, *self.ranges[0])
                records = parser.records_of_text(text, ref=self._ref)
                counted.append(_count(parser, collector, records, 0, aggregate))
                stats = parser.stats
                result.add(astuple(stats)[:-1], list(stats.samples), astuple(collector.excluded))
            while done < len(self._procs):
                message = q.get()
                kind = message[0]
                if kind == "batch":
                    _, rows, expiries, notices, images = message
                    yield StagedBatch(rows, expiries, notices, images)
                elif kind == "partial":
                    _, one, unsure = message
                    one.partial.unsure = [Row(*r) for r in unsure]
                    counted.append(one)
                elif kind == "done":
                    result.add(message[1], message[2], message[3])
                    done += 1
                else:
                    raise RuntimeError(f"a log reader failed: {message[1]}")
            yield from sorted(counted, key=lambda c: c.index)
            yield result
        finally:
            self.close()

    def close(self) -> None:
        """Stop the readers (if they are still at work) and release the queue. Once."""
        if self._closed:
            return
        self._closed = True
        for p in self._procs:
            if p.is_alive():
                p.terminate()
            p.join(timeout=5)
        self._q.close()
