"""The aggregate hot path: the parser's plain values, cleaned at the source, and the write path
that trusts them (multi-row INSERTs on SQLite, COPY on PostgreSQL) store what the object path
stores. Behaviour only; speed is measured in bench/dmarc, never here."""

from __future__ import annotations

import gc
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, select, text

from inboxops.config import Limits
from inboxops.dmarc.ingest import Ingestor
from inboxops.dmarc.parse import AggregateParser
from inboxops.dmarc.records import as_record
from inboxops.dmarc.rows import content_digest, insert_rows, record_rows, value_rows
from inboxops.dmarc.store import BATCH, DatabaseSink
from inboxops.storage.db import open_database
from inboxops.storage.models import dmarc_auth_results, dmarc_records, dmarc_reports
from inboxops.storage.raw import Raw
from inboxops.storage.text import clean_text

# Characters no column may hold, spelled the ways a report can carry them: a character
# reference to a control character (libxml2 keeps it, recovering), C1 controls and DEL as
# UTF-8, which XML 1.0 allows.
HOSTILE = ("a&#1;b", "c\u0085d", "e\u009ff\x7f")
CLEANED = ("a\ufffdb", "c\ufffdd", "e\ufffdf\ufffd")


def hostile_record(ip: str, n: int) -> str:
    """A record with a hostile value in every text field the parser keeps."""
    a, b, c = HOSTILE[n % 3], HOSTILE[(n + 1) % 3], HOSTILE[(n + 2) % 3]
    return (
        f"<record><row><source_ip>{ip}</source_ip><count>{n + 1}</count><policy_evaluated>"
        f"<disposition>{a}</disposition><dkim>pass{b}</dkim><spf>{c}</spf>"
        f"<reason><type>{a}</type><comment>{b}</comment></reason></policy_evaluated></row>"
        f"<identifiers><envelope_to>{a}.example</envelope_to><envelope_from>{b}.example"
        f"</envelope_from><header_from>{c}.example</header_from></identifiers><auth_results>"
        f"<dkim><domain>{a}.example</domain><selector>{b}</selector><result>{c}</result>"
        f"<human_result>{a}</human_result></dkim>"
        f"<spf><domain>{b}.example</domain><scope>{c}</scope><result>pass</result></spf>"
        f"</auth_results></record>"
    )


def plain_record(ip: str, n: int) -> str:
    return (
        f"<record><row><source_ip>{ip}</source_ip><count>{n + 1}</count><policy_evaluated>"
        "<disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated>"
        "</row><identifiers><header_from>example.com</header_from></identifiers><auth_results>"
        "<dkim><domain>example.com</domain><selector>s1</selector><result>pass</result></dkim>"
        "<spf><domain>bounce.example.com</domain><scope>mfrom</scope><result>fail</result>"
        "</spf></auth_results></record>"
    )


def report(records: str, report_id: str = "speed-1", adkim: str = "r") -> bytes:
    return (
        "<?xml version='1.0' encoding='UTF-8'?><feedback><report_metadata>"
        f"<org_name>example.net</org_name><report_id>{report_id}</report_id>"
        "<date_range><begin>1700000000</begin><end>1700086399</end></date_range>"
        "</report_metadata><policy_published><domain>example.com</domain>"
        f"<adkim>{adkim}</adkim><aspf>r</aspf><p>none</p></policy_published>{records}</feedback>"
    ).encode()


def ip(n: int) -> str:
    return f"198.51.{n // 256 % 256}.{n % 256}"


def mixed(n: int) -> str:
    """``n`` records, every seventh one hostile."""
    return "".join(
        hostile_record(ip(i), i) if i % 7 == 3 else plain_record(ip(i), i) for i in range(n)
    )


def strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, tuple | list):
        return [s for v in value for s in strings(v)]
    return []


# -- the parser ---------------------------------------------------------------------------------


