"""Hostile and broken input through the full Ingestor into a real database (SQLite + PostgreSQL).

Every hostile file is built here, in ``tmp_path``. A refusal must leave one one-line ``failed``
entry, one quarantine row with the raw bytes, nothing half-stored, and the batch must go on to
the next file. The corpus is read by path, never copied.
"""

from __future__ import annotations

import gzip
import io
import struct
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from inboxops.config import Limits
from inboxops.dmarc.ingest import IngestStats
from inboxops.dmarc.parse import AggregateParser
from inboxops.dmarc.store import MAX_QUARANTINE_RAW
from inboxops.errors import HostileInputError
from inboxops.storage.models import dmarc_auth_results, dmarc_records, dmarc_reports, quarantine
from tests.helpers import aggregate_xml, write_report
from tests.hostile_support import counts, ingest, stored_keys, zip_members

MiB = 1024 * 1024
GOOD_ROWS = (("192.0.2.1", 5, True), ("192.0.2.2", 7, False), ("2001:db8::3", 11, True))
GOOD_KEY = ("good.example", "good-1")


def good_report(directory: Path) -> Path:
    """A small valid report whose name sorts after every hostile file in the same directory."""
    path = directory / "zz-good.xml"
    path.write_bytes(aggregate_xml(org=GOOD_KEY[0], report_id=GOOD_KEY[1], rows=GOOD_ROWS))
    return path


def report_xml(report_id: str, n_records: int, org: str = "hostile.example") -> bytes:
    rows = [
        (f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}", 1, i % 2 == 0) for i in range(n_records)
    ]
    return aggregate_xml(org=org, report_id=report_id, rows=rows)


def assert_refused_and_continued(
    stats: IngestStats, engine: Engine, bad: Path, needle: str
) -> None:
    """One one-line failure naming the problem, quarantined with its bytes; the good file after
    it is stored and nothing of the bad one is."""
    assert len(stats.failed) == 1, stats.failed
    failed = stats.failed[0]
    assert failed.source == str(bad)
    assert "\n" not in failed.reason
    assert "\r" not in failed.reason
    assert needle.lower() in failed.reason.lower(), failed.reason
    assert stats.quarantined == 1
    assert stats.reports_new == 1
    assert stats.records == len(GOOD_ROWS)
    with engine.connect() as conn:
        rows = conn.execute(
            select(quarantine.c.source, quarantine.c.reason, quarantine.c.size, quarantine.c.raw)
        ).all()
    assert len(rows) == 1
    source, reason, size, raw = rows[0]
    raw_bytes = bad.read_bytes()
    assert (source, reason, size) == (str(bad), failed.reason, len(raw_bytes))
    if len(raw_bytes) <= MAX_QUARANTINE_RAW:
        assert bytes(raw) == raw_bytes
    assert stored_keys(engine) == {GOOD_KEY}
    assert counts(engine) == {
        "dmarc_reports": 1,
        "dmarc_records": len(GOOD_ROWS),
        "dmarc_auth_results": 2 * len(GOOD_ROWS),
        "quarantine": 1,
    }


# -- builders of hostile files --------------------------------------------------------------

XML_DECL = b'<?xml version="1.0" encoding="UTF-8"?>'


def _with_doctype(doctype: bytes, entity_ref: bytes) -> bytes:
    body = aggregate_xml(report_id="doctype", rows=GOOD_ROWS).removeprefix(b'<?xml version="1.0"?>')
    body = body.replace(b"<org_name>google.com", b"<org_name>" + entity_ref + b"google.com")
    return XML_DECL + doctype + body


def billion_laughs() -> bytes:
    entities = [b'<!ENTITY lol0 "lol">']
    entities += [b'<!ENTITY lol%d "%s">' % (i, b"&lol%d;" % (i - 1) * 10) for i in range(1, 10)]
    return _with_doctype(b"<!DOCTYPE feedback [" + b"".join(entities) + b"]>", b"&lol9;")


def external_entity() -> bytes:
    return _with_doctype(
        b'<!DOCTYPE feedback [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>', b"&xxe;"
    )


def plain_doctype() -> bytes:
    return _with_doctype(b"<!DOCTYPE feedback>", b"")


def _zip_stream(name: str, head: bytes, filler: bytes, repeat: int) -> bytes:
    """A real deflated zip member of ``len(head) + len(filler) * repeat`` bytes, built in steps."""
    buf = io.BytesIO()
    with (
        zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
        archive.open(name, "w") as member,
    ):
        member.write(head)
        for _ in range(repeat):
            member.write(filler)
    return buf.getvalue()


