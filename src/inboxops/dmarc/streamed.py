"""A large report parsed in a worker process and read here as any other parser's stream.

A 20,000-record report spends half its import parsing and half writing; one process does one
after the other. Here a worker process runs the real :class:`~inboxops.dmarc.parse.AggregateParser`
over the file and sends the metadata, the records' values in batches, and the parser's final
state (digest, repairs, dropped records) through a bounded queue, while the main process
writes. :class:`StreamedParser` is a :class:`~inboxops.dmarc.parse.ReportStream`: the store
reads it exactly as it reads a local parser, and an error the worker met (a hostile or broken
document) is raised here at the same point of the stream, so refusals and rollbacks are those
of the sequential path.

The worker is started early (before the database layer is imported, :mod:`.pool`), so it
parses while the main process starts. If it dies (killed, out of memory) the parser carries on
locally from the payload stream the main process holds: it parses again and skips the records
it already gave out, so nothing is lost or doubled.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import signal
import threading
from collections.abc import Iterator
from itertools import islice
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import IO, Any

from inboxops.config import Limits
from inboxops.dmarc.model import Record, ReportMeta
from inboxops.dmarc.parse import AggregateParser
from inboxops.dmarc.records import RecordValues, as_record
from inboxops.dmarc.unpack import Unpacker

SEND_EVERY = 1000  # records per message
QUEUE_DEPTH = 16  # messages in flight: the worker waits when the writer is behind

Final = tuple[str, bool, int, dict[str, int], list[str]]
"""sha256, recovered, dropped, drop_reasons, the metadata's errors (they grow while parsing)."""


def _work(path: Path, limits: Limits, conn: Any) -> None:
    """The worker: the file's first payload through the real parser, in messages.

    A thread sends while the parser goes on (at most :data:`QUEUE_DEPTH` messages wait), so
    parsing runs ahead of the writer instead of in step with it.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    out: queue.Queue[memoryview | None] = queue.Queue(QUEUE_DEPTH)

    def send() -> None:
        while (data := out.get()) is not None:
            conn.send_bytes(data)  # the GIL is free while it writes: the parser goes on

    def put(message: tuple[str, Any]) -> None:
        # pickled here, as Connection.send would, so the sending thread needs the GIL only to
        # write: two threads taking turns to pickle and parse cost a fifth of the parse
        out.put(ForkingPickler.dumps(message))

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        with path.open("rb") as fh:
            payload = next(Unpacker(limits).payloads(fh, str(path)), None)
            if payload is None or payload.kind != "xml" or payload.stream is None:
                put(("local", None))  # not one aggregate report: the main process reads it
                return
            parser = AggregateParser.within(payload.stream, payload.name, limits)
            meta = parser.read_meta()
            put(("meta", meta))
            values = parser.values()
            while batch := list(islice(values, SEND_EVERY)):
                put(("values", batch))
            final: Final = (
                parser.sha256,
                parser.recovered,
                parser.dropped,
                dict(parser.drop_reasons),
                list(meta.errors),
            )
            put(("end", final))
    except Exception as exc:  # raised in the main process where the stream met it
        try:
            put(("error", exc))
        except Exception:  # an error pickle cannot carry: the main process meets it itself
            put(("local", None))
    finally:
        out.put(None)
        sender.join()
        conn.close()


class Streaming:
    """One file being parsed by a worker process, from :meth:`start` on."""

    def __init__(self, path: Path, limits: Limits) -> None:
        self.path = path
        self.limits = limits
        self._reader: Any = None
        self._process: Any = None

    def start(self) -> None:
        if self._process is not None:
            return
        ctx = mp.get_context("fork")
        reader, writer = ctx.Pipe(duplex=False)
        self._process = ctx.Process(
            target=_work, args=(self.path, self.limits, writer), daemon=True
        )
        self._process.start()
        writer.close()  # the worker holds the only writing end: its death reads as EOF here
        self._reader = reader

    def stop(self) -> None:
        """The worker is not needed any more (read to the end, or the run stopped)."""
        if self._process is not None:
            if self._process.is_alive():
                self._process.kill()
            self._process.join()
            self._reader.close()
            self._process = None

    def take(self) -> tuple[str, Any] | None:
        """The worker's next message, or None once it is gone (killed, even mid-message)."""
        try:
            message: tuple[str, Any] = self._reader.recv()
        except (EOFError, OSError):
            return None
        return message

    def parser(self, stream: IO[bytes], source: str) -> StreamedParser:
        """The parser for this file's payload; ``stream`` is the payload the main process
        opened, read only if the worker is lost or the file is not what it looked like."""
        self.start()
        return StreamedParser(self, stream, source)


