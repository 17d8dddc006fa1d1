"""Containers around reports: gzip (nested, concatenated, with trailing junk), zip, and mail.

Everything here streams and counts: decompression is refused past
``Limits.max_decompressed_bytes`` or past ``Limits.max_ratio`` (a bomb), checked while bytes are
produced rather than after memory is full, and a truncated archive is an error rather than a
silently short report. What comes out is a sequence of :class:`Payload` values, each a stream
the parsers read once.

Sniffing is by content, not by file name: reporters name files inconsistently and mail clients
re-label attachments, so ``.xml`` that is really gzip (or a gzip inside a gzip) is still read.
"""

from __future__ import annotations

import email
import email.policy
import io
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from typing import IO, Literal, cast

from inboxops.config import Limits
from inboxops.errors import HostileInputError, ParseError
from inboxops.untrusted import one_line

Kind = Literal["xml", "json", "failure"]

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
_CHUNK = 256 * 1024
# Attachment types reporters use for rua/TLS-RPT payloads (plus octet-stream, sniffed by content).
_REPORT_TYPES = {
    "application/gzip",
    "application/x-gzip",
    "application/zip",
    "application/x-zip",
    "application/x-zip-compressed",
    "application/xml",
    "text/xml",
    "application/tlsrpt+gzip",
    "application/tlsrpt+json",
    "application/json",
    "application/octet-stream",
}
_REPORT_SUFFIXES = (".xml", ".gz", ".gzip", ".zip", ".json")
# A file given by path (or found in a directory) with one of these names claims to be a report:
# content that is not one is a refusal (quarantined, exit 3), not a quiet "not a report".
FILE_REPORT_SUFFIXES = (*_REPORT_SUFFIXES, ".eml")


def file_named_like_report(name: str) -> bool:
    """Does this file's name say "report" (``.xml``, ``.gz``, ``.zip``, ``.json``, ``.eml``)?"""
    return name.lower().endswith(FILE_REPORT_SUFFIXES)


# A mail starts with a header field ("Name: value", RFC 5322 field-name characters) or an mbox
# "From " line; which field comes first varies (Received, Return-Path, ARC-*, vendor X-*...).
_MAIL_START = re.compile(rb"^(?:[!-9;-~]{1,76}:|From \S+ )")


@dataclass
class Payload:
    """One report candidate found inside an input."""

    kind: Kind
    name: str  # "mail.eml > report.zip > report.xml": where it came from, for messages
    stream: IO[bytes] | None = None  # xml / json
    message: EmailMessage | None = None  # failure reports


class NotAReport(Exception):
    """The input is not a report at all (ordinary mail, a PDF...): counted, never quarantined."""


class GzipReader(io.RawIOBase):
    """Streaming gunzip that tolerates what real reporters send.

    Concatenated members are read in turn; bytes after the last member that are not another gzip
    header (Mimecast appends two) are ignored, where :func:`gzip.decompress` would fail. A stream
    that ends inside a member is *truncated* and raises, so no partial report is stored.
    """

    def __init__(self, inner: IO[bytes], limits: Limits, name: str) -> None:
        self._inner = inner
        self._limits = limits
        self._name = name
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""
        self._done = False
        self.compressed = 0
        self.produced = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._done:
            if self._d.unconsumed_tail:
                try:
                    out = self._d.decompress(self._d.unconsumed_tail, len(buffer))
                except zlib.error as exc:
                    raise ParseError(f"gzip data is corrupt ({exc})", source=self._name) from None
            else:
                if not self._pending:
                    self._pending = self._inner.read(_CHUNK)
                    self.compressed += len(self._pending)
                if not self._pending:
                    if self._d.eof or (self.produced == 0 and self.compressed == 0):
                        self._done = True
                        break
                    raise ParseError("gzip data is truncated", source=self._name)
                chunk, self._pending = self._pending, b""
                try:
                    out = self._d.decompress(chunk, len(buffer))
                except zlib.error as exc:
                    raise ParseError(f"gzip data is corrupt ({exc})", source=self._name) from None
            if self._d.eof:
                self._next_member()
            if out:
                self._account(len(out))
                buffer[: len(out)] = out
                return len(out)
        return 0

    def _next_member(self) -> None:
        rest = self._d.unused_data + self._pending
        if rest.startswith(GZIP_MAGIC):
            self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            self._pending = rest
        elif not self._d.unconsumed_tail:
            self._pending = b""
            self._done = True  # trailing junk after the last member is ignored

    def _account(self, n: int) -> None:
        self.produced += n
        limits = self._limits
        if self.produced > limits.max_decompressed_bytes:
            raise HostileInputError(
                f"gzip expands past {limits.max_decompressed_bytes // (1024 * 1024)} MiB "
                "(a gzip bomb?); raise [dmarc.limits].max_decompressed_bytes if it is genuine",
                source=self._name,
            )
        if self.produced > limits.ratio_grace_bytes and self.produced > limits.max_ratio * max(
            self.compressed, 1
        ):
            raise HostileInputError(
                f"gzip expands more than {limits.max_ratio}:1 (a gzip bomb?)", source=self._name
            )