def test_the_parser_emits_every_text_already_clean() -> None:
    parser = AggregateParser(io.BytesIO(report(hostile_record("192.0.2.1", 0))))
    parser.read_meta()
    [values] = list(parser.values())
    assert all(clean_text(s) == s for s in strings(values))
    assert values[2:8] == (
        "a\ufffdb",
        "passc\ufffdd",
        "e\ufffdf\ufffd",
        "e\ufffdf\ufffd.example",
        "c\ufffdd.example",
        "a\ufffdb.example",
    )
    assert values[8] == (("a\ufffdb", "c\ufffdd"),)
    assert values[9] == (
        ("dkim", "a\ufffdb.example", "c\ufffdd", "e\ufffdf\ufffd", None, "a\ufffdb"),
        ("spf", "c\ufffdd.example", None, "pass", "e\ufffdf\ufffd", None),
    )
    assert values[10:] == (False, False)  # "pass" followed by garbage is no pass


def test_records_and_values_are_the_same_records_from_one_position() -> None:
    data = report(mixed(40))
    whole = AggregateParser(io.BytesIO(data))
    whole.read_meta()
    expected = list(whole.records())
    assert len(expected) == 40

    parser = AggregateParser(io.BytesIO(data))
    parser.read_meta()
    values = parser.values()
    head = [as_record(next(values)) for _ in range(5)]
    rest = list(parser.records())  # goes on where values() stopped
    assert head + rest == expected
    assert list(parser.values()) == []


def test_alignment_is_derived_from_the_texts_as_sent_then_cleaned() -> None:
    """No <policy_evaluated>: strict alignment compares the domains the reporter wrote, so two
    different control characters do not become one U+FFFD and align."""

    def one(header: str, signer: str) -> tuple[object, ...]:
        rec = (
            f"<record><row><source_ip>192.0.2.7</source_ip><count>2</count></row><identifiers>"
            f"<header_from>{header}</header_from></identifiers><auth_results><dkim><domain>"
            f"{signer}</domain><result>pass</result></dkim></auth_results></record>"
        )
        parser = AggregateParser(io.BytesIO(report(rec, adkim="s")))
        parser.read_meta()
        [values] = list(parser.values())
        return values

    differ = one("x&#1;.example.com", "x&#2;.example.com")
    assert differ[5] == "x\ufffd.example.com"
    assert differ[9][0][1] == "x\ufffd.example.com"
    assert differ[10] is False
    assert one("x&#1;.example.com", "x&#1;.example.com")[10] is True


# -- rows ---------------------------------------------------------------------------------------


def test_value_rows_are_the_rows_record_rows_writes() -> None:
    parser = AggregateParser(io.BytesIO(report(mixed(30))))
    parser.read_meta()
    values = list(parser.values())
    records = [as_record(v) for v in values]
    for pg in (True, False):
        fast, objects = value_rows(7, 100, values, pg), record_rows(7, 100, records, pg)
        assert fast == objects
        assert [type(v) for row in fast[0] for v in row] == [
            type(v) for row in objects[0] for v in row
        ]  # booleans as bool for PostgreSQL, as int for SQLite


def test_the_content_digest_ignores_what_cleaning_changed() -> None:
    """A copy stored before reasons were cleaned inside their JSON is the same content."""
    stored = [(0, "192.0.2.1", 1, '[["a\\u0001b", null]]')]
    parsed = [(0, "192.0.2.1", 1, json.dumps([["a\ufffdb", None]]))]
    assert content_digest(stored, []) == content_digest(parsed, [])
    assert content_digest(stored, []) != content_digest([(0, "192.0.2.1", 2, None)], [])


@pytest.mark.parametrize("n", [0, 1, 70, 71, 72, 3 * 71 + 5])
def test_multi_row_inserts_store_every_row_in_order(tmp_path: Path, n: int) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 't.db'}")
    try:
        with engine.begin() as conn:
            cols = [f"c{i}" for i in range(14)]  # 999 // 14 = 71 rows per statement
            conn.exec_driver_sql(f"CREATE TABLE t ({', '.join(cols)})")
            rows = [tuple(range(r * 14, r * 14 + 14)) for r in range(n)]
            insert_rows(Raw(conn), "t", cols, rows)
            got = conn.exec_driver_sql("SELECT * FROM t ORDER BY rowid").fetchall()
        assert [tuple(r) for r in got] == rows
    finally:
        engine.dispose()