def _patch_declared_size(data: bytes, size: int) -> bytes:
    """Rewrite the uncompressed size in the local header and the central directory."""
    out = bytearray(data)
    local = out.find(b"PK\x03\x04")
    central = out.find(b"PK\x01\x02")
    struct.pack_into("<I", out, local + 22, size)
    struct.pack_into("<I", out, central + 24, size)
    return bytes(out)


def zip_bomb() -> bytes:
    """50 MiB of whitespace in a ~50 KiB member: the ratio cap must trip."""
    return _zip_stream("report.xml", XML_DECL + b"<feedback>", b" " * MiB, 50)


def zip_declares_huge() -> bytes:
    """A member that declares 4 GiB: refused before a byte is inflated."""
    return _patch_declared_size(zip_members({"report.xml": report_xml("huge", 5)}), 2**32 - 1)


def zip_size_lie() -> bytes:
    """Declares 1,000 bytes (under every cap) but inflates to 50 MiB."""
    real = _zip_stream("report.xml", XML_DECL + b"<feedback>", b" " * MiB, 50)
    return _patch_declared_size(real, 1000)


def gzip_nested_too_deep() -> bytes:
    data = report_xml("nested4", 3)
    for _ in range(4):
        data = gzip.compress(data)
    return data


def truncated_gzip() -> bytes:
    data = gzip.compress(report_xml("truncated", 200))
    return data[: len(data) * 3 // 4]


def truncated_zip() -> bytes:
    data = zip_members({"report.xml": report_xml("truncated-zip", 200)})
    return data[: len(data) - 40]


def zip_with_17_members() -> bytes:
    return zip_members({f"r{i}.xml": report_xml(f"member-{i}", 1) for i in range(17)})


def deeply_nested() -> bytes:
    body = aggregate_xml(report_id="deep", rows=GOOD_ROWS)
    return body.replace(b"</feedback>", b"<x>" * 10_000 + b"</x>" * 10_000 + b"</feedback>")


def huge_text_node() -> bytes:
    body = aggregate_xml(report_id="huge-text", rows=GOOD_ROWS)
    return body.replace(b"<org_name>", b"<org_name>" + b"A" * (20 * MiB), 1)


def too_many_records() -> bytes:
    return report_xml("many", 50)


def empty() -> bytes:
    return b""


REFUSALS: list[tuple[str, Callable[[], bytes], str, Limits | None]] = [
    ("billion-laughs.xml", billion_laughs, "DOCTYPE", None),
    ("external-entity.xml", external_entity, "DOCTYPE", None),
    ("plain-doctype.xml", plain_doctype, "DOCTYPE", None),
    ("zip-bomb.zip", zip_bomb, "zip bomb", None),
    ("zip-declares-4gib.zip", zip_declares_huge, "zip bomb", None),
    ("zip-size-lie.zip", zip_size_lie, "corrupt", None),
    ("gzip-nested-4.xml.gz", gzip_nested_too_deep, "nested more than 3", None),
    ("truncated.xml.gz", truncated_gzip, "truncated", None),
    ("truncated.zip", truncated_zip, "truncated", None),
    ("seventeen.zip", zip_with_17_members, "17 files", None),
    ("deep.xml", deeply_nested, "depth", None),
    ("huge-text.xml", huge_text_node, "safety limits", None),
    ("many-records.xml", too_many_records, "more than 10 records", Limits(max_records=10)),
    ("empty.xml", empty, "empty", None),
]


@pytest.mark.parametrize(
    ("name", "build", "needle", "limits"), REFUSALS, ids=[r[0] for r in REFUSALS]
)
def test_hostile_input_is_refused_quarantined_and_the_run_continues(
    engine: Engine,
    tmp_path: Path,
    name: str,
    build: Callable[[], bytes],
    needle: str,
    limits: Limits | None,
) -> None:
    """Bombs, entities, truncation, nesting and caps: refused cleanly, next file still stored."""
    bad = tmp_path / name
    bad.write_bytes(build())
    good = good_report(tmp_path)
    stats = ingest(engine, [good, bad], limits)
    assert_refused_and_continued(stats, engine, bad, needle)


def test_external_entity_is_never_resolved(engine: Engine, tmp_path: Path) -> None:
    """The contents of /etc/passwd end up nowhere: not in a report, not in the reason."""
    bad = tmp_path / "xxe.xml"
    bad.write_bytes(external_entity())
    stats = ingest(engine, [bad])
    assert "root:" not in stats.failed[0].reason
    with engine.connect() as conn:
        orgs = conn.execute(select(dmarc_reports.c.org_name)).scalars().all()
        raw = conn.execute(select(quarantine.c.raw)).scalar_one()
    assert orgs == []
    assert b"root:" not in bytes(raw)


@pytest.fixture(scope="module")
def gzip_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1 GiB of zeros inside an XML text node, deflated at level 9 in 1 MiB steps (~1 MiB)."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.xml.gz"
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = b"0" * MiB
    with path.open("wb") as fh:
        fh.write(comp.compress(XML_DECL + b"<feedback><report_metadata><org_name>"))
        for _ in range(1024):
            fh.write(comp.compress(zeros))
        fh.write(comp.compress(b"</org_name></report_metadata></feedback>"))
        fh.write(comp.flush())
    assert path.stat().st_size < 4 * MiB
    return path


def test_gzip_bomb_refused_in_bounded_memory(
    engine: Engine, tmp_path: Path, gzip_bomb: Path
) -> None:
    """A 1 GiB gzip bomb is refused as a bomb while traced memory stays far below its size."""
    good = good_report(tmp_path)
    tracemalloc.start()
    try:
        stats = ingest(engine, [gzip_bomb, good])
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * MiB, f"peak traced memory {peak / MiB:.1f} MiB"
    assert_refused_and_continued(stats, engine, gzip_bomb, "gzip bomb")


def test_truncated_gzip_stores_nothing_of_the_report(engine: Engine, tmp_path: Path) -> None:
    """12,000 records cut short: batches already written roll back with the report, while the
    reports before and after it in the same run are kept."""
    before = tmp_path / "a-before.xml"
    before.write_bytes(report_xml("before", 4))
    full = gzip.compress(report_xml("big-truncated", 12_000), compresslevel=1)
    bad = tmp_path / "big.xml.gz"
    bad.write_bytes(full[: len(full) * 9 // 10])
    good = good_report(tmp_path)
    stats = ingest(engine, [bad, good, before])
    assert [f.source for f in stats.failed] == [str(bad)]
    assert "truncated" in stats.failed[0].reason
    assert "\n" not in stats.failed[0].reason
    assert stats.reports_new == 2
    assert stored_keys(engine) == {GOOD_KEY, ("hostile.example", "before")}
    assert counts(engine) == {
        "dmarc_reports": 2,
        "dmarc_records": 4 + len(GOOD_ROWS),
        "dmarc_auth_results": 2 * (4 + len(GOOD_ROWS)),
        "quarantine": 1,
    }


def test_rerun_after_a_failed_import_stores_the_report_exactly_once(
    engine: Engine, tmp_path: Path, corpus: Path
) -> None:
    """A crash half-way (truncated gzip of the 2,286-record report) leaves no trace; the full
    file then stores it once, and a third run finds it known."""
    source = corpus / "aggregate/!large-example.com!1711897200!1711983600.xml"
    compressed = gzip.compress(source.read_bytes())
    cut = tmp_path / "cut" / "large.xml.gz"
    cut.parent.mkdir()
    cut.write_bytes(compressed[: len(compressed) // 2])
    whole = tmp_path / "whole" / "large.xml.gz"
    whole.parent.mkdir()
    whole.write_bytes(compressed)

    first = ingest(engine, [cut])
    assert len(first.failed) == 1
    assert "truncated" in first.failed[0].reason
    assert counts(engine)["dmarc_records"] == 0
    assert counts(engine)["dmarc_reports"] == 0

    second = ingest(engine, [whole])
    assert (second.reports_new, second.records, second.failed) == (1, 2286, [])
    third = ingest(engine, [whole, source])
    assert (third.reports_new, third.reports_known) == (0, 2)
    assert stored_keys(engine) == {("accurateplastics.com", "example.com:1711897200")}
    assert counts(engine)["dmarc_records"] == 2286


# -- accepted containers --------------------------------------------------------------------


def test_double_gzip_is_accepted(engine: Engine, tmp_path: Path) -> None:
    """A gzip inside a gzip (parsedmarc rejects it) is unwrapped and stored."""
    path = tmp_path / "double.xml.gz"
    path.write_bytes(gzip.compress(gzip.compress(report_xml("double", 4))))
    stats = ingest(engine, [path])
    assert (stats.reports_new, stats.records, stats.failed) == (1, 4, [])
    assert stored_keys(engine) == {("hostile.example", "double")}


def test_gzip_with_concatenated_members_is_one_stream(engine: Engine, tmp_path: Path) -> None:
    """Two gzip members are one payload (RFC 1952), as `zcat` reads them."""
    data = report_xml("concat", 6)
    half = len(data) // 2
    path = tmp_path / "concat.xml.gz"
    path.write_bytes(gzip.compress(data[:half]) + gzip.compress(data[half:]))
    stats = ingest(engine, [path])
    assert (stats.reports_new, stats.records, stats.failed) == (1, 6, [])


def test_multi_file_zip_stores_both_reports(engine: Engine, tmp_path: Path) -> None:
    """A zip with two reports: both stored, with their own records."""
    path = tmp_path / "two.zip"
    path.write_bytes(
        zip_members({"a.xml": report_xml("zip-a", 2), "b.xml": report_xml("zip-b", 3)})
    )
    stats = ingest(engine, [path])
    assert (stats.reports_new, stats.records, stats.failed) == (2, 5, [])
    assert stored_keys(engine) == {("hostile.example", "zip-a"), ("hostile.example", "zip-b")}


def test_zip_whose_first_member_is_not_xml_still_yields_the_report(
    engine: Engine, tmp_path: Path
) -> None:
    """A README beside the report inside the zip must not hide the report."""
    path = tmp_path / "readme-first.zip"
    path.write_bytes(
        zip_members(
            {"README.txt": b"This archive holds a DMARC report.\n", "r.xml": report_xml("r", 2)}
        )
    )
    stats = ingest(engine, [path])
    assert stored_keys(engine) == {("hostile.example", "r")}
    assert (stats.reports_new, stats.records, stats.failed) == (1, 2, [])


def test_mimecast_gzip_with_trailing_bytes_is_accepted(engine: Engine, corpus: Path) -> None:
    """Mimecast appends CRLF after the gzip member; the report is still read and stored."""
    stats = ingest(engine, [corpus / "aggregate/mimecast-weird-gzip.eml"])
    assert (stats.reports_new, stats.records, stats.failed) == (1, 1, [])
    assert stored_keys(engine) == {
        ("Mimecast", "157a5fe30ec76f4bc0d8bccfc96c118a167a1280fee7c7465af5115e73082e5e")
    }


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("notes.txt", b"Meeting notes\nNothing to see here, just text.\n"),
        ("garbage.bin", bytes(range(7, 256)) * 8),
    ],
)
def test_not_a_report_is_counted_not_quarantined(
    engine: Engine, tmp_path: Path, name: str, data: bytes
) -> None:
    """Text and binary junk are 'not a report': counted, never quarantined, run continues."""
    path = tmp_path / name
    path.write_bytes(data)
    stats = ingest(engine, [path, good_report(tmp_path)])
    assert (stats.not_reports, stats.quarantined, stats.failed) == (1, 0, [])
    assert stats.reports_new == 1
    assert counts(engine)["quarantine"] == 0
    assert stored_keys(engine) == {GOOD_KEY}


# -- bugs found by these tests, pinned (each failed before its fix) ------------------------


def test_gzip_corrupt_late_is_a_parse_error(engine: Engine, tmp_path: Path) -> None:
    """Corruption past the first output buffer is refused like early corruption."""
    data = bytearray(gzip.compress(report_xml("late", 20_000)))
    data[-200] ^= 0xFF
    bad = tmp_path / "late-corrupt.xml.gz"
    bad.write_bytes(bytes(data))
    stats = ingest(engine, [bad, good_report(tmp_path)])
    assert_refused_and_continued(stats, engine, bad, "corrupt")


def test_zip_member_name_cannot_break_the_one_line_reason(engine: Engine, tmp_path: Path) -> None:
    """A member called 'evil\\nname.xml' must not put a newline into the failure reason."""
    bad = tmp_path / "evil-name.zip"
    bad.write_bytes(
        _patch_declared_size(zip_members({"evil\nname.xml": report_xml("evil", 1)}), 2**32 - 1)
    )
    stats = ingest(engine, [bad, good_report(tmp_path)])
    assert_refused_and_continued(stats, engine, bad, "zip bomb")


OVERLONG = {
    "version": aggregate_xml(report_id="long").replace(
        b"<version>1.0</version>", b"<version>" + b"9" * 40 + b"</version>"
    ),
    "domain": aggregate_xml(report_id="long", domain="d" * 300 + ".example"),
    "email": aggregate_xml(report_id="long", org="o" * 330 + ".example"),
}


@pytest.mark.parametrize("field", sorted(OVERLONG))
def test_overlong_value_is_not_fatal_to_the_batch(
    engine: Engine, db_url: str, tmp_path: Path, request: pytest.FixtureRequest, field: str
) -> None:
    """A value longer than its column (<version>, a 300-char domain, a 350-char email) must
    neither abort the run nor be half-stored: the report is there whole (with every record
    and auth result) or not at all."""
    bad = tmp_path / "a-long.xml"
    bad.write_bytes(OVERLONG[field])
    stats = ingest(engine, [bad, good_report(tmp_path)])
    assert GOOD_KEY in stored_keys(engine)
    assert stats.reports_new + len(stats.failed) == 2
    with engine.connect() as conn:
        stored = conn.execute(
            select(dmarc_reports.c.id, dmarc_reports.c.record_count).where(
                dmarc_reports.c.report_id == "long"
            )
        ).all()
        for pk, n in stored:
            records = conn.execute(
                select(func.count())
                .select_from(dmarc_records)
                .where(dmarc_records.c.report_pk == pk)
            ).scalar_one()
            auth = conn.execute(
                select(func.count())
                .select_from(dmarc_auth_results)
                .where(dmarc_auth_results.c.report_pk == pk)
            ).scalar_one()
            assert (records, auth) == (n, 2 * n)
    assert len(stored) == (0 if stats.failed else 1)


def test_counts_are_capped_so_sums_cannot_overflow(engine: Engine, tmp_path: Path) -> None:
    """A record's count is kept up to 2**31 (no real record comes near); past that it is
    dropped with a reason. With max_records (5,000,000) records per report, no report's sum
    can reach 2**63, and a window of many such reports sums exactly in SQL."""
    from inboxops.dmarc.records import MAX_COUNT

    assert MAX_COUNT * Limits().max_records < 2**63
    rows = (
        ("198.51.100.1", MAX_COUNT, True),
        ("198.51.100.2", MAX_COUNT, False),
        ("198.51.100.3", MAX_COUNT + 1, True),
        ("198.51.100.4", 2**63 - 1, True),
    )
    paths = [
        write_report(tmp_path, f"big-{i}.xml", aggregate_xml(report_id=f"big-{i}", rows=rows))
        for i in range(3)
    ]
    stats = ingest(engine, [*paths, good_report(tmp_path)])
    assert (stats.reports_new, stats.failed) == (4, [])
    assert stats.records_dropped_by_reason == {"count is implausibly large": 6}
    from inboxops.dmarc.summary import ip_stats
    from inboxops.window import Window

    window = Window(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    by_ip = {s.ip: s for s in ip_stats(engine, window, ())}
    assert by_ip["198.51.100.1"].messages == 3 * MAX_COUNT  # summed past 2**32, exactly
    assert "198.51.100.4" not in by_ip


def _late_metadata(n: int) -> bytes:
    text = report_xml("late-meta", n).decode()
    meta_at, records_at, end_at = (
        text.index("<report_metadata>"),
        text.index("<record>"),
        text.index("</feedback>"),
    )
    return (
        text[:meta_at] + text[records_at:end_at] + text[meta_at:records_at] + text[end_at:]
    ).encode()


def test_records_before_metadata_are_read() -> None:
    """A reporter that puts the metadata last still gets its records stored."""
    parser = AggregateParser(io.BytesIO(_late_metadata(5_000)))
    meta = parser.read_meta()
    assert (meta.report_id, sum(1 for _ in parser.records())) == ("late-meta", 5_000)


def test_too_many_records_before_metadata_are_refused_in_bounded_memory() -> None:
    """Buffering records while waiting for metadata is capped: memory stays bounded."""
    tracemalloc.start()
    try:
        parser = AggregateParser(io.BytesIO(_late_metadata(30_000)))
        with pytest.raises(HostileInputError, match="before the report metadata"):
            parser.read_meta()
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * MiB, f"peak traced memory {peak / MiB:.1f} MiB"
