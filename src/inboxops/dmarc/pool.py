"""The files of a big import parsed on every core while the parent process writes.

Parsing (unpack, XML, record values) is most of an import of many small reports, and each file
is independent, so worker processes read the files and the parent only writes what they parsed
(:meth:`~inboxops.dmarc.store.Sink.accept`). Only the common case crosses the process boundary:
a file whose every payload is a small aggregate report that parsed without a complaint comes
back as its :class:`~inboxops.dmarc.parsed.Parsed` reports. For anything else (a refusal, a
TLS or failure report, a large report, a file that is not a report, any exception) the worker
answers ``None`` and the parent reads that file itself, through the one sequential path that
decides refusals, quarantine and logging. What the parallel run stores is therefore what a
sequential run stores, in the same order (tests/test_dmarc_pool.py compares the two).

Files go out in chunks (one round trip per chunk, not per file) with a bounded number in
flight, so memory stays flat however many files an import names. A worker that dies (killed,
out of memory) breaks the pool; the parent then reads the rest of the files itself.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from inboxops.config import Limits
from inboxops.dmarc.parse import AggregateParser
from inboxops.dmarc.parsed import Parsed, read_head
from inboxops.dmarc.streamed import Streaming
from inboxops.dmarc.unpack import Unpacker, sniff

MIN_FILES = 64  # small files: below this, starting processes costs more than it saves
STREAM_BYTES = 1024 * 1024  # a plain report this big has its own worker (see streamable)
CHUNK = 16  # files per round trip
AHEAD = 96  # chunks in flight at most: the workers' head start while the writer starts
AHEAD_BYTES = 32 * 1024 * 1024  # ... and at most this much input: what the answers hold

Answer = tuple[Path, list[Parsed] | Streaming | None]
"""A file and its small aggregate reports, the worker streaming it, or ``None``: the parent
reads that file itself."""
Answers = list[list[Parsed] | None]


def workers_for(files: int) -> int:
    """How many processes should parse an import of ``files`` files: 1 (none) unless this
    machine has cores to spare. Small files use them only when there are :data:`MIN_FILES`;
    a big file gets its own whatever the count (:mod:`.streamed`)."""
    cpus = os.cpu_count() or 1
    if files < 1 or cpus < 2:
        return 1
    return min(cpus, 4)


def streamable(path: Path, big: int = STREAM_BYTES, *, size: int | None = None) -> bool:
    """Is ``path`` (of ``size`` bytes, when the caller knows) big enough to be parsed by its
    own worker while the writer writes? Plain XML of ``big`` bytes, or gzip of a tenth of
    that (reports compress tenfold)."""
    try:
        size = path.stat().st_size if size is None else size
        if size < big // 10:
            return False
        with path.open("rb") as fh:
            kind = sniff(fh.read(64))
    except OSError:
        return False
    return (kind == "xml" and size >= big) or kind == "gzip"


def parse_file(path: Path, limits: Limits) -> list[Parsed] | None:
    """The small aggregate reports in ``path``, or ``None`` when the file needs the parent.

    Every exception means "let the sequential path decide": it reads the file again and
    refuses, quarantines or counts it exactly as it would have without workers.
    """
    try:
        if path.stat().st_size > limits.max_input_bytes:
            return None
        reports: list[Parsed] = []
        with path.open("rb") as fh:
            for payload in Unpacker(limits).payloads(fh, str(path)):
                if payload.kind != "xml" or payload.stream is None:
                    return None
                parser = AggregateParser.within(payload.stream, payload.name, limits)
                parsed, _head = read_head(parser, payload.name)
                if parsed is None:  # large: streamed by the parent in its own transaction
                    return None
                reports.append(parsed)
        return reports
    except Exception:  # any trouble: the parent's path reports it
        return None


def _parse_chunk(paths: Sequence[Path], limits: Limits) -> Answers:
    return [parse_file(p, limits) for p in paths]


def _worker_start() -> None:
    """Workers are silent and leave Ctrl-C to the parent, which stops them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.disable(logging.CRITICAL)


