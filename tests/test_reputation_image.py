"""Rows handed to the store as a reader's database image are stored exactly as the same rows
handed over as tuples: attempts, recipients followed, notices, expiries, operators decided by
MX, days closed by a prune, duplicates, and every count the ingest reports.

The batches come from a generated fleet log cut into ranges, each read by its own parser and
collector as a parallel read does, so a range's first attempts have no sender yet (notices of
another range), and a recipient's retries fall into different ranges, batches and images. Both
stores are written in the same order, several orders; then every reputation table must match.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import astuple
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from inboxops.config import Settings
from inboxops.demo.maillog import FleetLog
from inboxops.operators.classify import Classifier
from inboxops.operators.domains import domain_classifier
from inboxops.reputation import image
from inboxops.reputation.collect import NO_OPERATOR, Collector, Exclusions
from inboxops.reputation.parse import PostfixLogParser
from inboxops.reputation.staging import Staged, StagedBatch, Stager
from inboxops.reputation.store import ReputationStore, WriteResult
from inboxops.storage.db import open_database, write_transaction
from inboxops.storage.models import metadata
from tests.conftest import require


@pytest.fixture(autouse=True)
def _serializing_sqlite() -> None:
    require(image.SUPPORTED, "this Python's sqlite3 cannot serialize a database")


REF = datetime(2026, 11, 9, tzinfo=UTC)
EXCLUSIONS = Exclusions(("int.example",), ("seed-",))
TABLES = ("rep_attempts", "rep_recipients", "rep_expiries", "rep_notices", "rep_daily")
RANGES = 40


def _staged_batches() -> list[StagedBatch]:
    lines = list(FleetLog(lines=40_000, seed=11, start=date(2026, 11, 2), days=5))
    cut = len(lines) // RANGES
    out = []
    for index in range(RANGES):
        part = lines[index * cut : (index + 1) * cut if index < RANGES - 1 else None]
        parser = PostfixLogParser(ref=REF)
        collector = Collector(EXCLUSIONS, Classifier())
        stager = Stager(pg=False, seq=index << 40)
        batches = [*collector.run(parser.records(part), 60), collector.take()]
        for b in batches:
            out.append(StagedBatch(stager.stage(b.rows), b.expiries, b.notices))
    return out


def _with_mx_domains(rows: list[Staged], domains: set[str]) -> list[Staged]:
    """The rows of these domains as relay=none attempts: their operator comes from the MX."""
    return [(*r[:6], NO_OPERATOR, "", *r[8:]) if r[5] in domains else r for r in rows]


def _as_images(batch: StagedBatch, rng: random.Random, *, mixed: bool) -> StagedBatch:
    """The batch's rows in one to three images, cut at random (a recipient's rows can land
    in different images of one transaction); ``mixed``: the first part stays tuples."""
    rows = list(batch.rows)
    cuts = sorted(rng.sample(range(1, len(rows)), min(2, len(rows) - 1))) if len(rows) > 2 else []
    parts = [rows[a:b] for a, b in zip([0, *cuts], [*cuts, len(rows)], strict=True)]
    tuples = parts.pop(0) if mixed and parts else []
    images = [image.build(p) for p in parts if p]
    return StagedBatch(tuples, batch.expiries, batch.notices, images)


def _store(path: Path) -> tuple[Engine, ReputationStore]:
    engine = open_database(f"sqlite:///{path}")
    domains = domain_classifier(engine, Settings(), offline=True)
    seed = path.with_suffix(".csv")  # the MX of one relay=none domain, as `mx import` reads it
    seed.write_text("domain,mx_host\nyahoo.com,mta5.am0.yahoodns.net\n")
    domains.import_csv(seed, ttl=10**8)
    return engine, ReputationStore(engine, domains, offline=True)


def _close_days_before(engine: Engine, first: str) -> None:
    with write_transaction(engine) as conn:
        conn.exec_driver_sql(
            "INSERT INTO rep_horizon (id, first_day, set_at) VALUES (1, ?, ?)",
            (first, "2026-11-05 00:00:00"),
        )


def _dump(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the tables, without the attempts' arrival numbers."""
    out = {}
    with engine.connect() as conn:
        for t in TABLES:
            columns = [c.name for c in metadata.tables[t].columns if c.name != "id"]
            rows = conn.exec_driver_sql(f"SELECT {', '.join(columns)} FROM {t}").all()
            out[t] = sorted(tuple(r) for r in rows)
    return out


def _orders(n: int) -> Iterator[tuple[str, list[int]]]:
    yield "log order", list(range(n))
    yield "reversed", list(range(n))[::-1]
    shuffled = list(range(n))
    random.Random(3).shuffle(shuffled)
    yield "shuffled", shuffled


