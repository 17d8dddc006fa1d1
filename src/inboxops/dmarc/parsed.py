"""A small aggregate report parsed whole, what storing it came to, and what a second copy is.

The store (:mod:`inboxops.dmarc.store`) writes small reports in groups, so each is first read
whole into a :class:`Parsed`; the dry run (:mod:`inboxops.dmarc.dryrun`) reads them the same
way. Both decide what a second copy of a stored report is with :func:`decide_conflict`, from
the digests of :func:`stored_digest` and :func:`parsed_digest`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Literal

from inboxops.dmarc.model import Record, ReportMeta
from inboxops.dmarc.parse import ReportStream
from inboxops.dmarc.records import RecordValues, as_record
from inboxops.errors import ParseError

if TYPE_CHECKING:  # parsing workers start before the database layer is imported (pool.py)
    from inboxops.storage.raw import Raw


def report_key(org_name: str, report_id: str) -> str:
    """The idempotency key of a report: a digest of the *full* org_name and report_id."""
    return hashlib.sha256(f"{org_name}\x00{report_id}".encode("utf-8", "surrogatepass")).hexdigest()


BATCH = 5000  # records per write; also the most a report may have to be parsed whole

Outcome = Literal["new", "known", "replaced", "conflicting"]


@dataclass
class AggregateResult:
    outcome: Outcome
    meta: ReportMeta
    records: int = 0
    messages: int = 0
    passed: int = 0
    dropped: int = 0
    drop_reasons: dict[str, int] = field(default_factory=dict)
    stored_source: str | None = None  # the copy already stored, for "conflicting"


Done = Callable[[AggregateResult], None]
Refuse = Callable[[str], None]


def _no_outcome(_result: AggregateResult) -> None:
    """The default :attr:`Parsed.done`: a function, not a lambda, so a Parsed pickles (it
    crosses from a parsing worker to the writer, :mod:`inboxops.dmarc.pool`)."""


def _no_refusal(_reason: str) -> None:
    """The default :attr:`Parsed.refuse` (see :func:`_no_outcome`)."""


@dataclass
class Parsed:
    """A small aggregate report, parsed whole and waiting for its group's transaction.

    Its records are either ``records`` (objects: what :func:`parse_small` gives the dry run)
    or ``values`` (the parser's plain values: what the database path writes, ``records``
    then empty); :attr:`size`, :meth:`result` and :func:`parsed_digest` read either.
    """

    meta: ReportMeta
    records: list[Record]
    source: str
    sha256: str
    recovered: bool
    dropped: int
    drop_reasons: dict[str, int]
    done: Done = field(repr=False, default=_no_outcome)
    refuse: Refuse = field(repr=False, default=_no_refusal)
    values: list[RecordValues] | None = field(repr=False, default=None)

    @property
    def key(self) -> str:
        return report_key(self.meta.org_name, self.meta.report_id)

    @property
    def size(self) -> int:
        return len(self.records) if self.values is None else len(self.values)

    def result(self, outcome: Outcome) -> AggregateResult:
        out = AggregateResult(outcome, self.meta, dropped=self.dropped)
        out.drop_reasons = dict(self.drop_reasons)
        if outcome in ("new", "replaced"):
            out.records = self.size
            if self.values is None:
                out.messages = sum(r.count for r in self.records)
                out.passed = sum(r.count for r in self.records if r.dkim_aligned or r.spf_aligned)
            else:
                out.messages = sum(v[1] for v in self.values)
                out.passed = sum(v[1] for v in self.values if v[10] or v[11])
        return out


def parse_small(parser: ReportStream, source: str) -> tuple[Parsed | None, Iterator[Record]]:
    """Read up to ``BATCH + 1`` records: a whole small report, or the head of a large one.

    A report whose every record was unusable is refused here, with the reasons.
    """
    parsed, head = read_head(parser, source)
    if parsed is None:
        return None, _records(head, parser)
    parsed.records, parsed.values = [as_record(v) for v in head], None
    return parsed, iter(())


def read_head(parser: ReportStream, source: str) -> tuple[Parsed | None, list[RecordValues]]:
    """:func:`parse_small` with the records left as the parser's values (the head of a large
    report, or a small report's :attr:`Parsed.values`)."""
    meta = parser.read_meta()
    head = list(islice(parser.values(), BATCH + 1))
    if len(head) > BATCH:
        return None, head
    if not head:
        why = ", ".join(f"{n} {r}" for r, n in sorted(parser.drop_reasons.items()))
        raise ParseError(
            "report has no usable record" + (f" ({why})" if why else " (it lists none)"),
            source=source,
        )
    return parsed_from(parser, meta, source, values=head), head


def parsed_from(
    parser: ReportStream,
    meta: ReportMeta,
    source: str,
    *,
    records: list[Record] | None = None,
    values: list[RecordValues] | None = None,
) -> Parsed:
    """A :class:`Parsed` of a report ``parser`` has read to its end: its digest, repairs and
    dropped records come from the parser, the records (objects or values) from the caller."""
    return Parsed(
        meta,
        records if records is not None else [],
        source,
        parser.sha256,
        parser.recovered,
        parser.dropped,
        dict(parser.drop_reasons),
        values=values,
    )


def _records(head: list[RecordValues], parser: ReportStream) -> Iterator[Record]:
    for values in head:
        yield as_record(values)
    yield from parser.records()


def stored_digest(raw: Raw, pk: int) -> str:
    from inboxops.dmarc.rows import CONTENT_AUTH_SQL, CONTENT_RECORD_SQL, content_digest

    return content_digest(raw.all(CONTENT_RECORD_SQL, (pk,)), raw.all(CONTENT_AUTH_SQL, (pk,)))


def parsed_digest(parsed: Parsed, pg: bool) -> str:
    from inboxops.dmarc.rows import content_digest, record_rows, value_rows

    if parsed.values is None:
        rec_rows, auth_rows = record_rows(0, 0, parsed.records, pg)
    else:
        rec_rows, auth_rows = value_rows(0, 0, parsed.values, pg)
    return content_digest([r[1:] for r in rec_rows], [a[1:] for a in auth_rows])


def decide_conflict(
    stored_sha: str, stored_recovered: bool, same_content: Callable[[], bool], parsed: Parsed
) -> Outcome:
    """What a second copy of a stored report is. Pure; the dry run decides the same way.

    * the same bytes or the same records: ``known``;
    * the stored copy had to be repaired (libxml2 recovered it) and this one parses cleanly:
      ``replaced``, the clean copy is better;
    * this copy is the damaged one and the stored copy is clean: ``known``, we already hold
      the better copy;
    * otherwise two clean (or two damaged) copies disagree: ``conflicting``; the first stays.
    """
    if stored_sha == parsed.sha256 or same_content():
        return "known"
    if stored_recovered and not parsed.recovered:
        return "replaced"
    if parsed.recovered and not stored_recovered:
        return "known"
    return "conflicting"