def _buffered(raw: io.RawIOBase) -> IO[bytes]:
    return io.BufferedReader(raw, buffer_size=_CHUNK)


def _peek(stream: IO[bytes], n: int = 64) -> tuple[bytes, IO[bytes]]:
    """The first ``n`` bytes, and a stream that still starts at the beginning."""
    if isinstance(stream, io.BufferedReader):
        return stream.peek(n)[:n], stream
    if stream.seekable():
        pos = stream.tell()
        head = stream.read(n)
        stream.seek(pos)
        return head, stream
    buffered = io.BufferedReader(cast(io.RawIOBase, stream), buffer_size=_CHUNK)
    return buffered.peek(n)[:n], buffered


def sniff(head: bytes) -> str:
    """What a payload is, by its first bytes: gzip, zip, xml, json, mail or unknown."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "xml"  # UTF-16 with BOM: only XML reports come that way
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"<"):
        return "xml"
    if text.startswith((b"{", b"[")):
        return "json"
    if _MAIL_START.match(head):
        return "mail"
    return "unknown"


class Unpacker:
    """Finds the report payloads in one input, within ``limits``."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    def payloads(self, stream: IO[bytes], name: str, depth: int = 0) -> Iterator[Payload]:
        """Yield each payload; raises NotAReport, ParseError or HostileInputError."""
        if depth > self.limits.max_nesting:
            raise HostileInputError(
                f"containers nested more than {self.limits.max_nesting} deep", source=name
            )
        head, stream = _peek(stream)
        kind = sniff(head)
        if not head:
            raise ParseError("empty input (0 bytes)", source=name)
        if kind == "gzip":
            inner = _buffered(GzipReader(stream, self.limits, name))
            yield from self.payloads(inner, name, depth + 1)  # named as given, every layer
        elif kind == "zip":
            yield from self._zip(stream, name, depth)
        elif kind == "xml":
            yield Payload("xml", name, stream=stream)
        elif kind == "json":
            yield Payload("json", name, stream=stream)
        elif kind == "mail":
            yield from self._mail(self._read_all(stream, name), name, depth)
        else:
            raise NotAReport(f"{name}: not a report (unrecognised content)")

    def _read_all(self, stream: IO[bytes], name: str) -> bytes:
        data = stream.read(self.limits.max_input_bytes + 1)
        if len(data) > self.limits.max_input_bytes:
            raise HostileInputError(
                f"input exceeds {self.limits.max_input_bytes // (1024 * 1024)} MiB "
                "(raise [dmarc.limits].max_input_bytes if it is genuine)",
                source=name,
            )
        return data

    def _zip(self, stream: IO[bytes], name: str, depth: int) -> Iterator[Payload]:
        if not stream.seekable():
            stream = io.BytesIO(self._read_all(stream, name))
        check_zip_directory(stream, name, self.limits.max_zip_members)
        try:
            archive = zipfile.ZipFile(stream)
            members = [m for m in archive.infolist() if not m.is_dir()]
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            raise ParseError(f"zip archive is truncated or corrupt ({exc})", source=name) from None
        if len(members) > self.limits.max_zip_members:
            raise HostileInputError(
                f"zip holds {len(members)} files, more than {self.limits.max_zip_members}",
                source=name,
            )
        if not members:
            raise ParseError("zip archive is empty", source=name)
        for member in members:
            self._check_member(member, name)
        yielded = 0
        for member in members:
            member_name = f"{name} > {one_line(member.filename)}"
            try:
                raw = archive.open(member)
            except (zipfile.BadZipFile, RuntimeError, NotImplementedError, ValueError) as exc:
                raise ParseError(f"cannot open zip member ({exc})", source=member_name) from None
            capped = _buffered(_ZipMember(raw, self.limits, member_name, member.compress_size))
            try:
                for payload in self.payloads(capped, member_name, depth + 1):
                    yielded += 1
                    yield payload
            except NotAReport:
                continue  # a README or signature beside the report
        if not yielded:
            raise NotAReport(f"{name}: zip without a report")

    def _check_member(self, member: zipfile.ZipInfo, name: str) -> None:
        limits = self.limits
        if member.flag_bits & 0x1:
            raise ParseError(f"zip member {one_line(member.filename)} is encrypted", source=name)
        if member.file_size > limits.max_decompressed_bytes:
            raise HostileInputError(
                f"zip member {one_line(member.filename)} declares {member.file_size} bytes, "
                "over the "
                f"{limits.max_decompressed_bytes // (1024 * 1024)} MiB cap (a zip bomb?)",
                source=name,
            )
        if (
            member.file_size > limits.ratio_grace_bytes
            and member.file_size > limits.max_ratio * max(member.compress_size, 1)
        ):
            raise HostileInputError(
                f"zip member {one_line(member.filename)} expands more than {limits.max_ratio}:1 "
                "(a zip bomb?)",
                source=name,
            )

    def _mail(self, data: bytes, name: str, depth: int) -> Iterator[Payload]:
        try:
            msg = email.message_from_bytes(data, policy=email.policy.default)
        except Exception as exc:  # the email package raises many types on hostile MIME
            raise ParseError(f"mail cannot be parsed ({type(exc).__name__})", source=name) from None
        assert isinstance(msg, EmailMessage)
        from inboxops.dmarc import failure

        if failure.is_failure_report(msg):
            yield Payload("failure", name, message=msg)
            return
        yielded = 0
        for part in _attachments(msg):
            label = part.get_filename() or part.get_content_type()
            part_name = f"{name} > {one_line(str(label))}"
            try:
                body = part.get_payload(decode=True)
            except Exception:  # malformed transfer encodings
                raise ParseError("attachment cannot be decoded", source=part_name) from None
            if not isinstance(body, bytes) or not body:
                raise ParseError("attachment is empty", source=part_name)
            try:
                for payload in self.payloads(io.BytesIO(body), part_name, depth + 1):
                    yielded += 1
                    yield payload
            except NotAReport:
                if _named_like_a_report(str(part.get_filename() or "")):
                    # e.g. Yahoo's gzip whose content is the word "unused": the mail is a
                    # report mail, so it is quarantined and flagged, not retried forever.
                    raise ParseError(
                        "attachment is named like a report but holds no report", source=part_name
                    ) from None
                continue  # a PDF or image beside the report, or ordinary mail
        if not yielded:
            raise NotAReport(f"{name}: mail without a report attachment")