class Parsing:
    """Workers parsing ``files`` from the moment this is entered, answers in file order.

    Entered before the database is opened (``dmarc import`` does), the workers get a head
    start while the main process imports the storage layer. Small files go to a pool in chunks
    (when there are :data:`MIN_FILES` of them); a big one (:func:`streamable`) to a worker of
    its own whose records the writer reads as they come (:class:`.streamed.Streaming`), the
    next big file's worker started when this one's turn comes. With one worker nothing starts:
    every answer is ``None`` and the main process reads each file itself.
    """

    def __init__(
        self, files: Sequence[Path], limits: Limits, workers: int, *, big: int = STREAM_BYTES
    ) -> None:
        self.files = files
        self.limits = limits
        self.workers = workers
        self._streams: dict[Path, Streaming] = {}
        self._sizes: dict[Path, int] = {}  # each file's size, taken once
        if workers > 1:
            self._sizes = {p: _size(p) for p in files}
            self._streams = {
                p: Streaming(p, limits) for p in files if streamable(p, big, size=self._sizes[p])
            }
        self._small = [p for p in files if p not in self._streams]
        self._pool: ProcessPoolExecutor | None = None
        self._queued = iter([self._small[i : i + CHUNK] for i in range(0, len(self._small), CHUNK)])
        self._pending: deque[tuple[Sequence[Path], int, Future[Answers] | None]] = deque()
        self._broken = False
        self.ahead_bytes = AHEAD_BYTES
        self.in_flight = 0  # bytes of the files sent out and not yet taken back

    def __enter__(self) -> Parsing:
        if self._streams:
            next(iter(self._streams.values())).start()
        if self.workers > 1 and len(self._small) >= MIN_FILES:
            self._pool = ProcessPoolExecutor(
                self.workers, mp.get_context("fork"), initializer=_worker_start
            )
            self._fill()
        return self

    def __exit__(self, *exc: object) -> None:
        for streaming in self._streams.values():
            streaming.stop()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __iter__(self) -> Iterator[Answer]:
        small = self._small_answers()
        streams = list(self._streams.values())
        for path in self.files:
            streaming = self._streams.get(path)
            if streaming is None:
                yield next(small)
                continue
            position = streams.index(streaming)
            if position + 1 < len(streams):
                streams[position + 1].start()  # the next big file parses while this one is written
            yield path, streaming

    def _small_answers(self) -> Iterator[Answer]:
        if self._pool is None:
            for path in self._small:
                yield path, None
            return
        while self._pending:
            chunk, size, future = self._pending.popleft()
            self.in_flight -= size
            answers: Answers = [None] * len(chunk)
            if future is not None:  # a completed one still has its answers
                try:
                    answers = future.result()
                except BrokenProcessPool:
                    self._broken = True  # the parent reads what is left
            self._fill()
            yield from zip(chunk, answers, strict=True)

    def _fill(self) -> None:
        """Chunks out until :data:`AHEAD` are in flight or :attr:`ahead_bytes` of input
        (parsed reports take several times their file's size), one chunk at least."""
        while len(self._pending) < AHEAD and (
            not self._pending or self.in_flight < self.ahead_bytes
        ):
            if not self._submit():
                return

    def _submit(self) -> bool:
        """The next chunk into the window: to a worker, or to the parent once the pool is
        broken (a chunk taken when it breaks is not lost)."""
        chunk = next(self._queued, None)
        if chunk is None:
            return False
        size = sum(self._sizes.get(path, 0) for path in chunk)
        self.in_flight += size
        future = None
        if not self._broken and self._pool is not None:
            try:
                future = self._pool.submit(_parse_chunk, chunk, self.limits)
            except BrokenProcessPool:
                self._broken = True
        self._pending.append((chunk, size, future))
        return True


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def files_of(paths: Iterable[Path]) -> list[Path]:
    """Files as given, directories recursively (hidden files and folders skipped), sorted."""
    return sorted(_expand(paths))


def _expand(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith("."):
                        yield Path(root) / name
        else:
            yield path
