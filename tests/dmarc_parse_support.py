"""What the aggregate parser tests share: one report unpacked (gzip/zip/BOM/UTF-16 sniffed) and
parsed, from a file or from bytes."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from inboxops.config import Limits
from inboxops.dmarc.model import Record, ReportMeta
from inboxops.dmarc.parse import AggregateParser
from inboxops.dmarc.unpack import Unpacker


@dataclass
class Parsed:
    meta: ReportMeta
    records: list[Record]
    dropped: int


def _parse_stream(stream: io.BufferedIOBase | io.BytesIO, name: str) -> Parsed:
    """Unpack (sniffing gzip/zip/BOM/UTF-16) and parse the one aggregate report inside."""
    payloads = Unpacker(Limits()).payloads(stream, name)
    payload = next(payloads)
    assert payload.kind == "xml"
    assert payload.stream is not None
    parser = AggregateParser(payload.stream, source=payload.name)
    meta = parser.read_meta()
    records = list(parser.records())
    assert next(payloads, None) is None, "exactly one payload expected"
    return Parsed(meta, records, parser.dropped)


def parse_file(path: Path) -> Parsed:
    with path.open("rb") as fh:
        return _parse_stream(fh, str(path))


def parse_bytes(data: bytes) -> Parsed:
    return _parse_stream(io.BytesIO(data), "synthetic.xml")


def utc(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
