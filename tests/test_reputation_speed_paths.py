"""The reputation ingest's fast paths give exactly what the plain paths give.

The parser's tuples (``records``) against its event objects, the collector's batched loop
against one event at a time, a timestamp read once per second against each line's own stamp,
per-range aggregation merged in log order against one pass, and the store's one-call check for
printable text against cleaning every column.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, date, datetime

import pytest

from inboxops.demo.maillog import FleetLog
from inboxops.operators.classify import Classifier
from inboxops.reputation.aggregate import Aggregator
from inboxops.reputation.collect import Batch, Collector, Exclusions, Row, queue_digest
from inboxops.reputation.model import Attempt
from inboxops.reputation.parse import EVENT_TYPES, PostfixLogParser
from inboxops.reputation.staging import STAGE_TEXT, Stager
from inboxops.reputation.store import ReputationStore
from inboxops.storage.text import clean_row

REF = datetime(2026, 11, 9, tzinfo=UTC)
EXCLUSIONS = Exclusions(("int.example",), ("seed-",))


@pytest.fixture(scope="module")
def fleet() -> list[str]:
    return list(FleetLog(lines=30_000, seed=7, start=date(2026, 11, 2), days=5))


def test_records_are_the_events_as_tuples(fleet: list[str]) -> None:
    events = list(PostfixLogParser(ref=REF).parse(fleet))
    parser = PostfixLogParser(ref=REF)
    records = list(parser.records(fleet))
    assert len(records) == len(events) > 10_000
    for record, event in zip(records, events, strict=True):
        cls = EVENT_TYPES[record[0]]
        assert type(event) is cls
        assert record[1:] == tuple(getattr(event, f.name) for f in fields(event))
    assert parser.lines == len(fleet)


def test_every_stamp_is_read_as_its_own_line_says(fleet: list[str]) -> None:
    """Lines of one second share one reading of the stamp; each must still be its own."""
    events = list(PostfixLogParser(ref=REF).parse(fleet))
    alone = [e for line in fleet for e in PostfixLogParser(ref=REF).parse([line])]
    assert [e.ts for e in events] == [e.ts for e in alone]
    attempts = [e for e in events if isinstance(e, Attempt)]
    assert len(attempts) > 3000
    for a in attempts:
        stamp = datetime.strptime(f"2026 {a.line[:15]} +0000", "%Y %b %d %H:%M:%S %z")
        assert a.ts == stamp.timestamp(), a.line


def test_a_broken_stamp_after_a_good_one_of_the_same_second_is_malformed() -> None:
    good = (
        "Nov  4 10:00:01 out05 postfix-out05/qmgr[9]: ABCDEF12345: removed\n"
        "Nov  4 10:00:01 out05 postfix-out05/qmgr[9]: ABCDEF12346: removed\n"
        "Nov  4 10:00:xx out05 postfix-out05/qmgr[9]: ABCDEF12347: removed\n"
        "Nov  4 10:00:1x out05 postfix-out05/qmgr[9]: ABCDEF12348: removed\n"
        "Nov  4 10:00:02 out05 postfix-out05/qmgr[9]: ABCDEF12349: removed\n"
    )
    parser = PostfixLogParser(ref=REF)
    events = list(parser.parse(good.splitlines(keepends=True)))
    moment = datetime(2026, 11, 4, 10, 0, 1, tzinfo=UTC).timestamp()
    assert [e.ts for e in events] == [moment, moment, moment + 1]
    assert parser.malformed == 2


def test_the_same_second_across_new_year_keeps_each_year() -> None:
    text = (
        "Dec 31 23:59:59 out05 postfix-out05/qmgr[9]: ABCDEF12345: removed\n"
        "Jan  1 00:00:00 out05 postfix-out05/qmgr[9]: ABCDEF12346: removed\n"
        "Jan  1 00:00:00 out05 postfix-out05/qmgr[9]: ABCDEF12347: removed\n"
        "2027-01-01T00:00:01Z out05 postfix-out05/qmgr[9]: ABCDEF12348: removed\n"
        "Jan  1 00:00:00 out05 postfix-out05/qmgr[9]: ABCDEF12349: removed\n"
    )
    events = list(PostfixLogParser(year=2026).parse(text.splitlines(keepends=True)))
    new_year = datetime(2027, 1, 1, tzinfo=UTC).timestamp()
    assert [e.ts for e in events] == [new_year - 1, new_year, new_year, new_year + 1, new_year]


def _rows(batch: Batch) -> list[tuple[object, ...]]:
    return [tuple(getattr(r, f.name) for f in fields(Row)) for r in batch.rows]


@pytest.mark.parametrize("size", [0, 1, 997])
def test_the_batched_loop_equals_one_event_at_a_time(fleet: list[str], size: int) -> None:
    one = Collector(EXCLUSIONS, Classifier())
    for event in PostfixLogParser(ref=REF).parse(fleet):
        one.feed(event)
    want = one.take()

    batched = Collector(EXCLUSIONS, Classifier())
    got = Batch()
    for batch in batched.run(PostfixLogParser(ref=REF).records(fleet), size):
        assert len(batch.rows) == size
        for name in ("rows", "expiries", "notices"):
            getattr(got, name).extend(getattr(batch, name))
    rest = batched.take()
    for name in ("rows", "expiries", "notices"):
        getattr(got, name).extend(getattr(rest, name))

    assert _rows(got) == _rows(want)
    assert (got.expiries, got.notices) == (want.expiries, want.notices)
    assert vars(batched.excluded) == vars(one.excluded)
    assert batched.kept == one.kept == len(want.rows) > 1000
    assert all(n > 0 for name, n in vars(one.excluded).items() if name in ("notices", "local"))


def _row(**changes: object) -> Row:
    row = Row(
        line="line",
        recipient="r@example.com",
        ts=1_800_000_000.0,
        scope="h/postfix",
        queue_id="Q1",
        syslog_name="postfix/smtp",
        domain="example.com",
        operator="gmail",
        segment="",
        relay_host="mx.example.com",
        dsn="5.7.1",
        code=550,
        status="bounced",
        reason="policy_block",
        reply="550 no",
        sender_known=True,
    )
    for name, value in changes.items():
        setattr(row, name, value)
    return row


def _figures(agg: Aggregator) -> list[tuple[object, dict[str, int]]]:
    return sorted((k, vars(f)) for k, f in agg.figures().items())


@pytest.mark.parametrize("parts", [2, 3, 7])
def test_ranges_aggregated_apart_and_merged_equal_one_pass(fleet: list[str], parts: int) -> None:
    """What the parallel dry run does: each range counted by itself (its own parser and
    collector, so notices and retries cross the cuts), then merged in log order."""
    whole = Aggregator(undecided="unknown")
    collector = Collector(EXCLUSIONS, Classifier())
    parser = PostfixLogParser(ref=REF)
    for batch in collector.run(parser.records(fleet), 500):
        whole.add(batch)
    whole.add(collector.take())

    merged = Aggregator(undecided="unknown")
    step = len(fleet) // parts + 1
    for i in range(0, len(fleet), step):
        part = Aggregator(undecided="unknown")
        collector = Collector(EXCLUSIONS, Classifier())
        for batch in collector.run(PostfixLogParser(ref=REF).records(fleet[i : i + step]), 500):
            part.add(batch)
        part.add(collector.take())
        merged.merge(part.partial())

    assert _figures(merged) == _figures(whole)
    assert any(op == "unknown" for (_, _, op, _) in whole.figures())


def test_ties_go_to_the_later_line_in_a_merge_as_in_one_pass() -> None:
    """Same recipient, same second, both final: the later line is the outcome."""

    def row(status: str) -> Row:
        return _row(status=status, dsn="5.0.0", code=None, reason="other", reply=None)

    one = Aggregator()
    one.add(Batch([row("bounced"), row("sent")]))
    first, second = Aggregator(), Aggregator()
    first.add(Batch([row("bounced")]))
    second.add(Batch([row("sent")]))
    first.merge(second.partial())
    assert _figures(first) == _figures(one)
    assert next(iter(one.figures().values())).delivered == 1


@pytest.mark.parametrize(
    ("first", "second", "expired"),
    [
        # deferred, then delivered in the later part; the message's expiry settles only the
        # recipient still pending, never the delivered one
        ([("a", "deferred", 100.0)], [("a", "sent", 200.0), ("b", "deferred", 200.0)], True),
        # a final status and a deferral in the same second: the final one stands, whichever
        # part it is in
        ([("a", "sent", 100.0)], [("a", "deferred", 100.0)], False),
        ([("a", "deferred", 100.0)], [("a", "bounced", 100.0)], False),
        # the later part's attempt is older (an interleaved log): the newer one stands
        ([("a", "bounced", 300.0)], [("a", "deferred", 100.0), ("b", "deferred", 100.0)], True),
    ],
)
def test_a_recipient_in_both_parts_counts_once_as_in_one_pass(
    first: list[tuple[str, str, float]], second: list[tuple[str, str, float]], expired: bool
) -> None:
    def rows(spec: list[tuple[str, str, float]]) -> Batch:
        batch = Batch(
            [
                _row(recipient=f"{who}@example.com", status=status, ts=ts, reason="other")
                for who, status, ts in spec
            ]
        )
        if expired:
            batch.expiries.append(("h/postfix", "Q1", 400.0))
        return batch

    one = Aggregator()
    one.add(rows(first))
    one.add(rows(second))
    apart, later = Aggregator(), Aggregator()
    apart.add(rows(first))
    later.add(rows(second))
    apart.merge(later.partial())
    assert _figures(apart) == _figures(one)
    outcomes = [(f.delivered, f.bounced, f.expired, f.pending) for f in one.figures().values()]
    assert sum(sum(o) for o in outcomes) == len({who for who, _, _ in first + second})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reply", "550 evil\x1b[31m text\x00"),
        ("domain", "ex\x07ample.com"),
        ("syslog_name", "postfix\x85/smtp"),
        ("reply", "fine, printable text"),
        ("reply", None),
    ],
)
def test_staged_text_is_cleaned_exactly_as_every_column_would_be(
    field: str, value: str | None
) -> None:
    row = _row(ts=1_800_000_000.25)
    setattr(row, field, value)
    (staged,) = Stager(pg=False).stage([row])
    assert staged == clean_row(staged, STAGE_TEXT)
    raw = list(staged)
    raw[4:17] = [
        row.syslog_name,
        row.domain,
        row.operator,
        row.segment,
        row.relay_host,
        row.dsn,
        row.code,
        row.status,
        row.reason,
        row.reply,
        queue_digest(row.scope, row.queue_id),
        row.scope,
        row.queue_id,
    ]
    assert staged == clean_row(tuple(raw), STAGE_TEXT)
    assert staged[2] == "2027-01-15 08:00:00.250000"


def test_attempt_records_carry_the_attempts_fields_in_order() -> None:
    line = (
        "Nov 24 14:49:24 out05 postfix-out05/smtp[1]: D18FF16431A: to=<User@Gmail.com>, "
        "relay=gmail-smtp-in.l.google.com[127.0.0.1]:25, delay=6.8, delays=6.8/0.02/0/0, "
        "dsn=2.0.0, status=sent (250 2.0.0 queued)\n"
    )
    (record,) = PostfixLogParser(ref=datetime(2026, 11, 30, tzinfo=UTC)).records([line])
    event = EVENT_TYPES[record[0]](*record[1:])
    assert isinstance(event, Attempt)
    assert (event.recipient, event.domain, event.relay_port, event.line) == (
        "user@gmail.com",
        "gmail.com",
        25,
        line[:-1],
    )


@pytest.mark.parametrize("together", [True, False])
def test_a_notice_applies_to_attempts_in_the_same_batch_as_in_later_ones(
    db_url: str, together: bool
) -> None:
    """A parallel read joins the readers' batches: a notice's ``from=<>`` (one range) and its
    attempts (the next range) may be written in one transaction, or in two."""
    from inboxops.config import Settings
    from inboxops.operators.domains import domain_classifier
    from inboxops.storage.db import open_database

    engine = open_database(db_url)
    store = ReputationStore(
        engine, domain_classifier(engine, Settings(), offline=True), offline=True
    )
    notice = ("h/postfix", "NOTICE1", 1_800_000_000.0)
    unsure = _row(queue_id="NOTICE1", ts=1_800_000_030.0, sender_known=False, line="a")
    other = _row(queue_id="OTHER1", ts=1_800_000_030.0, sender_known=False, line="b")
    if together:
        written = store.write(Batch([unsure, other], [], [notice]))
        assert (written.new, written.notices) == (1, 1)
    else:
        first = store.write(Batch([unsure, other], [], []))
        second = store.write(Batch([], [], [notice]))
        assert (first.new, second.notices) == (2, 1)
    store.rebuild()
    with engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT COUNT(*) FROM rep_attempts").scalar()
    engine.dispose()
    assert stored == 1


@pytest.mark.parametrize("notice_first", [True, False])
def test_a_notice_reaches_exactly_seven_days_either_side(db_url: str, notice_first: bool) -> None:
    """Short queue ids are reused, so a notice applies to its queue id's attempts within
    NOTICE_SPAN of it, the bounds included: whether the notice was read first (its attempts
    are dropped on arrival) or last (the stored ones are retracted)."""
    from inboxops.config import Settings
    from inboxops.operators.domains import domain_classifier
    from inboxops.reputation.store import NOTICE_SPAN
    from inboxops.storage.db import open_database

    engine = open_database(db_url)
    store = ReputationStore(
        engine, domain_classifier(engine, Settings(), offline=True), offline=True
    )
    at, span = 1_800_000_000.0, NOTICE_SPAN.total_seconds()
    offsets = {"early": -span - 1, "first": -span, "last": span, "late": span + 1}
    rows = [
        _row(queue_id="REUSED1", ts=at + d, sender_known=False, line=name, recipient=f"{name}@x")
        for name, d in offsets.items()
    ]
    notice = Batch([], [], [("h/postfix", "REUSED1", at)])
    for batch in [notice, Batch(rows, [], [])] if notice_first else [Batch(rows, [], []), notice]:
        store.write(batch)
    store.rebuild()
    with engine.connect() as conn:
        kept = conn.exec_driver_sql("SELECT ts FROM rep_attempts ORDER BY ts").scalars().all()
    engine.dispose()
    stamps = [t if isinstance(t, datetime) else datetime.fromisoformat(t) for t in kept]
    seconds = [t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC) for t in stamps]
    assert [t.timestamp() - at for t in seconds] == [offsets["early"], offsets["late"]]
