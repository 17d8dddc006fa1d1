"""One large plain log on every core: byte ranges parsed and collected in worker processes.

Parsing is the bulk of an ingest and is independent line by line, so a plain file bigger than
``MIN_BYTES`` is split at line boundaries into one range per core; each worker parses and
collects its range (:mod:`~inboxops.reputation.collect`) and sends batches of rows back through
a bounded queue (back-pressure: a slow database makes the workers wait, memory stays flat).
The parent writes the batches, in whatever order they come: the store is order-independent by
design (notices and expiries apply to attempts stored before or after them), and the in-memory
aggregator resolves a notice that lies in another range at the end.

Not split: stdin and gzip (no seeking), small files, and runs with ``--year`` (the year of a
range's first line would be ambiguous). A worker never touches the database; one that finds
its parent gone exits instead of waiting on a full queue forever.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import operator
import os
import queue
from collections.abc import Iterator
from dataclasses import astuple, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from inboxops.operators.classify import Classifier
from inboxops.reputation.collect import Batch, Collector, Excluded, Exclusions, Row, digest64
from inboxops.reputation.model import Attempt
from inboxops.reputation.parse import PostfixLogParser

MIN_BYTES = 32 * 1024 * 1024  # below this one process is as fast (start-up and transfer cost)
CHUNK = 8 * 1024 * 1024  # bytes read and decoded at a time
SEND_EVERY = 20_000  # rows per message
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


def _lines(path: Path, start: int, end: int) -> Iterator[str]:
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
            yield from block.decode("utf-8", "replace").splitlines(keepends=True)


_ROW_FIELDS = tuple(f.name for f in fields(Row))


_AS_TUPLE = operator.attrgetter(*_ROW_FIELDS)


def _pack(rows: list[Row], digest: bool) -> list[tuple[Any, ...]]:
    """Rows as plain tuples for the queue (``dataclasses.astuple`` deep-copies: slow). The raw
    line only matters for its digest: computed here when the run stores, then dropped."""
    for r in rows:
        if digest:
            r.fp = digest64(r.line)
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


def _work(
    path: str,
    start: int,
    end: int,
    tz: Any,
    ref: datetime,
    exclusions: Exclusions,
    classifier: Classifier,
    digest: bool,
    q: Any,
    parent: int,
) -> None:
    try:
        parser = PostfixLogParser(tz=tz)
        collector = Collector(exclusions, classifier)
        attempt, queue_event, rows = (
            collector.attempt,
            collector.queue_event,
            collector.pending_rows,
        )
        for event in parser.parse(_lines(Path(path), start, end), ref=ref):
            if type(event) is Attempt:
                attempt(event)
                if len(rows) >= SEND_EVERY:
                    batch = collector.take()
                    rows = collector.pending_rows
                    _put(
                        q,
                        ("batch", _pack(batch.rows, digest), batch.expiries, batch.notices),
                        parent,
                    )
            else:
                queue_event(event)
        batch = collector.take()
        _put(q, ("batch", _pack(batch.rows, digest), batch.expiries, batch.notices), parent)
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


def read_parallel(
    path: Path,
    parts: int,
    *,
    tz: Any,
    ref: datetime,
    exclusions: Exclusions,
    classifier: Classifier,
    digest: bool,
) -> Iterator[Batch | Result]:
    """Batches as the workers produce them, then one :class:`Result`."""
    ctx = mp.get_context("fork")  # the workers inherit the classifier; nothing is pickled in
    q = ctx.Queue(maxsize=QUEUE_DEPTH)
    procs = [
        ctx.Process(
            target=_work,
            args=(str(path), a, b, tz, ref, exclusions, classifier, digest, q, os.getpid()),
            daemon=True,
        )
        for a, b in ranges(path, parts)
    ]
    for p in procs:
        p.start()
    result = Result()
    done = 0
    try:
        while done < len(procs):
            message = q.get()
            kind = message[0]
            if kind == "batch":
                _, rows, expiries, notices = message
                yield Batch([Row(*r) for r in rows], expiries, notices)
            elif kind == "done":
                result.add(message[1], message[2], message[3])
                done += 1
            else:
                raise RuntimeError(f"a log reader failed: {message[1]}")
        yield result
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join(timeout=5)
        q.close()