class _ZipMember(io.RawIOBase):
    """A zip member's stream, capped in size and ratio as it is read."""

    def __init__(self, inner: IO[bytes], limits: Limits, name: str, compressed: int) -> None:
        self._inner = inner
        self._limits = limits
        self._name = name
        self._compressed = max(compressed, 1)
        self.total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        try:
            data = self._inner.read(len(buffer))
        except (zipfile.BadZipFile, EOFError, zlib.error, OSError) as exc:
            detail = str(exc) or type(exc).__name__
            raise ParseError(
                f"zip member is truncated or corrupt ({detail})", source=self._name
            ) from None
        n = len(data)
        buffer[:n] = data
        self.total += n
        limits = self._limits
        if self.total > limits.max_decompressed_bytes or (
            self.total > limits.ratio_grace_bytes
            and self.total > limits.max_ratio * self._compressed
        ):
            raise HostileInputError(
                "zip member expands past its caps (a zip bomb?)", source=self._name
            )
        return n


_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"
_CD_ENTRY_MAX = 4096  # bytes one central-directory entry may plausibly take (name + extras)


def check_zip_directory(stream: IO[bytes], name: str, max_members: int) -> None:
    """Refuse a zip with too many entries from its end record, before its directory is read.

    :mod:`zipfile` builds an object for every central-directory entry before anything can be
    checked: 800,000 empty entries cost 400 MB and 12 s. The end-of-central-directory record
    (and its ZIP64 twin) states the entry count and the directory's size up front; a size far
    beyond what ``max_members`` entries could take is refused too, in case the count lies.
    Leaves the stream where it was.
    """
    start = stream.tell()
    try:
        size = stream.seek(0, io.SEEK_END)
        tail_len = min(size, 65_536 + 22 + 20)
        stream.seek(size - tail_len)
        tail = stream.read(tail_len)
    finally:
        stream.seek(start)
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) < at + 22:
        return  # not a well-formed end record: zipfile reports it as corrupt
    entries = int.from_bytes(tail[at + 10 : at + 12], "little")
    cd_size = int.from_bytes(tail[at + 12 : at + 16], "little")
    loc = tail.rfind(_EOCD64_LOCATOR, 0, at)
    if (entries == 0xFFFF or cd_size == 0xFFFFFFFF) and loc >= 0:
        offset = int.from_bytes(tail[loc + 8 : loc + 16], "little")
        try:
            stream.seek(offset)
            record = stream.read(56)
        finally:
            stream.seek(start)
        if record.startswith(_EOCD64) and len(record) >= 56:
            entries = int.from_bytes(record[32:40], "little")
            cd_size = int.from_bytes(record[40:48], "little")
    if entries > max_members or cd_size > max(max_members, 1) * _CD_ENTRY_MAX:
        raise HostileInputError(
            f"zip directory declares {entries} files in {cd_size} bytes, more than "
            f"{max_members} files (raise [dmarc.limits].max_zip_members if it is genuine)",
            source=name,
        )


def _attachments(msg: EmailMessage) -> Iterator[EmailMessage]:
    """Parts that may carry a report: by type or file name, never the text body of the mail."""
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        filename = (part.get_filename() or "").lower()
        if ctype in _REPORT_TYPES or filename.endswith(_REPORT_SUFFIXES):
            yield part


_REPORT_NAME = re.compile(r"![^!]+![0-9]{9,}![0-9]{9,}|\.xml(\.gz|\.zip)?$|\.json\.gz$", re.I)


def _named_like_a_report(filename: str) -> bool:
    """``org!domain!begin!end[.xml.gz]`` (RFC 7489 naming) or an obvious report extension."""
    return bool(_REPORT_NAME.search(filename))