@pytest.mark.parametrize("order", ["log order", "reversed", "shuffled"])
def test_images_are_stored_exactly_as_tuples(tmp_path: Path, order: str) -> None:
    batches = _staged_batches()
    sequence = dict(_orders(len(batches)))[order]
    rows = [r for b in batches for r in b.rows]
    # checks that the scenario holds what it must exercise
    assert sum(not r[-1] for r in rows) > 10  # rows whose sender another range holds
    assert sum(r[11] == "deferred" for r in rows) > 100
    assert sum(len(b.expiries) for b in batches) > 5
    assert sum(len(b.notices) for b in batches) > 50
    assert any(r[5] == "yahoo.com" for r in rows)
    for i, b in enumerate(batches):
        b.rows = _with_mx_domains(b.rows, {"yahoo.com", "hotmail.com"})
        if b.rows:  # a line logged twice: the same digest, its own place in the log
            b.rows.append((*b.rows[0][:17], b.rows[0][17] + 500_000, *b.rows[0][18:]))
        for n in range(1, len(b.rows), 40):  # notices: found in this batch or in another
            r = b.rows[n] = (*b.rows[n][:-1], False)
            notices = b.notices if n % 80 else batches[(i + 3) % len(batches)].notices
            notices.append((r[15], r[16], r[-2] - 5))

    tuples_engine, tuples = _store(tmp_path / "tuples.db")
    images_engine, images = _store(tmp_path / "images.db")
    rng = random.Random(5)
    results: dict[str, list[WriteResult]] = {"tuples": [], "images": []}
    for n, i in enumerate(sequence):
        if n == len(sequence) // 8:  # then `reputation prune` closes the first day
            for engine in (tuples_engine, images_engine):
                _close_days_before(engine, "2026-11-03")
        results["tuples"].append(tuples.write_staged(batches[i]))
        as_images = _as_images(batches[i], rng, mixed=n % 3 == 0)
        results["images"].append(images.write_staged(as_images))
    assert tuples.rebuild() == images.rebuild()

    assert [astuple(r) for r in results["images"]] == [astuple(r) for r in results["tuples"]]
    total = WriteResult()
    for r in results["tuples"]:
        for name in vars(total):
            setattr(total, name, getattr(total, name) + getattr(r, name))
    assert total.new > 3000
    assert total.known > len(batches) // 2
    assert total.notices > 0
    assert total.past_retention > 0
    got, want = _dump(images_engine), _dump(tuples_engine)
    assert got["rep_recipients"]
    assert got["rep_expiries"]
    operators = {r[6] for r in got["rep_attempts"]}
    assert NO_OPERATOR not in operators
    assert "yahoo" in operators
    for table in TABLES:
        assert got[table] == want[table], table
    tuples_engine.dispose()
    images_engine.dispose()


def test_a_parallel_read_in_many_small_images_equals_a_sequential_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The readers' images of one transaction are attached together; SQLite attaches at most
    ten databases, so a transaction takes at most ``MAX_IMAGES`` of them however small they
    are, and the figures equal a one-process read's."""
    from inboxops.config import ReputationSettings
    from inboxops.demo.maillog import write_maillog
    from inboxops.reputation import parallel
    from inboxops.reputation.ingest import MAX_IMAGES, ReputationIngestor

    assert MAX_IMAGES <= 8  # with the main database and temp: within SQLite's ten
    path = tmp_path / "fleet.log"
    write_maillog(path, lines=20_000, seed=2, start=datetime(2026, 11, 3, tzinfo=UTC), days=2)
    rep = ReputationSettings(internal_domains=("int.example",), probe_prefixes=("seed-",))
    monkeypatch.setattr(parallel, "SEND_EVERY", 40)  # the readers are forked: they see it

    def ingest(name: str, min_bytes: int) -> dict[str, list[tuple[object, ...]]]:
        engine, store = _store(tmp_path / name)
        ingestor = ReputationIngestor(
            rep, store, Classifier(), batch=10**6, parallel_min_bytes=min_bytes
        )
        result = ingestor.ingest([str(path)])
        assert result.new > 1000
        tables = _dump(engine)
        engine.dispose()
        return tables

    got, want = ingest("parallel.db", 0), ingest("sequential.db", 10**12)
    # a recipient deferred then delivered keeps a row when the two came in different
    # transactions, none when in one: only the rows of recipients still waiting count
    for tables in (got, want):
        tables["rep_recipients"] = [r for r in tables["rep_recipients"] if r[7] != "sent"]
    assert got == want