class StreamedParser:
    """A :class:`~inboxops.dmarc.parse.ReportStream` fed by a :class:`Streaming` worker."""

    def __init__(self, streaming: Streaming, stream: IO[bytes], source: str) -> None:
        self._streaming = streaming
        self._stream = stream
        self._source = source
        self._meta: ReportMeta | None = None
        self._final: Final | None = None
        self._local: AggregateParser | None = None
        self._values: Iterator[RecordValues] | None = None
        self._given = 0  # records handed out so far

    # -- ReportStream -------------------------------------------------------------------------

    @property
    def dropped(self) -> int:
        return self._local.dropped if self._local else self._final[2] if self._final else 0

    @property
    def drop_reasons(self) -> dict[str, int]:
        if self._local is not None:
            return self._local.drop_reasons
        return self._final[3] if self._final else {}

    @property
    def sha256(self) -> str:
        if self._local is not None:
            return self._local.sha256
        return self._final[0] if self._final else ""

    @property
    def recovered(self) -> bool:
        if self._local is not None:
            return self._local.recovered
        return self._final[1] if self._final else False

    def read_meta(self) -> ReportMeta:
        """The worker's metadata (the one object, whoever parses the rest), or the local
        parser's when the worker was lost before it sent any."""
        if self._meta is None and self._local is not None:
            return self._local.read_meta()
        if self._meta is None:
            message = self._next()
            if message is None:  # lost before the metadata: all of it locally
                return self._go_local().read_meta()
            kind, body = message
            assert kind == "meta", kind
            self._meta = body
        return self._meta

    def values(self) -> Iterator[RecordValues]:
        if self._values is None:
            self._values = self._read_values()
        return self._values

    def records(self) -> Iterator[Record]:
        for values in self.values():
            yield as_record(values)

    # -- plumbing -----------------------------------------------------------------------------

    def _read_values(self) -> Iterator[RecordValues]:
        self.read_meta()
        while self._local is None:
            message = self._next()
            if message is None:
                break  # lost mid-stream: the local parser goes on from here
            kind, body = message
            if kind == "values":
                self._given += len(body)
                yield from body
            else:
                assert kind == "end", kind
                self._final = body
                assert self._meta is not None
                self._meta.errors[:] = body[4]  # the notes the parser added at the end
                self._streaming.stop()
                return
        local = self._go_local()
        rest = local.values()
        for _ in islice(rest, self._given):  # parsed again, already given out
            pass
        yield from rest
        if self._meta is not None:  # the caller holds the worker's metadata: the notes go there
            self._meta.errors[:] = local.read_meta().errors

    def _next(self) -> tuple[str, Any] | None:
        """The worker's next message; its error raised here; None when it is lost."""
        message = self._streaming.take()
        if message is None:
            self._streaming.stop()
            return None
        kind, body = message
        if kind == "error":
            self._streaming.stop()
            raise body
        if kind == "local":
            self._streaming.stop()
            return None
        return message

    def _go_local(self) -> AggregateParser:
        """Carry on in this process over the payload stream it holds."""
        if self._local is None:
            self._local = AggregateParser.within(self._stream, self._source, self._streaming.limits)
        return self._local