# -- stored, on SQLite and PostgreSQL -----------------------------------------------------------


def stored(engine: Engine) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with engine.connect() as conn:
        records = conn.execute(
            select(
                dmarc_records.c.seq,
                dmarc_records.c.source_ip,
                dmarc_records.c.disposition,
                dmarc_records.c.policy_dkim,
                dmarc_records.c.header_from,
                dmarc_records.c.reasons,
            ).order_by(dmarc_records.c.seq)
        ).all()
        auth = conn.execute(
            select(
                dmarc_auth_results.c.record_seq,
                dmarc_auth_results.c.domain,
                dmarc_auth_results.c.selector,
                dmarc_auth_results.c.result,
                dmarc_auth_results.c.human_result,
            ).order_by(dmarc_auth_results.c.record_seq, dmarc_auth_results.c.seq)
        ).all()
    return [tuple(r) for r in records], [tuple(r) for r in auth]


@pytest.mark.parametrize("n", [12, BATCH + 1 + 3 * 71 + 5])  # grouped, and streamed
def test_hostile_values_are_stored_clean_on_both_paths(db_url: str, tmp_path: Path, n: int) -> None:
    path = tmp_path / "hostile.xml"
    path.write_bytes(report(mixed(n)))
    engine = open_database(db_url)
    try:
        stats = Ingestor(DatabaseSink(engine), Limits()).ingest_paths([path])
        assert (stats.reports_new, stats.records, stats.failed) == (1, n, [])
        records, auth = stored(engine)
        assert [r[0] for r in records] == list(range(n))
        assert len(auth) == 2 * n
        assert all(clean_text(s) == s for s in strings(records) + strings(auth))
        hostile = records[3]
        assert hostile[2:5] == ("a\ufffdb", "passc\ufffdd", "e\ufffdf\ufffd.example")
        reasons = json.loads(hostile[5]) if isinstance(hostile[5], str) else hostile[5]
        assert reasons == [["a\ufffdb", "c\ufffdd"]]
        assert auth[6][1:4] == ("a\ufffdb.example", "c\ufffdd", "e\ufffdf\ufffd")
        with engine.connect() as conn:
            totals = conn.execute(
                select(dmarc_reports.c.record_count, dmarc_reports.c.message_count)
            ).one()
        assert tuple(totals) == (n, n * (n + 1) // 2)
    finally:
        engine.dispose()


def test_a_rerun_of_a_streamed_report_is_known_and_adds_nothing(
    db_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "big.xml"
    path.write_bytes(report(mixed(BATCH + 10)))
    engine = open_database(db_url)
    try:
        first = Ingestor(DatabaseSink(engine)).ingest_paths([path])
        again = Ingestor(DatabaseSink(engine)).ingest_paths([path])
        assert (first.reports_new, again.reports_known, again.reports_new) == (1, 1, 0)
        with engine.connect() as conn:
            n = conn.execute(text("SELECT count(*) FROM dmarc_records")).scalar_one()
        assert n == BATCH + 10
    finally:
        engine.dispose()


def test_the_collector_is_back_as_it_was_after_a_streamed_report(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.xml", tmp_path / "bad.xml"
    good.write_bytes(report(mixed(BATCH + 2)))
    bad.write_bytes(report(mixed(BATCH + 2), report_id="too-many"))
    engine = open_database(f"sqlite:///{tmp_path / 'gc.db'}")
    was = gc.isenabled()
    try:
        gc.enable()
        Ingestor(DatabaseSink(engine)).ingest_paths([good])
        assert gc.isenabled()
        stats = Ingestor(DatabaseSink(engine), Limits(max_records=BATCH + 1)).ingest_paths([bad])
        assert stats.quarantined == 1  # refused half-way through the stream
        assert gc.isenabled()
        gc.disable()
        Ingestor(DatabaseSink(engine)).ingest_paths([good])
        assert not gc.isenabled()
    finally:
        if was:
            gc.enable()
        engine.dispose()