def test_an_image_alone_marks_its_days_for_the_rollup(tmp_path: Path) -> None:
    """Attempts delivered at once, on two days, with nothing else in the batch (no deferral
    to follow, no expiry): their days are rebuilt from the image's rows alone."""
    from inboxops.reputation.collect import Row

    def sent(day: int, recipient: str) -> Row:
        ts = datetime(2026, 11, day, 9, tzinfo=UTC).timestamp()
        return Row(
            *(f"line {day} {recipient}", recipient, ts, "h/postfix", f"Q{day}{recipient[0]}"),
            *("postfix/smtp", "example.com", "other", "", "mx.example.com", "2.0.0", 250),
            *("sent", "accepted", None, True),
        )

    staged = Stager(pg=False).stage([sent(3, "a@example.com"), sent(4, "b@example.com")])
    engine, store = _store(tmp_path / "alone.db")
    written = store.write_staged(StagedBatch(images=[image.build(staged)]))
    assert (written.new, written.known) == (2, 0)
    assert [d.isoformat() for d in store.rebuild()] == ["2026-11-03", "2026-11-04"]
    with engine.connect() as conn:
        daily = conn.exec_driver_sql("SELECT day, delivered FROM rep_daily ORDER BY day").all()
    engine.dispose()
    assert [tuple(r) for r in daily] == [("2026-11-03", 1), ("2026-11-04", 1)]


def test_hostile_lines_read_in_parallel_are_stored_as_in_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lines no Postfix writes, scattered through a big log: NUL and escape characters in a
    reply (cleaned before they are stored), bytes that are not UTF-8, a 200 KB line, lines cut
    short. The readers' images store exactly what one process stores, and every such line is
    counted, never fatal."""
    from inboxops.config import ReputationSettings
    from inboxops.demo.maillog import write_maillog
    from inboxops.reputation import parallel
    from inboxops.reputation.ingest import ReputationIngestor

    path = tmp_path / "fleet.log"
    write_maillog(path, lines=20_000, seed=6, start=datetime(2026, 11, 3, tzinfo=UTC), days=2)
    stamp, host = b"Nov  3 10:00:01 out05 postfix-out05/smtp[9]: ", b"mx.example.com[192.0.2.9]"
    hostile = [
        stamp + b"AAAA11111: to=<nul@example.com>, relay=" + host + b":25, delay=1, "
        b"delays=0/0/0/1, dsn=5.7.1, status=bounced (host " + host + b" said: 550 5.7.1 "
        b"blocked\x00\x1b[31m here (in reply to RCPT TO command))",
        stamp + b"AAAA22222: to=<\xff\xfe@example.com>, relay=" + host + b":25, delay=1, "
        b"delays=0/0/0/1, dsn=4.7.0, status=deferred (host " + host + b" said: 421 \xc3( try "
        b"later (in reply to RCPT TO command))",
        stamp + b"AAAA33333: to=<long@example.com>, relay=" + host + b":25, delay=1, "
        b"delays=0/0/0/1, dsn=5.0.0, status=bounced (" + b"x" * 200_000 + b")",
        stamp + b"AAAA44444: to=<cut@example.com>, relay=mx.exa",
        b"Nov  3 10:0",
        b"\x00\x00\x00",
    ]
    lines = path.read_bytes().splitlines(keepends=True)
    for n, line in enumerate(hostile):
        lines.insert((n + 1) * len(lines) // (len(hostile) + 1), line + b"\n")
    path.write_bytes(b"".join(lines))
    rep = ReputationSettings(internal_domains=("int.example",), probe_prefixes=("seed-",))
    monkeypatch.setattr(parallel, "SEND_EVERY", 500)

    def ingest(name: str, min_bytes: int) -> tuple[list[int], dict[str, list[tuple[object, ...]]]]:
        engine, store = _store(tmp_path / name)
        ingestor = ReputationIngestor(rep, store, Classifier(), parallel_min_bytes=min_bytes)
        result = ingestor.ingest([str(path)])
        tables = _dump(engine)
        engine.dispose()
        tables["rep_recipients"] = [r for r in tables["rep_recipients"] if r[7] != "sent"]
        return [result.new, result.known, result.malformed, result.lines], tables

    (counts, tables) = ingest("parallel.db", 0)
    assert (counts, tables) == ingest("sequential.db", 10**12)
    assert counts[0] > 1000
    assert counts[2] >= 3  # the cut lines
    replies = [str(r[13]) for r in tables["rep_attempts"] if r[13]]
    assert any("blocked" in r for r in replies)
    assert not any("\x00" in r or "\x1b" in r for r in replies)


def test_images_attach_to_sqlite_only(db_url: str) -> None:
    """PostgreSQL has no serialized databases to attach: asking is a programming error,
    said before any transaction begins."""
    engine = open_database(db_url)
    try:
        if engine.dialect.name == "sqlite":
            with write_transaction(engine, {"img": image.build([]).data}) as conn:
                assert conn.exec_driver_sql("SELECT COUNT(*) FROM img.stage").scalar() == 0
        else:
            with pytest.raises(ValueError, match="SQLite only"):
                write_transaction(engine, {"img": b""}).__enter__()
    finally:
        engine.dispose()
