"""Aggregate (rua) report XML -> :class:`ReportMeta` and a stream of :class:`Record`.

Pure: reads one byte stream, touches nothing else. Built on lxml's ``iterparse`` so a
100,000-record report is read in constant memory: each ``<record>`` is turned into a value and
its element freed at once. Records come as plain tuples (:meth:`AggregateParser.values`, what
the store writes) or as :class:`~inboxops.dmarc.model.Record` objects (:meth:`records`), their
text cut to its column and already cleaned by the rules of :mod:`inboxops.storage.text`.

Tolerance is the point. The parser is namespace-agnostic (classic schema, the
``urn:ietf:params:xml:ns:dmarc-2.0`` namespace GMX/WEB.DE/mail.com use, RFC 9990), accepts the
reporters' quirks (empty org_name, upper-case enums, a wrapper element around ``<feedback>``,
invalid UTF-8, unescaped ``<`` in text) by letting libxml2 *recover* and noting what it had to
repair in the report's ``errors``. A record that cannot be used (no valid IP, bad count) is
dropped and counted; the report is kept. Only a document with no usable report is refused.

Hostile input is refused, never half-read: DOCTYPE/entity declarations (no entity is ever
expanded or fetched), nesting past libxml2's 256-level limit, text nodes past its 10 MB limit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, Final, Protocol

from lxml import etree

from inboxops.dmarc.model import Record, ReportMeta
from inboxops.dmarc.records import (
    LOCAL_NAMES,
    Drop,
    RecordValues,
    Unclean,
    as_record,
    cleaned,
    derive,
    digits,
    element_text,
    fast_reader,
    local_name,
    record_values,
)
from inboxops.dmarc.unpack import NotAReport
from inboxops.errors import HostileInputError, ParseError
from inboxops.untrusted import one_line

if TYPE_CHECKING:
    from inboxops.config import Limits

_TAGS = ("{*}report_metadata", "{*}policy_published", "{*}record", "{*}version")
_HOSTILE_MARKERS = ("ERR_RESOURCE_LIMIT", "Excessive depth", "Huge input", "xmlSAX2Characters")
MAX_KEY = 1024  # longest org_name / report_id accepted: longer is refused, never cut
RECOVERED = "recovered from malformed XML"
_MAX_PENDING = 20_000  # records buffered while waiting for late metadata
PARSER_OPTIONS: Final[dict[str, Any]] = {
    "recover": True,  # the reporters' broken XML, repairs noted in the report's errors
    "resolve_entities": False,  # with load_dtd and no_network: no entity is expanded or fetched
    "load_dtd": False,
    "no_network": True,
    "huge_tree": False,  # libxml2's depth and text-size limits stay on
    "remove_comments": True,
    "remove_pis": True,
}
"""How every aggregate report is parsed (the options lxml's parsers take)."""
FAST_RECORD = fast_reader(etree._Element, etree.fromstring)
"""The C walk of a record (records.fast_reader), or None where it was not built."""
ACCELERATED: Final = FAST_RECORD is not None


_MS_EPOCH = 10**11  # seconds past this are year 5138: the reporter sent milliseconds


def _epoch(value: str) -> datetime | None:
    """A report date: epoch seconds as the schema says, or milliseconds, or ISO 8601."""
    if not value:
        return None
    try:
        seconds = float(value)
        if seconds > _MS_EPOCH:
            seconds /= 1000
        return datetime.fromtimestamp(int(seconds), UTC)
    except (ValueError, OverflowError, OSError):
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class ReportStream(Protocol):
    """What storage reads from a parsed aggregate report: metadata first, then records."""

    @property
    def dropped(self) -> int: ...

    @property
    def drop_reasons(self) -> dict[str, int]: ...

    @property
    def sha256(self) -> str: ...

    @property
    def recovered(self) -> bool: ...

    def read_meta(self) -> ReportMeta: ...

    def records(self) -> Iterator[Record]: ...

    def values(self) -> Iterator[RecordValues]: ...


class _HashingReader:
    """Passes bytes to lxml while hashing them: the report's content fingerprint for free."""

    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner
        self.sha = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._inner.read(n)
        self.sha.update(data)
        return data


class AggregateParser:
    """Reads one aggregate report: :meth:`read_meta` first, then :meth:`records`.

    ``dropped`` counts unusable records and ``errors`` the repairs made; both are final once
    :meth:`records` is exhausted, as is :attr:`sha256`.
    """

    def __init__(
        self,
        stream: IO[bytes],
        *,
        source: str = "",
        max_records: int = 5_000_000,
        accelerated: bool = True,
    ):
        self.source = source
        self.max_records = max_records
        # the C walk reads the records it knows completely; record_values every other one
        self._fast = FAST_RECORD if accelerated else None
        self.dropped = 0
        self.drop_reasons: dict[str, int] = {}  # why records were dropped -> how many
        self._drop_examples: dict[str, str] = {}
        self.seen = 0
        self._reader = _HashingReader(stream)
        self._context: Any = etree.iterparse(
            self._reader, events=("end",), tag=_TAGS, **PARSER_OPTIONS
        )
        self._events: Iterator[tuple[str, Any]] = iter(self._context)
        self._meta: ReportMeta | None = None
        self._pending: list[RecordValues | Unclean | None] = []  # records before the metadata
        self._values: Iterator[RecordValues] | None = None
        self._checked_doctype = False
        self._fields: dict[str, Any] = {}

    @classmethod
    def within(cls, stream: IO[bytes], source: str, limits: Limits) -> AggregateParser:
        """A parser held to ``[dmarc.limits]``: how every reader of a payload makes one (the
        sequential path, the pool's and the streaming workers, a lost worker's fallback), so
        a limit added there applies everywhere."""
        return cls(stream, source=source, max_records=limits.max_records)

    @property
    def sha256(self) -> str:
        return self._reader.sha.hexdigest()

    @property
    def recovered(self) -> bool:
        """libxml2 repaired the XML (final once :meth:`records` is exhausted)."""
        return self._meta is not None and any(RECOVERED in e for e in self._meta.errors)

    # -- metadata -----------------------------------------------------------------------------

    def read_meta(self) -> ReportMeta:
        """Parse up to the first record (buffering records if metadata comes late)."""
        if self._meta is not None:
            return self._meta
        have_meta = have_policy = False
        for el in self._iter():
            name = local_name(el.tag)
            if name == "report_metadata":
                self._take_metadata(el)
                have_meta = True
            elif name == "policy_published":
                self._take_policy(el)
                have_policy = True
            elif name == "version":
                self._fields["version"] = element_text(el) or None
            elif name == "record":
                if len(self._pending) >= _MAX_PENDING:
                    raise HostileInputError(
                        f"more than {_MAX_PENDING} records before the report metadata",
                        source=self.source,
                    )
                self._pending.append(self._convert_or_drop(el))
                if have_meta and have_policy:
                    break
                continue
            self._free(el)
            if have_meta and have_policy and self._pending:
                break
        if not have_meta:
            root = getattr(self._context, "root", None)
            if root is not None and not self._checked_doctype:
                self._check_doctype(root)
            self._finish_errors()
            if self._pending or (root is not None and local_name(root.tag) == "feedback"):
                raise ParseError(
                    "DMARC aggregate report has no report_metadata", source=self.source
                )
            raise NotAReport(f"{self.source}: XML is not a DMARC aggregate report")
        self._meta = self._build_meta()
        return self._meta

    def _take_metadata(self, el: Any) -> None:
        f = self._fields
        errors: list[str] = f.setdefault("errors", [])
        for child in el:
            name = local_name(child.tag)
            if name == "date_range":
                for d in child:
                    dn = local_name(d.tag)
                    if dn in ("begin", "end"):
                        f[dn] = element_text(d)
            elif name == "error":
                if text := element_text(child):
                    errors.append(text)
            elif name in ("org_name", "report_id"):
                f[name] = (child.text or "").strip()  # keys: never cut (checked in _build_meta)
            elif name in ("email", "extra_contact_info", "generator"):
                f[name] = element_text(child)

    def _take_policy(self, el: Any) -> None:
        for child in el:
            name = local_name(child.tag)
            if name in ("domain", "adkim", "aspf", "p", "sp", "np", "pct", "fo", "testing"):
                self._fields[f"pp_{name}"] = element_text(child)
            elif name == "discovery_method":
                self._fields["pp_discovery_method"] = element_text(child)

    def _build_meta(self) -> ReportMeta:
        f = self._fields
        errors: list[str] = list(f.get("errors", []))
        email = f.get("email") or None
        org = (f.get("org_name") or "").strip()
        report_id = (f.get("report_id") or "").strip()
        if not org and not report_id:
            raise ParseError(
                "report has neither org_name nor report_id, so it cannot be told apart from "
                "any other report; refused rather than stored under an invented key",
                source=self.source,
            )
        for what, value in (("org_name", org), ("report_id", report_id)):
            if len(value) > MAX_KEY:
                raise ParseError(
                    f"{what} is {len(value)} characters long, over {MAX_KEY}; refused rather "
                    "than cut (a cut key could merge two reports)",
                    source=self.source,
                )
        if not org:
            org = email.rpartition("@")[2].strip(" <>") if email and "@" in email else ""
            org = org or "unknown"
        domain = (f.get("pp_domain") or "").lower().strip(".") or None
        begin, end = _epoch(f.get("begin", "")), _epoch(f.get("end", ""))
        if not report_id:
            stamp = (
                f"{int(begin.timestamp()) if begin else ''}-{int(end.timestamp()) if end else ''}"
            )
            report_id = f"missing-id:{domain or ''}:{stamp}"
            errors.append("report has no report_id; derived one from domain and date range")
        if begin and end and end < begin:
            errors.append("date_range end is before begin")
        pct_text = f.get("pp_pct") or ""
        pct = int(pct_text) if digits(pct_text) and int(pct_text) <= 100 else None

        def low(key: str) -> str | None:
            value = f.get(key) or ""
            return value.lower() or None

        return ReportMeta(
            org_name=org,
            report_id=report_id,
            email=email,
            extra_contact_info=f.get("extra_contact_info") or None,
            begin=begin,
            end=end,
            version=f.get("version"),
            generator=f.get("generator") or None,
            domain=domain,
            adkim=low("pp_adkim"),
            aspf=low("pp_aspf"),
            p=low("pp_p"),
            sp=low("pp_sp"),
            np=low("pp_np"),
            pct=pct,
            fo=f.get("pp_fo") or None,
            testing=low("pp_testing"),
            discovery_method=low("pp_discovery_method"),
            errors=errors,
        )

    # -- records ------------------------------------------------------------------------------

    def records(self) -> Iterator[Record]:
        """The report's usable records, in document order; frees each element as it goes."""
        for values in self.values():
            yield as_record(values)

    def values(self) -> Iterator[RecordValues]:
        """The same records as :meth:`records`, as plain cleaned tuples (see
        :data:`RecordValues`): what the store's hot path writes, without building objects.

        Both share one position in the document: records taken from one are not seen again
        by the other.
        """
        if self._values is None:
            self._values = self._stream_values()
        return self._values

    def _stream_values(self) -> Iterator[RecordValues]:
        meta = self.read_meta()
        pending, self._pending = self._pending, []
        for early in pending:
            if early is not None:
                yield self._finalise(early, meta)
        get = LOCAL_NAMES.get
        fast = self._fast
        try:
            for _event, el in self._events:
                tag = el.tag
                if (get(tag) or local_name(tag)) != "record":
                    self._free(el)
                    continue
                self.seen += 1
                if self.seen > self.max_records:
                    self._too_many()
                item = (fast(el) if fast else None) or record_values(el)
                self._free(el)
                if isinstance(item, tuple):
                    yield (
                        item if item[3] is not None and item[4] is not None else derive(item, meta)
                    )
                elif isinstance(item, Drop):
                    self._count_drop(item)
                else:
                    yield self._finalise(item, meta)
        except etree.XMLSyntaxError as exc:
            self._raise_syntax(str(exc))
        self._check_hostile_log()
        self._finish_errors()
        self._note_drops()

    @staticmethod
    def _finalise(item: RecordValues | Unclean, meta: ReportMeta) -> RecordValues:
        """Alignment derived when the reporter left it out (on the values as sent), then
        text cleaned (:func:`~inboxops.storage.text.clean_text`) where it needs it."""
        values = item.values if isinstance(item, Unclean) else item
        if values[3] is None or values[4] is None:
            values = derive(values, meta)
        return cleaned(values) if isinstance(item, Unclean) else values

    def _convert_or_drop(self, el: Any) -> RecordValues | Unclean | None:
        self.seen += 1
        if self.seen > self.max_records:
            self._too_many()
        item = (self._fast(el) if self._fast else None) or record_values(el)
        self._free(el)
        if isinstance(item, Drop):
            self._count_drop(item)
            return None
        return item

    def _too_many(self) -> None:
        raise HostileInputError(
            f"report has more than {self.max_records} records "
            "(raise [dmarc.limits].max_records if it is genuine)",
            source=self.source,
        )

    def _count_drop(self, drop: Drop) -> None:
        self.dropped += 1
        self.drop_reasons[drop.reason] = self.drop_reasons.get(drop.reason, 0) + 1
        self._drop_examples.setdefault(drop.reason, drop.value)

    # -- plumbing -----------------------------------------------------------------------------

    def _iter(self) -> Iterator[Any]:
        try:
            for _event, el in self._events:
                if not self._checked_doctype:
                    self._check_doctype(el)
                yield el
        except etree.XMLSyntaxError as exc:
            self._raise_syntax(str(exc))
        self._check_hostile_log()

    def _check_doctype(self, el: Any) -> None:
        self._checked_doctype = True
        info = el.getroottree().docinfo
        if info.internalDTD is not None or info.doctype or info.system_url:
            raise HostileInputError(
                "XML declares a DOCTYPE/entities, which no DMARC report needs (refused to "
                "prevent entity-expansion and external-entity attacks)",
                source=self.source,
            )

    def _check_hostile_log(self) -> None:
        for entry in self._context.error_log:
            message = str(entry)
            if any(marker in message for marker in _HOSTILE_MARKERS):
                raise HostileInputError(
                    f"XML exceeds parser safety limits ({entry.message.strip()})",
                    source=self.source,
                )

    def _raise_syntax(self, message: str) -> None:
        if any(marker in message for marker in _HOSTILE_MARKERS):
            raise HostileInputError(
                f"XML exceeds parser safety limits ({message})", source=self.source
            )
        raise ParseError(f"XML cannot be parsed ({message})", source=self.source)

    def _note_drops(self) -> None:
        """Say in the report's errors why records were dropped (counted per reason)."""
        if not self.drop_reasons or self._meta is None:
            return
        parts = [
            f"{reason} ({n}, e.g. {one_line(self._drop_examples[reason], 60)!r})"
            for reason, n in sorted(self.drop_reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        ]
        note = f"dropped {self.dropped} unusable record(s): " + "; ".join(parts)
        self._meta.errors[:] = [e for e in self._meta.errors if not e.startswith("dropped ")]
        self._meta.errors.append(note)

    def _finish_errors(self) -> None:
        """Record what libxml2 had to repair, once, in the report's errors."""
        log = getattr(self._context, "error_log", None)
        if not log or self._meta is None:
            return
        first = log[0]
        note = f"{RECOVERED}: {first.message.strip()} (line {first.line})"
        if len(log) > 1:
            note += f" and {len(log) - 1} more issue(s)"
        if note not in self._meta.errors:
            self._meta.errors.append(note)

    @staticmethod
    def _free(el: Any) -> None:
        el.clear(keep_tail=False)
        parent = el.getparent()
        if parent is not None:
            while el.getprevious() is not None:
                del parent[0]
